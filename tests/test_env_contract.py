"""One contract test for every registered environment (``jaxrl_arena.registry``): the core
functions keep their declared shapes and dtypes under jit and vmap, and the optional surface
of ``envs.base.MultiAgentEnv`` (tasks, stages, thresholds, evaluation sets, task space,
observation scale, flags) is consistent with the env's own params and observations."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.base import Box, Discrete, MultiAgentEnv
from jaxrl_arena.config import Config, EnvConfig, NppConfig
from jaxrl_arena.registry import make

CASES = {
    "arena-dense": Config(env=EnvConfig(name="arena", num_agents=6, obs_kind="dense", max_steps=20)),
    "arena-tokens": Config(env=EnvConfig(name="arena", num_agents=6, obs_kind="tokens", max_steps=20)),
    "npp-state": Config(env=EnvConfig(name="npp", obs_kind="state"), npp=NppConfig(stage="simplest")),
    "npp-grid": Config(env=EnvConfig(name="npp", obs_kind="grid")),
    "CartPole-v1": Config(env=EnvConfig(name="CartPole-v1")),
}


def same_structure(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert jnp.shape(x) == jnp.shape(y) and jnp.asarray(x).dtype == jnp.asarray(y).dtype


@pytest.fixture(scope="module", params=list(CASES))
def env(request) -> MultiAgentEnv:
    return make(CASES[request.param])


def test_reset_and_step_keep_the_declared_shapes(env):
    params = env.default_params
    space, actions = env.observation_space(params), env.action_space(params)
    assert isinstance(space, Box) and isinstance(actions, Discrete)
    A, n = env.num_agents, 3
    keys = jax.random.split(jax.random.PRNGKey(0), n)
    obs, state = jax.jit(jax.vmap(env.reset_env, (0, None)))(keys, params)
    chex.assert_shape(obs, (n, A, *space.shape))
    assert obs.dtype == jnp.dtype(space.dtype)
    act = jax.random.randint(jax.random.PRNGKey(1), (n, A), 0, actions.n)
    out = jax.jit(jax.vmap(env.step_env, (0, 0, 0, None)))(keys, state, act, params)
    obs2, state2, reward, terminated, truncated, info = out
    chex.assert_shape(obs2, obs.shape)
    chex.assert_shape([reward, terminated, truncated], (n, A))
    assert reward.dtype == jnp.float32 and terminated.dtype == jnp.bool_ and truncated.dtype == jnp.bool_
    assert isinstance(info, dict)
    same_structure(state2, state)
    chex.assert_tree_all_finite(reward)
    stats = jax.vmap(env.episode_stats)(state2)
    for name, value in stats.items():
        chex.assert_shape(value, (n, A)), name
    first, _ = jax.jit(jax.vmap(env.reset_env_first, (0, None)))(keys, params)
    chex.assert_shape(first, obs.shape)
    if not env.can_truncate:
        assert not bool(truncated.any())


def test_optional_surface_is_consistent(env):
    params = env.default_params
    assert isinstance(env.can_truncate, bool) and isinstance(env.cheap_reset, bool)
    tasks = env.named_tasks()
    assert tasks and all(isinstance(k, str) for k in tasks)
    for p in tasks.values():
        same_structure(p, params)
    stages = env.curriculum_stages()
    if stages is not None:
        for p in stages.values():
            same_structure(p, params)
        assert set(tasks) <= set(stages)
    table = env.stage_thresholds()
    if table is not None:
        assert stages is not None and set(table) == set(stages)
        for advance, min_episodes, regression in table.values():
            assert 0 <= regression <= advance <= 1 and min_episodes >= 1
    eval_env, sets = env.eval_sets(2, 0)
    assert isinstance(eval_env, MultiAgentEnv) and sets
    for p in sets.values():   # stacked params the evaluation env plays (N++: fixed levels)
        assert all(np.shape(x)[0] == 2 for x in jax.tree.leaves(p))
        obs, _ = jax.jit(jax.vmap(eval_env.reset_env))(jax.random.split(jax.random.PRNGKey(2), 2), p)
        chex.assert_shape(obs, (2, env.num_agents, *env.observation_space(params).shape))
    space = env.task_space()
    if space is not None:
        ids = jnp.arange(3, dtype=jnp.int32) * 997
        batch = jax.jit(space.params)(ids)
        same_structure(jax.tree.map(lambda x: x[0], batch), params)
        assert space.num_tasks > 3 and space.score_max > 0
    if env.obs_scale is not None:
        shape = env.observation_space(params).shape
        scale = np.asarray(env.obs_scale)
        assert scale.dtype == np.float32 and np.all(scale > 0)
        np.broadcast_shapes(scale.reshape(scale.shape + (1,) * (len(shape) - scale.ndim)).shape, shape)


def test_a_restricted_npp_env_offers_only_its_stage_and_keeps_the_ladder():
    env = make(CASES["npp-state"])
    assert list(env.named_tasks()) == ["simplest"]
    assert len(env.curriculum_stages()) == 9
