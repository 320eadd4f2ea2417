"""Observations (spec §9): raw 200x3 uint8 tokens, and the dense [27, 11, 11] box that the
"fast" policy builds by scattering those tokens (§9.6), computed directly from the state.

Both gather an 11x11 window per agent from the grid layers and look up per-object feature
lists, so nothing here is O(grid) per agent.

Section marks (§) cite docs/specs/arena.md.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from envs.arena import constants as K
from envs.arena.state import EnvState

_CENTER = (K.OBS_RADIUS << 4) | K.OBS_RADIUS  # 0x55


def completion_pct(time, horizon):
    """round(255 * t / max_steps) in float32, rounding half away from zero (C++ std::round)."""
    x = (time.astype(jnp.float32) / horizon.astype(jnp.float32)) * jnp.float32(255.0)
    fl = jnp.floor(x)
    return (fl + (x - fl >= 0.5)).astype(jnp.uint8)


def last_action_arg(action):
    """The handler arg of a flat action id: 0..3 for moves, k for attack_k, else 0."""
    return jnp.where(
        (action >= K.A_MOVE_N) & (action <= K.A_MOVE_E),
        action - K.A_MOVE_N,
        jnp.where(action >= K.A_ATTACK0, action - K.A_ATTACK0, 0),
    ).astype(jnp.uint8)


def _inventory_list(inv, seq):
    """Items in inventory-list order (front first) and whether each slot holds an item."""
    present = inv > 0
    ids = jnp.arange(K.NUM_RESOURCES)
    key = jnp.where(present, seq, jnp.iinfo(jnp.int32).min)
    ahead = (key[..., None, :] > key[..., :, None]) | (
        (key[..., None, :] == key[..., :, None]) & (ids[None, :] < ids[:, None])
    )
    rank = jnp.sum(ahead, axis=-1)  # a permutation of 0..9; present items come first
    order = jnp.argsort(rank, axis=-1)
    return order, jnp.take_along_axis(present, order, axis=-1)


def _object_token_lists(state: EnvState):
    """(feature, value, valid) per token slot: agents [A, 14], converters [C, 12], wall [12]."""
    a_inv = state.agent_inv
    a_order, a_present = _inventory_list(a_inv, state.agent_inv_seq)
    n = a_inv.shape[0]
    head_f = jnp.broadcast_to(
        jnp.array([K.F_TYPE_ID, K.F_GROUP, K.F_FROZEN, K.F_ORIENTATION], jnp.uint8), (n, 4)
    )
    head_v = jnp.stack(
        [
            jnp.zeros(n, jnp.uint8),
            jnp.zeros(n, jnp.uint8),
            (state.agent_frozen > 0).astype(jnp.uint8),
            state.agent_ori.astype(jnp.uint8),
        ],
        axis=-1,
    )
    agent_f = jnp.concatenate([head_f, (K.F_INV0 + a_order).astype(jnp.uint8)], axis=-1)
    agent_v = jnp.concatenate([head_v, jnp.take_along_axis(a_inv, a_order, axis=-1)], axis=-1)
    agent_ok = jnp.concatenate([jnp.ones((n, 4), jnp.bool_), a_present], axis=-1)

    c_inv = state.conv_inv
    c_order, c_present = _inventory_list(c_inv, state.conv_inv_seq)
    m = c_inv.shape[0]
    type_id = jnp.asarray(K.CONV_KIND_TYPE_ID)[jnp.clip(state.conv_kind.astype(jnp.int32), 0)]
    conv_f = jnp.concatenate(
        [
            jnp.broadcast_to(jnp.array([K.F_TYPE_ID, K.F_CONVERTING], jnp.uint8), (m, 2)),
            (K.F_INV0 + c_order).astype(jnp.uint8),
        ],
        axis=-1,
    )
    busy = (state.conv_converting | state.conv_cooling).astype(jnp.uint8)
    conv_v = jnp.concatenate(
        [
            jnp.stack([type_id.astype(jnp.uint8), busy], -1),
            jnp.take_along_axis(c_inv, c_order, axis=-1),
        ],
        axis=-1,
    )
    conv_ok = jnp.concatenate([jnp.ones((m, 2), jnp.bool_), c_present], axis=-1)
    return (agent_f, agent_v, agent_ok), (conv_f, conv_v, conv_ok)


def _window(state: EnvState, offsets):
    """Grid layers at ``agent_pos + offsets`` for every agent: (agent id, object code, inside)."""
    h, w = state.grid_obj.shape
    pos = state.agent_pos.astype(jnp.int32)
    r = pos[:, 0:1] + jnp.asarray(offsets[:, 0])[None, :]
    c = pos[:, 1:2] + jnp.asarray(offsets[:, 1])[None, :]
    inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
    rc, cc = jnp.clip(r, 0, h - 1), jnp.clip(c, 0, w - 1)
    obj = state.grid_obj[rc, cc].astype(jnp.int32)
    inside = inside & (obj != K.CELL_VOID)
    aid = jnp.where(inside, state.grid_agent[rc, cc].astype(jnp.int32), -1)
    obj = jnp.where(inside, obj, K.CELL_EMPTY)
    return aid, obj, inside


def _globals(state: EnvState):
    n = state.agent_pos.shape[0]
    pct = jnp.broadcast_to(completion_pct(state.time, state.horizon), (n,))
    la = state.agent_last_action
    return jnp.stack(
        [pct, la, last_action_arg(la.astype(jnp.int32)), jnp.zeros(n, jnp.uint8)], axis=-1
    )


def token_observations(state: EnvState) -> jnp.ndarray:
    """uint8[A, 200, 3] raw tokens (location, feature, value); empty = 0xFF."""
    (af, av, aok), (cf, cv, cok) = _object_token_lists(state)
    n = af.shape[0]
    m = cf.shape[0]
    offsets = K.WINDOW_ORDER
    aid, obj, _ = _window(state, offsets)  # [A, 121]
    a_idx = jnp.clip(aid, 0, n - 1)
    ag_f, ag_v = af[a_idx], av[a_idx]
    ag_ok = aok[a_idx] & (aid >= 0)[..., None]
    c_idx = jnp.clip(obj, 0, m - 1)
    is_wall = (obj == K.CELL_WALL)[..., None]
    slot0 = (jnp.arange(K.OBJECT_TOKEN_SLOTS) == 0)[None, None, :]
    ob_f = jnp.where(is_wall, jnp.uint8(K.F_TYPE_ID), cf[c_idx])
    ob_v = jnp.where(is_wall, jnp.uint8(K.TYPE_WALL), cv[c_idx])
    ob_ok = jnp.where(is_wall, slot0, cok[c_idx] & (obj >= 0)[..., None])
    feat = jnp.concatenate([ag_f, ob_f], axis=-1).reshape(n, -1)
    val = jnp.concatenate([ag_v, ob_v], axis=-1).reshape(n, -1)
    ok = jnp.concatenate([ag_ok, ob_ok], axis=-1).reshape(n, -1)
    loc_cells = ((offsets[:, 0] + K.OBS_RADIUS) << 4) | (offsets[:, 1] + K.OBS_RADIUS)
    loc = jnp.asarray(np.repeat(loc_cells, K.CELL_TOKEN_SLOTS).astype(np.uint8))
    loc = jnp.broadcast_to(loc, feat.shape)

    g = _globals(state)
    g_tok = jnp.stack(
        [
            jnp.full((n, 4), _CENTER, jnp.uint8),
            jnp.broadcast_to(
                jnp.array(
                    [K.F_EPISODE_PCT, K.F_LAST_ACTION, K.F_LAST_ACTION_ARG, K.F_LAST_REWARD],
                    jnp.uint8,
                ),
                (n, 4),
            ),
            g,
        ],
        axis=-1,
    )
    tok = jnp.stack([loc, feat, val], axis=-1)  # [A, 121*26, 3]
    slot = 4 + jnp.cumsum(ok, axis=-1) - 1
    slot = jnp.where(ok & (slot < K.OBS_TOKENS), slot, K.OBS_TOKENS)  # out of range -> dropped
    out = jnp.full((n, K.OBS_TOKENS, 3), K.EMPTY_TOKEN, jnp.uint8)
    out = out.at[:, :4].set(g_tok)
    rows = jnp.broadcast_to(jnp.arange(n)[:, None], slot.shape)
    out = out.at[rows, slot].set(tok, mode="drop")
    return out


_PACKED_WORDS = (K.NUM_FEATURES + 3) // 4  # 27 feature bytes -> 7 uint32 words


def _packed_rows(tab):
    """uint8[rows, 28] -> uint32[rows, 7] (a gather of 7 words beats one of 27 bytes)."""
    return jax.lax.bitcast_convert_type(tab.reshape(tab.shape[0], _PACKED_WORDS, 4), jnp.uint32)


def dense_observations(state: EnvState) -> jnp.ndarray:
    """uint8[A, 27, 11, 11]: the tokens scattered by feature id and window cell (no budget).

    Per-object feature rows (27 bytes, packed into 7 uint32 words) are gathered by the
    window's occupant indices; packing makes this ~1.8x faster on an H100 than gathering bytes.
    """
    n = state.agent_pos.shape[0]
    m = state.conv_kind.shape[0]
    f = 4 * _PACKED_WORDS
    # agent layer rows [A + 1, 28]; row A = no agent
    agent_tab = jnp.zeros((n + 1, f), jnp.uint8)
    agent_tab = agent_tab.at[:n, K.F_FROZEN].set((state.agent_frozen > 0).astype(jnp.uint8))
    agent_tab = agent_tab.at[:n, K.F_ORIENTATION].set(state.agent_ori.astype(jnp.uint8))
    agent_tab = agent_tab.at[:n, K.F_INV0 : K.NUM_FEATURES].set(state.agent_inv)
    # object layer rows [C + 2, 28]; row C = wall, C + 1 = nothing
    obj_tab = jnp.zeros((m + 2, f), jnp.uint8)
    type_id = jnp.asarray(K.CONV_KIND_TYPE_ID)[jnp.clip(state.conv_kind.astype(jnp.int32), 0)]
    obj_tab = obj_tab.at[:m, K.F_TYPE_ID].set(type_id.astype(jnp.uint8))
    obj_tab = obj_tab.at[:m, K.F_CONVERTING].set(
        (state.conv_converting | state.conv_cooling).astype(jnp.uint8)
    )
    obj_tab = obj_tab.at[:m, K.F_INV0 : K.NUM_FEATURES].set(state.conv_inv)
    obj_tab = obj_tab.at[m, K.F_TYPE_ID].set(K.TYPE_WALL)

    aid, obj, _ = _window(state, _ROW_MAJOR_OFFSETS)  # [A, 121]
    a_idx = jnp.where(aid >= 0, aid, n)
    o_idx = jnp.where(obj >= 0, obj, jnp.where(obj == K.CELL_WALL, m, m + 1))
    words = (
        _packed_rows(agent_tab)[a_idx] | _packed_rows(obj_tab)[o_idx]
    )  # a cell never holds both layers
    box = jax.lax.bitcast_convert_type(words, jnp.uint8).reshape(n, K.OBS_SIZE, K.OBS_SIZE, f)
    box = box[..., : K.NUM_FEATURES]
    # global tokens live at the centre cell, in channels that objects never use
    box = box.at[:, K.OBS_RADIUS, K.OBS_RADIUS, K.F_EPISODE_PCT : K.F_LAST_REWARD + 1].set(
        _globals(state)
    )
    return jnp.transpose(box, (0, 3, 1, 2))


def _row_major_offsets():
    rr, cc = np.meshgrid(
        np.arange(K.OBS_SIZE) - K.OBS_RADIUS, np.arange(K.OBS_SIZE) - K.OBS_RADIUS, indexing="ij"
    )
    return np.stack([rr.ravel(), cc.ravel()], -1).astype(np.int32)


_ROW_MAJOR_OFFSETS = _row_major_offsets()


def dense_from_tokens(tokens) -> jnp.ndarray:
    """Scatter raw tokens [..., 200, 3] into the [..., 27, 11, 11] box (the policy-side §9.6
    conversion, without the norm). Used to check the direct dense path."""
    lead = tokens.shape[:-2]
    t = tokens.reshape(-1, tokens.shape[-2], 3).astype(jnp.int32)
    loc, f, v = t[..., 0], t[..., 1], t[..., 2]
    ok = (loc != K.EMPTY_TOKEN) & (f < K.NUM_FEATURES)
    r, c = loc >> 4, loc & 15
    b = jnp.broadcast_to(jnp.arange(t.shape[0])[:, None], loc.shape)
    box = jnp.zeros((t.shape[0], K.NUM_FEATURES, K.OBS_SIZE, K.OBS_SIZE), jnp.uint8)
    box = box.at[b, jnp.where(ok, f, K.NUM_FEATURES), jnp.clip(r, 0, 10), jnp.clip(c, 0, 10)].set(
        v.astype(jnp.uint8), mode="drop"
    )
    return box.reshape(*lead, K.NUM_FEATURES, K.OBS_SIZE, K.OBS_SIZE)
