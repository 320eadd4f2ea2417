"""The grid observation's entity planes (local mine/goal/door, global mine/goal) against a plain
per-entity NumPy reference, on the human maps (doors, locked/trap switches, toggle mines, exit and
switch) after a few random steps. The planes are built by one uint8 scatter-max over every plane
(envs/npp/observations.py); this pins what each plane marks, where, and how overlaps combine."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.npp import constants as C
from envs.npp import observations as O
from envs.npp.env import NppEnv
from envs.npp.level import ALL_ENTITY_TYPES
from envs.npp.levels import human_map_paths, load_levels

PLANES = {1: "local_mine", 2: "local_goal", 3: "local_door", 5: "global_mine", 6: "global_goal"}


def reference_planes(ent_type, pos, active, estate, door_closed, door_seg, switch_hit, nx, ny):
    """uint8[10, 25, 44] with only the entity planes filled, one entity at a time."""
    out = np.zeros((O.NUM_GRID_CHANNELS, O.GRID_H, O.GRID_W), np.uint8)
    hx, hy = math.floor(np.float32(nx) / np.float32(12)), math.floor(np.float32(ny) / np.float32(12))
    frames = {"local": (1, 12.0, np.float32((hy - 12) * 12), np.float32((hx - 22) * 12)),
              "global": (5, 24.0, np.float32(0), np.float32(0))}

    def mark(ch, scale, oy, ox, px, py, v):
        iy = math.floor((np.float32(py) - oy) / np.float32(scale))
        ix = math.floor((np.float32(px) - ox) / np.float32(scale))
        if v and 0 <= iy < O.GRID_H and 0 <= ix < O.GRID_W:
            out[ch, iy, ix] = max(out[ch, iy, ix], v)

    for name, (base, scale, oy, ox) in frames.items():
        for e, t in enumerate(ent_type):
            px, py = pos[e]
            if t in (C.T_MINE, C.T_MINE_SAFE) and active[e]:
                mark(base, scale, oy, ox, px, py, 255 if estate[e] == 0 else 96)
            goal = 255 if (t == C.T_SWITCH and active[e]) else (255 if switch_hit else 128) if t == C.T_EXIT else 0
            mark(base + 1, scale, oy, ox, px, py, goal)
            if name == "local":
                if t in (C.T_DOOR_LOCKED, C.T_DOOR_TRAP) and active[e]:
                    mark(3, scale, oy, ox, px, py, 160)
                if t in (C.T_DOOR_REGULAR, C.T_DOOR_LOCKED, C.T_DOOR_TRAP) and door_closed[e]:
                    x1, y1, x2, y2 = np.asarray(door_seg[e], np.float32)
                    mark(3, scale, oy, ox, (x1 + x2) / np.float32(2), (y1 + y2) / np.float32(2), 255)
    return out


@pytest.fixture(scope="module")
def human_rollout():
    env = NppEnv(obs_kind="grid", frame_skip=4, level_source="fixed", entity_types=ALL_ENTITY_TYPES,
                 max_entities=320, max_doors=16)
    levels, names = load_levels(human_map_paths(), env.max_entities, env.max_doors, env.entity_types)
    params = env.level_params(levels)
    n = len(names)
    obs, state = jax.jit(jax.vmap(env.reset_env))(jax.random.split(jax.random.PRNGKey(0), n), params)
    step = jax.jit(jax.vmap(env.step_env))
    snaps = [(obs, state)]
    for t in range(12):
        keys = jax.random.split(jax.random.PRNGKey(t + 1), n)
        actions = jax.random.randint(jax.random.PRNGKey(100 + t), (n,), 0, 6)
        obs, state = step(keys, state, actions, params)[:2]
        snaps.append((obs, state))
    return names, snaps


def test_entity_planes_match_a_per_entity_reference(human_rollout):
    names, snaps = human_rollout
    marked = {ch: 0 for ch in PLANES}
    for obs, state in snaps[::4]:
        obs = np.asarray(obs)[:, 0]
        sim, level = jax.tree.map(np.asarray, state.sim), jax.tree.map(np.asarray, state.level)
        for i, name in enumerate(names):
            ref = reference_planes(level.ent_type[i], sim.ents.pos[i], sim.ents.active[i], sim.ents.state[i],
                                   sim.ents.door_closed[i], level.door_seg[i], bool(sim.switch_hit[i]),
                                   sim.ninja.x[i], sim.ninja.y[i])
            for ch, plane in PLANES.items():
                assert np.array_equal(obs[i, ch], ref[ch]), f"{name}: {plane} differs from the reference"
                marked[ch] += int((ref[ch] > 0).sum())
    # the maps exercise every plane (a test over empty planes would pass anything)
    assert all(v > 0 for v in marked.values()), marked


def test_grid_observation_is_uint8_and_planes_stay_in_their_value_sets(human_rollout):
    _, snaps = human_rollout
    obs = np.asarray(snaps[-1][0])
    assert obs.dtype == np.uint8 and obs.shape[1:] == (1, O.NUM_GRID_CHANNELS, O.GRID_H, O.GRID_W)
    allowed = {1: {0, 96, 255}, 2: {0, 128, 255}, 3: {0, 160, 255}, 5: {0, 96, 255}, 6: {0, 128, 255}}
    for ch, values in allowed.items():
        assert set(np.unique(obs[:, 0, ch]).tolist()) <= values, ch


def test_scatter_planes_take_the_max_of_overlapping_marks():
    iy = jnp.array([0, 0, 3, 5], jnp.int32)
    ix = jnp.array([1, 1, 2, 9], jnp.int32)     # (5, 9) is the spare cell: dropped
    marks = [(iy, ix, jnp.array([96, 255, 0, 200], jnp.uint8)),
             (iy, ix, jnp.array([128, 0, 7, 1], jnp.uint8))]
    planes = np.asarray(O._scatter_planes(marks, 5, 9))
    assert planes.shape == (2, 5, 9) and planes.dtype == np.uint8
    assert planes[0, 0, 1] == 255 and planes[1, 0, 1] == 128 and planes[1, 3, 2] == 7
    assert planes[0].sum() == 255 and planes[1].sum() == 135
