"""The arena's parallel priority passes equal the engine's ordered loop, state for state.

``run_agents`` takes the turns that cannot interact at once and orders only the rest
(envs/arena/actions.py); ``run_agents_ordered`` is the literal loop. The golden recordings
(test_arena_golden.py) hold rarely more than a couple of agents near each other, so here a
crowded map (agents packed around every converter kind, lasers and armor in hand, some agents
frozen) is stepped with action mixes heavy in conflicts: several movers per free cell, chains
of movers, shared converters, attacks that land on attackers.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.arena import constants as K
from envs.arena.actions import (
    act_serial_mask,
    attack_serial_mask,
    pack_board,
    run_agents,
    run_agents_ordered,
)
from envs.arena.ascii_map import from_ascii
from envs.arena.state import make_params

CROWDED = [
    "##########",
    "#@@m@@n@@#",
    "#@_@..@S@#",
    "#.@@o@@..#",
    "#@.@@.@m@#",
    "##########",
]


def crowded_states(num_envs: int, seed: int, params):
    """Copies of the crowded map with random inventories, orientations and freezes."""
    base = from_ascii(CROWDED, params=params)
    n = base.agent_pos.shape[0]
    rng = np.random.default_rng(seed)
    inv = np.zeros((num_envs, n, K.NUM_RESOURCES), np.uint8)
    for item, hi in ((K.LASER, 3), (K.ARMOR, 2), (K.ORE_RED, 4), (K.BATTERY_RED, 3),
                     (K.HEART, 2)):
        inv[..., item] = rng.integers(0, hi + 1, (num_envs, n))
    seq = np.broadcast_to(np.asarray(base.agent_inv_seq), (num_envs, n, K.NUM_RESOURCES))
    frozen = np.where(rng.random((num_envs, n)) < 0.15, rng.integers(1, 4, (num_envs, n)), 0)
    states = jax.tree.map(lambda x: jnp.broadcast_to(x, (num_envs,) + x.shape), base)
    return states.replace(
        agent_inv=jnp.asarray(inv),
        agent_inv_seq=jnp.asarray(seq, jnp.int32),
        agent_ori=jnp.asarray(rng.integers(0, 4, (num_envs, n)), jnp.int8),
        agent_frozen=jnp.asarray(frozen, jnp.uint8),
    )


def random_actions(rng, shape):
    """Mostly moves, put/get and attacks (ids beyond the valid range included)."""
    kinds = rng.choice(5, size=shape, p=[0.05, 0.45, 0.2, 0.25, 0.05])
    move = rng.integers(K.A_MOVE_N, K.A_MOVE_E + 1, shape)
    putget = rng.integers(K.A_PUT, K.A_GET + 1, shape)
    attack = rng.integers(K.A_ATTACK0, K.NUM_ACTIONS, shape)
    invalid = rng.choice([-1, K.NUM_ACTIONS, 99], shape)
    return np.select([kinds == 0, kinds == 1, kinds == 2, kinds == 3],
                     [np.zeros(shape, int), move, putget, attack], invalid).astype(np.int32)


def assert_states_equal(a, b, where):
    for path, x, y in zip(jax.tree_util.tree_flatten_with_path(a)[0],
                          jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y),
                                      err_msg=f"{jax.tree_util.keystr(path[0])} at {where}")


N = sum(row.count("@") for row in CROWDED)
PARALLEL = jax.jit(jax.vmap(run_agents, (0, 0, 0, None)))
ORDERED = jax.jit(jax.vmap(run_agents_ordered, (0, 0, 0, None)))
SERIAL_COUNTS = jax.jit(jax.vmap(lambda s, a, p: (
    attack_serial_mask(pack_board(s), a, p).sum(), act_serial_mask(pack_board(s), s, a).sum()),
    (0, 0, None)))


@pytest.mark.parametrize("combat", [True, False])
def test_parallel_passes_equal_the_ordered_loop(combat):
    params = make_params(combat=combat)  # data: both cases share the compiled programs
    num_envs, steps = 48, 12
    states = crowded_states(num_envs, seed=int(combat), params=params)
    n = states.agent_pos.shape[1]
    rng = np.random.default_rng(7 + int(combat))
    seen = np.zeros(2, int)
    for t in range(steps):
        actions = jnp.asarray(random_actions(rng, (num_envs, n)))
        order = jnp.asarray(np.stack([rng.permutation(n) for _ in range(num_envs)]), jnp.int32)
        states = states.replace(time=states.time + 1)
        want, want_ok = ORDERED(states, actions, order, params)
        got, ok = PARALLEL(states, actions, order, params)
        assert_states_equal(got, want, f"step {t}")
        np.testing.assert_array_equal(np.asarray(ok), np.asarray(want_ok))
        s1, s0 = SERIAL_COUNTS(states, actions, params)
        seen += [int(s1.max()), int(s0.max())]
        states = want
    # The mix really exercised the ordered part: several ordered turns in an env per step.
    assert seen[1] > 2 * steps, seen
    if combat:
        assert seen[0] > 2 * steps, seen
