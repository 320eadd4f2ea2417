"""Auto-reset by scatter: a step that writes only the finished envs' rows, ``K`` at a time
(one chunk, or a loop of them when more than ``K`` finish at once), equals, bit for bit, a
step that selects over every env (``K = N``: the plain select), for every reset strategy
(pooled also vmapped over runs, as seeds / A/B variants are: the loop's predicate batched).
Both steps run in one program from the same state (XLA merges their common policy and env
work: one compile per case), at every step of a trajectory with every kind of step."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_arena import config as C
from jaxrl_arena.curriculum.factory import make_curriculum
from jaxrl_arena.networks import make_policy
from jaxrl_arena.rollout import (Rollout, reset_pool_size, reset_refresh_count,
                                 reset_scatter_capacity)
from toy_envs import CountdownEnv, CountdownState

N, T, POOL, REFRESH, K = 24, 16, 6, 2, 5


class DistinctResets(CountdownEnv):
    """Countdown whose every reset is distinct (a random ``actions_sum``), so a fresh entry
    handed to the wrong env shows in the state. Nearly every first episode ends at the first
    step (more than ``4K`` envs at once: every chunk of the loop, the last one padded), the
    others at a random step; after that envs finish a few at a time, at some steps more."""

    can_truncate = False  # no final-value forward: a smaller program

    def reset_env(self, key, params):
        state = CountdownState(params.length * 0, jax.random.uniform(key, (self.num_agents,)))
        return self._obs(state, params), state

    def reset_env_first(self, key, params):
        k_sync, k_t = jax.random.split(key)
        _, state = self.reset_env(key, params)
        t = jnp.where(jax.random.uniform(k_sync) < 0.95, params.length - 1,
                      jax.random.randint(k_t, (), 0, params.length))
        state = state.replace(t=t)
        return self._obs(state, params), state


@pytest.fixture(scope="module")
def setup():
    env = DistinctResets()
    policy = make_policy(C.PolicyConfig(hidden_sizes=(8,)), (2,), 3)
    curriculum = make_curriculum(C.Config(), env)  # uniform over the short and long tasks
    params = jax.jit(policy.init)(jax.random.PRNGKey(0), np.zeros((1, 2), np.float32))
    return env, policy, curriculum, params, curriculum.init(jax.random.PRNGKey(1))


def make_rollout(setup, strategy, capacity):
    env, policy, curriculum, _, _ = setup
    cfg_env = C.EnvConfig(reset_strategy=strategy, reset_pool=POOL, reset_refresh=REFRESH)
    pool_size = reset_pool_size(cfg_env, N)
    return Rollout(env, policy, curriculum, num_envs=N, num_steps=T, horizon=T,
                   pool_size=pool_size, refresh=reset_refresh_count(cfg_env, pool_size),
                   reset_capacity=capacity)


def compare_steps(setup, strategy, runs=None):
    """Steps a trajectory of ``T`` steps with the plain select; at each step, a step with
    capacity ``K`` from the same state must give the same state, transition and sums.
    ``runs``: that many runs, vmapped. Returns the finished envs per step [T(, runs)]."""
    *_, params, cstate = setup
    full, scatter = make_rollout(setup, strategy, N), make_rollout(setup, strategy, K)

    def start(key):  # the initial state and, for pooled, every step's staged pool entries
        staged = None
        if full.refresh:
            staged = full._fresh_episodes(cstate, full._pool_keys(key, T * REFRESH))
            staged = jax.tree.map(lambda x: x.reshape((T, REFRESH) + x.shape[1:]), staged)
        return full.init(key, cstate), staged

    def both(rs, key, staged):
        return tuple(r.step(params, cstate, rs, key, staged) for r in (full, scatter))

    key = jax.random.PRNGKey(2)
    if runs:  # staged entries: step axis first
        start, both = jax.vmap(start, out_axes=(0, 1)), jax.vmap(both, (0, None, 0))
        key = jax.random.split(key, runs)
    # Least LLVM optimisation: the compile dominates this test; both steps are compiled alike.
    fast = {"xla_backend_optimization_level": 0}
    rs, staged = jax.jit(start, compiler_options=fast)(key)
    staged = jax.device_get(staged)
    both = jax.jit(both, compiler_options=fast)
    finished = []
    for t, key in enumerate(jax.random.split(jax.random.PRNGKey(3), T)):
        step_staged = jax.tree.map(lambda x: x[t], staged)  # noqa: B023
        reference, scattered = both(rs, key, step_staged)
        # New rollout state (env state, params, task ids, obs, pool and cursors, episode
        # start/return/length), the transition and the episode sums.
        chex.assert_trees_all_equal(scattered, reference)
        rs = reference[0]
        finished.append(np.asarray(reference[1].done).sum(-1))
    if strategy == "pooled":  # the take cursor moved on by every finished env
        np.testing.assert_array_equal(np.asarray(rs.pool[2])[..., 0], np.sum(finished, 0) % POOL)
    return np.stack(finished)


@pytest.mark.parametrize("strategy, runs", [("pooled", 2), ("optimistic", None),
                                            ("every_step", None)])
def test_scatter_reset_equals_full_select(setup, strategy, runs):
    finished = compare_steps(setup, strategy, runs)
    # Steps where 1..K envs finished (one chunk), more (the loop) and more than 4K (5 chunks,
    # the last one past N: its padding).
    assert np.any((finished > 0) & (finished <= K))
    assert np.any((finished > K) & (finished <= 4 * K)) and np.any(finished > 4 * K)
    if runs:  # vmapped: one run loops while another is done
        over = finished > K
        assert np.any(over.any(1) & ~over.all(1))


def test_default_capacity():
    assert reset_scatter_capacity(32768) == 4096
    assert reset_scatter_capacity(256) == 64
    assert reset_scatter_capacity(16) == 16  # K = N: the plain select
    assert reset_scatter_capacity(1000, 5) == 5 and reset_scatter_capacity(8, 100) == 8


def test_pack_leaves_round_trips_every_dtype_and_groups_by_shape():
    from jaxrl_arena.rollout import pack_leaves

    tree = {"f": jnp.arange(6.0).reshape(2, 3), "g": -jnp.ones((2, 3)), "b": jnp.eye(2, 3, dtype=bool),
            "i": jnp.full((2, 3), -7, jnp.int32), "u8": jnp.full((2, 3, 4), 250, jnp.uint8),
            "i8": jnp.full((2, 3), -3, jnp.int8), "none": None, "v": jnp.ones(2)}
    groups, unpack = pack_leaves(tree)
    # f and g share a group; b, i and i8 travel together as int32; u8 and v stay alone.
    assert sorted(g.shape for g in groups) == [(2,), (2, 3, 2), (2, 3, 3), (2, 3, 4)]
    stacked = jax.tree.map(lambda g: jnp.stack([g, g]), groups)   # a scan's leading axis
    for out, lead in ((unpack(groups), ()), (unpack(stacked), (2,))):
        assert out["none"] is None
        for name, x in tree.items():
            if x is None:
                continue
            assert out[name].dtype == x.dtype and out[name].shape == lead + x.shape, name
            np.testing.assert_array_equal(out[name], jnp.broadcast_to(x, lead + x.shape))


def test_shared_task_params_step_equals_per_env_params():
    """A curriculum whose tasks all have the same params lets the step read them as constants
    and skip rewriting them at resets: the rollout must equal the per-env-params one."""
    from jaxrl_arena.curriculum.base import UniformCurriculum

    env = CountdownEnv(num_agents=2, truncate=True)
    p = env.default_params
    shared = UniformCurriculum({"a": p, "b": p})
    assert UniformCurriculum({"a": p, "b": env.named_tasks()["long"]}).shared_params() is None
    assert shared.shared_params() is not None
    policy = make_policy(C.PolicyConfig(hidden_sizes=(8,)), (2,), 3)
    params = jax.jit(policy.init)(jax.random.PRNGKey(0), np.zeros((1, 2), np.float32))
    cstate = shared.init(jax.random.PRNGKey(1))
    runs = []
    for use_shared in (True, False):
        r = Rollout(env, policy, shared, num_envs=N, num_steps=T, horizon=T, pool_size=POOL)
        if not use_shared:
            r.shared_params = None
        rs = r.init(jax.random.PRNGKey(3), cstate)
        runs.append(jax.jit(r.run)(params, cstate, rs, jax.random.PRNGKey(4)))
    assert bool(runs[0][1].done.any())
    chex.assert_trees_all_equal(runs[0], runs[1])
