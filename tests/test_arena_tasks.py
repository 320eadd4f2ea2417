"""The arena's bucketed task space (arena.md §12.1).

Section marks (§) cite docs/specs/arena.md.
"""

import random

import jax
import jax.numpy as jnp
import numpy as np

from envs.arena import constants as K
from envs.arena import make_params
from envs.arena import tasks as AT

SPEC_VALUES = {
    "weight": [0, 0.1, 0.5, 0.9, 1.0],
    "cap": [1, 2],
    "attack": [1, 100],
    "count": [0, 1],
}
# upstream draw order: ore w, ore cap, battery w, battery cap, laser w, laser cap, armor w,
# armor cap, attack cost, then mine, generator, altar, lasery, armory initial counts
UPSTREAM_ORDER = ["weight", "cap"] * 4 + ["attack"] + ["count"] * 5
SPACE = AT.ArenaTaskSpace(make_params())
PARAMS = jax.jit(SPACE.params)


def test_size_and_bijection():
    assert AT.NUM_TASKS == 640_000 == 5 ** 4 * 2 ** 4 * 2 * 2 ** 5
    ids = jnp.arange(AT.NUM_TASKS, dtype=jnp.int32)
    buckets = jax.jit(AT.decode)(ids)
    assert buckets.shape == (AT.NUM_TASKS, 14)
    assert np.array_equal(np.asarray(buckets).max(0), AT.RADICES - 1)
    assert np.array_equal(np.asarray(buckets).min(0), np.zeros(14))
    assert np.array_equal(np.asarray(jax.jit(AT.encode)(buckets)), np.asarray(ids))


def check_params(p, buckets):
    """``p``: one task's EnvParams (numpy); ``buckets``: its 14 indices."""
    vals = [SPEC_VALUES[kind][b] for kind, b in zip(UPSTREAM_ORDER, buckets)]
    for j, item in enumerate((K.ORE_RED, K.BATTERY_RED, K.LASER, K.ARMOR)):
        assert np.isclose(p.reward_weight[item], vals[2 * j])
        assert p.reward_cap[item] == vals[2 * j + 1]
    assert p.attack_cost == vals[8]
    assert p.initial_resource_count.tolist() == vals[9:14]
    assert p.reward_weight[K.HEART] == 1.0 and p.reward_cap[K.HEART] == 100.0


def test_every_bucket_decodes_to_spec_values():
    base = make_params()
    # per bucket, every value, on top of random other buckets
    rng = np.random.default_rng(0)
    rows = []
    for k, r in enumerate(AT.RADICES):
        for v in range(r):
            b = np.array([rng.integers(0, x) for x in AT.RADICES])
            b[k] = v
            rows.append(b)
    rows = np.stack(rows)
    p = jax.tree.map(np.asarray, PARAMS(AT.encode(jnp.asarray(rows))))
    for i, b in enumerate(rows):
        check_params(jax.tree.map(lambda x: x[i], p), b)
        # everything the buckets do not touch is the base recipe's
        untouched = [i_ for i_ in range(10) if i_ not in (K.ORE_RED, K.BATTERY_RED, K.LASER,
                                                          K.ARMOR)]
        assert np.array_equal(p.reward_weight[i][untouched], np.asarray(base.reward_weight)[untouched])
        for name in ("recipe_input", "recipe_output", "cooldown", "quadrant_counts", "max_steps",
                     "freeze_duration", "initial_inventory", "desync_episodes"):
            assert np.array_equal(getattr(p, name)[i], np.asarray(getattr(base, name))), name


def test_upstream_task_buckets_match_python_random():
    lists = [SPEC_VALUES[kind] for kind in UPSTREAM_ORDER]
    ids = list(range(50)) + [12345, 639_999, 10 ** 6, 2 ** 31 - 1]
    for tid in ids:
        rng = random.Random(tid)
        drawn = [rng.choice(values) for values in lists]
        b = AT.upstream_task_buckets(tid)
        assert [lists[k][i] for k, i in enumerate(b)] == drawn
        assert AT.decode(AT.upstream_task_id(tid)).tolist() == list(b)
    p = jax.tree.map(np.asarray, PARAMS(jnp.asarray([AT.upstream_task_id(t) for t in ids])))
    for i, tid in enumerate(ids):
        check_params(jax.tree.map(lambda x: x[i], p), AT.upstream_task_buckets(tid))


def test_params_are_valid_env_params():
    base = make_params()
    ids = jnp.array([0, 1, 639_999, 320_001], jnp.int32)
    p = PARAMS(ids)
    assert type(p) is type(base)
    for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(base)):
        assert a.dtype == b.dtype and a.shape == (4,) + b.shape
    one = SPACE.params_of_buckets(AT.decode(jnp.int32(5)))
    for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(base)):
        assert a.dtype == b.dtype and a.shape == b.shape
    compiled = PARAMS._cache_size()
    PARAMS(ids + 7)
    assert PARAMS._cache_size() == compiled  # tasks are data: no recompilation


def test_uniform_over_the_space_samples_every_bucket_and_counts_episodes():
    """The A/B baseline (kind ``arena_uniform``): uniform task ids over all 640,000 tasks,
    decoded to valid params; episode counts and the mean score of the last update."""
    from jaxrl_arena.curriculum import EpisodeOutcomes
    from jaxrl_arena.curriculum.base import UniformSpaceCurriculum

    cur = UniformSpaceCurriculum(AT.ArenaTaskSpace())
    state = cur.init()
    ids = np.asarray(cur.sample(state, jax.random.split(jax.random.PRNGKey(0), 4096)))
    assert ids.min() >= 0 and ids.max() < AT.NUM_TASKS and len(np.unique(ids)) > 4000
    buckets = np.asarray(AT.decode(jnp.asarray(ids)))
    for b, radix in enumerate(AT.RADICES):  # every value of every bucket is drawn
        assert set(np.unique(buckets[:, b])) == set(range(radix)), b
    state = cur.update(state, EpisodeOutcomes(task_id=jnp.asarray(ids[:4]),
                                              done=jnp.array([True, True, False, True]),
                                              score=jnp.array([1.0, 2.0, 100.0, 3.0])))
    assert int(state.episodes) == 3 and float(state.last_score) == 2.0
