"""Per-agent action handlers and the two sequential priority passes (spec §6, §7).

Agents are processed one after another in the step's order (a ``lax.fori_loop``); every
handler is branch-free (masks + ``jnp.where``) so the loop body is the same for all agents and
vmaps cleanly. Pass 1 handles attacks, pass 0 everything else; an invalid action id is counted
in both passes (§6.3).

The loop body runs 2 * num_agents times per step, so it is kept to a handful of memory
operations: during the passes every agent is one packed int32 row (inventory, list order,
stats, frozen counter, position, orientation, motion counters, success flag) and every
converter one packed row; a handler loads the rows it touches (the actor, its target agent or
converter), updates them as local values and stores each row once.

Section marks (§) cite docs/specs/arena.md.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from envs.arena import constants as K
from envs.arena.converters import maybe_start
from envs.arena.state import EnvParams, EnvState

_LIMIT = jnp.asarray(K.AGENT_INV_LIMIT)
_SEQ_STRIDE = 16  # inv_seq advance per inventory operation (> max rank within one operation)
R = K.NUM_RESOURCES
# Unrolling the agent loops by 2 lets XLA fuse across iterations: +35% steps/s on an H100
# (41M -> 56M agent-steps/s, 16384 envs, dense obs); 4 adds little.
_UNROLL = 2


class AgentRow(NamedTuple):
    """One agent during the passes (all int32)."""

    inv: jax.Array  # [10]
    seq: jax.Array  # [10] inventory list order (larger = nearer the front)
    stats: jax.Array  # [NUM_STATS]
    frozen: jax.Array
    r: jax.Array
    c: jax.Array
    ori: jax.Array
    swm: jax.Array  # steps without motion
    max_swm: jax.Array
    success: jax.Array


_AGENT_SCALARS = ("frozen", "r", "c", "ori", "swm", "max_swm", "success")
_A_STATS = 2 * R
_A_SCALARS = _A_STATS + K.NUM_STATS
AGENT_ROW = _A_SCALARS + len(_AGENT_SCALARS)


def _unpack_agent(row) -> AgentRow:
    scalars = {name: row[_A_SCALARS + k] for k, name in enumerate(_AGENT_SCALARS)}
    return AgentRow(inv=row[:R], seq=row[R : 2 * R], stats=row[_A_STATS:_A_SCALARS], **scalars)


def _pack_agent(a: AgentRow):
    scalars = jnp.stack([getattr(a, name) for name in _AGENT_SCALARS]).astype(jnp.int32)
    return jnp.concatenate([a.inv, a.seq, a.stats, scalars]).astype(jnp.int32)


class ConvRow(NamedTuple):
    inv: jax.Array  # [10]
    seq: jax.Array  # [10]
    converting: jax.Array  # bool
    event_time: jax.Array


CONV_ROW = 2 * R + 2


def _unpack_conv(row) -> ConvRow:
    return ConvRow(row[:R], row[R : 2 * R], row[2 * R] != 0, row[2 * R + 1])


def _pack_conv(v: ConvRow):
    tail = jnp.stack([v.converting.astype(jnp.int32), v.event_time.astype(jnp.int32)])
    return jnp.concatenate([v.inv, v.seq, tail]).astype(jnp.int32)


class Board(NamedTuple):
    """What the passes change: packed agents and converters, agent grid, sequence counter."""

    agents: jax.Array  # int32[A, AGENT_ROW]
    convs: jax.Array  # int32[C, CONV_ROW]
    grid_agent: jax.Array  # int8[H, W]
    inv_seq: jax.Array  # int32[]


def pack_board(s: EnvState) -> Board:
    n = s.agent_pos.shape[0]
    scalars = jnp.stack(
        [
            s.agent_frozen.astype(jnp.int32),
            s.agent_pos[:, 0].astype(jnp.int32),
            s.agent_pos[:, 1].astype(jnp.int32),
            s.agent_ori.astype(jnp.int32),
            s.agent_steps_without_motion,
            s.agent_max_steps_without_motion,
            jnp.zeros(n, jnp.int32),  # this step's action success
        ],
        axis=-1,
    )
    agents = jnp.concatenate(
        [s.agent_inv.astype(jnp.int32), s.agent_inv_seq, s.agent_stats, scalars], axis=-1
    )
    convs = jnp.concatenate(
        [
            s.conv_inv.astype(jnp.int32),
            s.conv_inv_seq,
            s.conv_converting.astype(jnp.int32)[:, None],
            s.conv_event_time[:, None],
        ],
        axis=-1,
    )
    return Board(agents, convs, s.grid_agent, s.inv_seq)


def unpack_board(s: EnvState, b: Board):
    """Write the board back into the state; returns (state, action_success)."""
    a = jax.vmap(_unpack_agent)(b.agents)
    v = jax.vmap(_unpack_conv)(b.convs)
    s = s.replace(
        agent_inv=a.inv.astype(jnp.uint8),
        agent_inv_seq=a.seq,
        agent_stats=a.stats,
        agent_frozen=a.frozen.astype(jnp.uint8),
        agent_pos=jnp.stack([a.r, a.c], axis=-1).astype(s.agent_pos.dtype),
        agent_ori=a.ori.astype(jnp.int8),
        agent_steps_without_motion=a.swm,
        agent_max_steps_without_motion=a.max_swm,
        conv_inv=v.inv.astype(jnp.uint8),
        conv_inv_seq=v.seq,
        conv_converting=v.converting,
        conv_event_time=v.event_time,
        grid_agent=b.grid_agent,
        inv_seq=b.inv_seq,
    )
    return s, a.success != 0


def _stat(a: AgentRow, index, amount) -> AgentRow:
    return a._replace(stats=a.stats.at[index].add(jnp.asarray(amount, jnp.int32)))


def _stat_items(a: AgentRow, block_start, vec10) -> AgentRow:
    return a._replace(stats=a.stats.at[block_start : block_start + R].add(vec10))


def agent_inventory_add(a: AgentRow, delta, rank, enabled, seq0):
    """Add ``delta`` (int32[10]) to an agent's inventory, clamped to its limits. Items that
    become present go to the front of the inventory list in increasing ``rank`` order (the
    highest rank ends up first). Books ``.gained`` / ``.lost``. Returns (row, actual delta)."""
    new = jnp.clip(a.inv + jnp.where(enabled, delta, 0), 0, _LIMIT)
    actual = new - a.inv
    newly = (a.inv == 0) & (new > 0)
    a = a._replace(inv=new, seq=jnp.where(newly, seq0 + rank, a.seq))
    a = _stat_items(a, K.S_GAINED, jnp.maximum(actual, 0))
    a = _stat_items(a, K.S_LOST, jnp.maximum(-actual, 0))
    return a, actual


def conv_inventory_add(v: ConvRow, kind, cooling, delta, enabled, seq0, now, params: EnvParams):
    """Add ``delta`` to a converter (limit 255), then maybe_start: the engine calls it after
    every inventory change of a converter. Items that become present go to the front of its
    list. Returns (row, actual delta)."""
    new = jnp.clip(v.inv + jnp.where(enabled, delta, 0), 0, K.CONV_INV_LIMIT)
    actual = new - v.inv
    newly = (v.inv == 0) & (new > 0)
    seq = jnp.where(newly, seq0, v.seq)
    inv, converting, event_time = maybe_start(
        kind, new, v.converting, cooling, v.event_time, now, params, enabled=enabled
    )
    return ConvRow(inv, seq, converting, event_time), actual


def inventory_rank(seq, present):
    """Position of each item in an inventory list (front = 0): descending sequence number."""
    key = jnp.where(present, seq, jnp.iinfo(jnp.int32).min)
    ids = jnp.arange(R)
    ahead = (key[None, :] > key[:, None]) | (
        (key[None, :] == key[:, None]) & (ids[None, :] < ids[:, None])
    )
    return jnp.sum(ahead & present[None, :], axis=1).astype(jnp.int32)


def _frozen_gate(a: AgentRow, handled):
    """The frozen branch of the handler wrapper (§6.4): a frozen agent's action fails, books a
    frozen tick and decrements the counter. Returns (row, active)."""
    fz = handled & (a.frozen > 0)
    a = _stat(a._replace(frozen=jnp.where(fz, a.frozen - 1, a.frozen)), K.S_FROZEN_TICKS, fz)
    return a, handled & ~fz


def _finish(a: AgentRow, handled, active, ok, handler, moved) -> AgentRow:
    """Motion tracking, success / failure stats and the success flag (§6.4)."""
    swm = jnp.where(active, jnp.where(moved, 0, a.swm + 1), a.swm)
    a = a._replace(swm=swm, max_swm=jnp.maximum(a.max_swm, swm))
    a = _stat(a, K.S_SUCCESS + handler, active & ok)
    a = _stat(a, K.S_FAILED + handler, active & ~ok)
    return a._replace(success=jnp.where(handled, active & ok, a.success != 0).astype(jnp.int32))


def _invalid(action):
    return (action < 0) | (action >= K.NUM_ACTIONS)


def _clip_to_grid(grid, r, c):
    h, w = grid.shape
    return jnp.clip(r, 0, h - 1), jnp.clip(c, 0, w - 1)


# ----------------------------------------------------------------------------- attack (pass 1)
def attack_agent(b: Board, s: EnvState, i, action, params: EnvParams) -> Board:
    """Priority-1 pass for agent ``i``; ``s`` supplies the parts the passes do not change."""
    me = _stat(_unpack_agent(b.agents[i]), K.S_INVALID_TYPE, _invalid(action))
    handled = (action >= K.A_ATTACK0) & (action < K.NUM_ACTIONS)
    me, active = _frozen_gate(me, handled)
    # ok = has the required lasers and the attack lands; motion bookkeeping runs either way
    run = active & (me.inv[K.LASER] >= params.attack_cost)

    # Target scan: the 3x3 block ahead, by distance, centre / left / right (§7.5).
    fr, fc = jnp.asarray(K.DIR_DR)[me.ori], jnp.asarray(K.DIR_DC)[me.ori]
    rr, rc = jnp.asarray(K.RIGHT_DR)[me.ori], jnp.asarray(K.RIGHT_DC)[me.ori]
    dist = jnp.asarray([d for d, _ in K.ATTACK_SCAN], jnp.int32)
    side = jnp.asarray([sd for _, sd in K.ATTACK_SCAN], jnp.int32)
    sr, sc = _clip_to_grid(b.grid_agent, me.r + dist * fr + side * rr, me.c + dist * fc + side * rc)
    occ = b.grid_agent[sr, sc].astype(jnp.int32)
    found = occ >= 0
    count = jnp.cumsum(found)
    want = jnp.minimum(action - K.A_ATTACK0 + 1, count[-1])  # the k-th hit, else the last one
    j = jnp.sum(jnp.where(found & (count == want), occ, 0))
    ok = run & (count[-1] > 0)

    target = _unpack_agent(b.agents[j])
    blocked = ok & (target.inv[K.ARMOR] >= 1)
    hit = ok & ~blocked
    steal = hit & (target.frozen == 0)
    seq0 = b.inv_seq
    # Blocked: the target loses one armor, keeps everything else and is not frozen.
    target, _ = agent_inventory_add(
        target, jnp.zeros(R, jnp.int32).at[K.ARMOR].set(-1), 0, blocked, seq0
    )
    # Unfrozen, unarmoured target: steal everything, in the target's list order, one item at a
    # time, so each lands at the front of the attacker's list.
    rank = inventory_rank(target.seq, target.inv > 0)
    me, stolen = agent_inventory_add(me, target.inv, rank, steal, seq0 + _SEQ_STRIDE)
    target, _ = agent_inventory_add(target, -stolen, 0, steal, seq0 + 2 * _SEQ_STRIDE)
    # Hit: freeze (a frozen target's counter is reset, nothing is stolen).
    target = target._replace(frozen=jnp.where(hit, params.freeze_duration, target.frozen))
    # The handler's consumed resources (lasers) are taken after a successful attack.
    laser = jnp.zeros(R, jnp.int32).at[K.LASER].set(-params.attack_cost)
    me, _ = agent_inventory_add(me, laser, 0, ok, seq0 + 3 * _SEQ_STRIDE)

    me = _stat_items(me, K.S_STEAL, stolen)
    me = _stat(me, K.S_FRIENDLY_FIRE, steal)
    me = _stat(me, K.S_BLOCKED, blocked)
    me = _stat(me, K.S_WASTED, hit & ~steal)
    me = _finish(me, handled, active, ok, K.H_ATTACK, moved=False)
    # j == i only when there is no target (its row is then unchanged): store i last.
    agents = b.agents.at[j].set(_pack_agent(target)).at[i].set(_pack_agent(me))
    return b._replace(agents=agents, inv_seq=seq0 + 4 * _SEQ_STRIDE)


# ----------------------------------------------------------------------------- pass 0
def act_agent(b: Board, s: EnvState, i, action, params: EnvParams) -> Board:
    """Priority-0 pass for agent ``i`` (noop, move-or-use, put, get)."""
    me = _stat(_unpack_agent(b.agents[i]), K.S_INVALID_TYPE, _invalid(action))
    handled = (action >= 0) & (action < K.A_ATTACK0)
    me, active = _frozen_gate(me, handled)
    is_move = (action >= K.A_MOVE_N) & (action <= K.A_MOVE_E)
    is_put = action == K.A_PUT
    is_get = action == K.A_GET

    # Move-or-use: turn first, even if the move fails.
    ori = jnp.where(active & is_move, jnp.clip(action - K.A_MOVE_N, 0, 3), me.ori)
    r0, c0 = me.r, me.c
    tr, tc = _clip_to_grid(
        b.grid_agent, r0 + jnp.asarray(K.DIR_DR)[ori], c0 + jnp.asarray(K.DIR_DC)[ori]
    )
    obj = s.grid_obj[tr, tc].astype(jnp.int32)
    other = b.grid_agent[tr, tc].astype(jnp.int32)
    can_move = (obj == K.CELL_EMPTY) & (other < 0)
    moves = active & is_move & can_move
    move_ok = can_move | (other >= 0)  # bumping an agent is a successful no-move ("use")
    # both cells in one scatter (they differ: the target is a neighbour)
    cells_val = jnp.where(
        moves,
        jnp.stack([jnp.int8(-1), i.astype(jnp.int8)]),
        jnp.stack([i.astype(jnp.int8), other.astype(jnp.int8)]),
    )
    grid_agent = b.grid_agent.at[jnp.stack([r0, tr]), jnp.stack([c0, tc])].set(cells_val)
    me = me._replace(ori=ori, r=jnp.where(moves, tr, r0), c=jnp.where(moves, tc, c0))

    # put_items / get_items on the converter in front (obj = its index, or a negative code).
    ci = jnp.maximum(obj, 0)
    conv = _unpack_conv(b.convs[ci])
    kind = s.conv_kind[ci].astype(jnp.int32)
    cooling = s.conv_cooling[ci]  # no handler changes it
    facing_conv = (obj >= 0) & (kind >= 0)
    kind = jnp.clip(kind, 0, K.NUM_CONV_KINDS - 1)
    seq0 = b.inv_seq
    # put: one recipe's worth of each input, in item-id order, maybe_start after each item
    do_put = active & is_put & facing_conv
    put = jnp.zeros(R, jnp.int32)
    for n, item in enumerate(K.INPUT_ITEMS):
        need = params.recipe_input[kind, item]
        amount = jnp.minimum(jnp.minimum(need, me.inv[item]), K.CONV_INV_LIMIT - conv.inv[item])
        amount = jnp.where(do_put, amount, 0)
        vec = jnp.zeros(R, jnp.int32).at[item].set(amount)
        moved = do_put & (amount > 0)
        conv, _ = conv_inventory_add(
            conv, kind, cooling, vec, moved, seq0 + n * _SEQ_STRIDE, s.time, params
        )
        me, _ = agent_inventory_add(me, -vec, 0, moved, seq0)
        put = put + vec
    # get: all units of every output item, as far as the agent's limits allow
    do_get = active & is_get & facing_conv
    avail = jnp.where(params.recipe_output[kind] > 0, conv.inv, 0)
    me, taken = agent_inventory_add(me, avail, jnp.arange(R), do_get, seq0 + 4 * _SEQ_STRIDE)
    got_any = jnp.any(taken > 0)
    conv, _ = conv_inventory_add(
        conv, kind, cooling, -taken, do_get & got_any, seq0 + 5 * _SEQ_STRIDE, s.time, params
    )
    me = _stat_items(me, K.S_PUT, put)
    me = _stat_items(me, K.S_GET, taken)

    ok = jnp.select(
        [action == K.A_NOOP, is_move, is_put, is_get],
        [jnp.asarray(True), move_ok, jnp.any(put > 0), got_any],
        jnp.asarray(False),
    )
    handler = jnp.select([is_move, is_put, is_get], [K.H_MOVE, K.H_PUT, K.H_GET], K.H_NOOP)
    me = _finish(me, handled, active, ok, handler, moved=moves)
    return Board(
        agents=b.agents.at[i].set(_pack_agent(me)),
        convs=b.convs.at[ci].set(_pack_conv(conv)),
        grid_agent=grid_agent,
        inv_seq=seq0 + 6 * _SEQ_STRIDE,
    )


def run_agents(s: EnvState, actions, order, params: EnvParams):
    """Both priority passes over the agents in ``order``; returns (state, action_success)."""
    n = actions.shape[0]

    def make_body(handler):
        def body(p, b):
            i = order[p].astype(jnp.int32)
            return handler(b, s, i, actions[i], params)

        return body

    b = pack_board(s)
    b = jax.lax.fori_loop(0, n, make_body(attack_agent), b, unroll=_UNROLL)
    b = jax.lax.fori_loop(0, n, make_body(act_agent), b, unroll=_UNROLL)
    return unpack_board(s, b)
