"""envs.export: this project's envs as gymnax ``Environment``s and JaxMARL-style dicts of agents.

The training checks run a PureJaxRL-shaped PPO written here (``make_train(config) ->
train(rng)``, one jit, vmapped envs, a LogWrapper on top) through nothing but the exported API:
gymnax's own ``LogWrapper`` on N++, a JaxMARL-style log wrapper on the arena's agents.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import flax.linen as nn
import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import struct
from gymnax.environments import environment, spaces
from gymnax.wrappers.purerl import LogWrapper

from envs.arena import ArenaEnv
from envs.export import to_gymnax, to_jaxmarl
from envs.gymnax_adapter import GymnaxAdapter
from envs.npp.env import NppEnv

ARENA_STEPS = 16  # arena episode length: several episodes end within the short training below


# ----------------------------------------------------------------------------- a PPO harness
class ActorCritic(nn.Module):
    num_actions: int

    @nn.compact
    def __call__(self, x):
        x = x.reshape((x.shape[0], -1)).astype(jnp.float32)
        actor = nn.tanh(nn.Dense(32)(nn.tanh(nn.Dense(32)(x))))
        critic = nn.tanh(nn.Dense(32)(nn.tanh(nn.Dense(32)(x))))
        return nn.Dense(self.num_actions)(actor), nn.Dense(1)(critic)[:, 0]


class Transition(NamedTuple):
    done: jax.Array
    action: jax.Array
    value: jax.Array
    reward: jax.Array
    log_prob: jax.Array
    obs: jax.Array
    info: Any


@struct.dataclass
class MarlLogState:
    env_state: Any
    episode_returns: jax.Array
    episode_lengths: jax.Array
    returned_episode_returns: jax.Array
    returned_episode_lengths: jax.Array


class MarlLogWrapper:
    """Per-agent episode returns and lengths of a dict-of-agents env, JaxMARL's way: the
    episode ends for every agent when ``dones["__all__"]``."""

    def __init__(self, env):
        self._env = env

    def __getattr__(self, name):
        return getattr(self._env, name)

    def reset(self, key):
        obs, env_state = self._env.reset(key)
        zeros = jnp.zeros(self._env.num_agents)
        return obs, MarlLogState(env_state, zeros, zeros, zeros, zeros)

    def step(self, key, state, actions):
        obs, env_state, rewards, dones, info = self._env.step(key, state.env_state, actions)
        ep_done = dones["__all__"]
        reward = jnp.stack([rewards[a] for a in self._env.agents])
        returns, lengths = state.episode_returns + reward, state.episode_lengths + 1
        state = MarlLogState(
            env_state,
            returns * (1 - ep_done), lengths * (1 - ep_done),
            jnp.where(ep_done, returns, state.returned_episode_returns),
            jnp.where(ep_done, lengths, state.returned_episode_lengths))
        info = {**info, "returned_episode_returns": state.returned_episode_returns,
                "returned_episode_lengths": state.returned_episode_lengths,
                "returned_episode": jnp.full((self._env.num_agents,), ep_done)}
        return obs, state, rewards, dones, info


def make_train(config):
    """PPO on ``config["ENV"]``: a gymnax env (one actor per env) or, with ``config["MARL"]``,
    a dict-of-agents env whose agents are flattened into the batch (one actor per agent)."""
    env, marl = config["ENV"], config["MARL"]
    env_params = None if marl else env.default_params
    agents = env.agents if marl else None
    actors = config["NUM_ENVS"] * (len(agents) if marl else 1)
    num_updates = config["TOTAL_TIMESTEPS"] // config["NUM_STEPS"] // config["NUM_ENVS"]
    minibatch = actors * config["NUM_STEPS"] // config["NUM_MINIBATCHES"]
    num_actions = (env.action_space(agents[0]) if marl else env.action_space(env_params)).n

    def batchify(tree):  # {agent: [N, ...]} -> [A * N, ...], agent-major
        return jnp.concatenate([tree[a] for a in agents]) if marl else tree

    def unbatchify(x):  # [A * N] -> {agent: [N]}
        return {a: x.reshape(len(agents), config["NUM_ENVS"])[i]
                for i, a in enumerate(agents)} if marl else x

    def env_reset(keys):
        return jax.vmap(env.reset)(keys) if marl else jax.vmap(env.reset, (0, None))(keys,
                                                                                    env_params)

    def env_step(keys, state, action):
        if marl:
            obs, state, reward, done, info = jax.vmap(env.step)(keys, state, unbatchify(action))
            info = jax.tree.map(lambda x: x.T.reshape(actors) if x.ndim == 2 else x, info)
            return batchify(obs), state, batchify(reward), batchify(done), info
        obs, state, reward, terminated, truncated, info = jax.vmap(
            env.step, (0, 0, 0, None))(keys, state, action, env_params)
        return obs, state, reward, terminated | truncated, info

    def train(rng):
        network = ActorCritic(num_actions)
        rng, k_init, k_reset = jax.random.split(rng, 3)
        obs, env_state = env_reset(jax.random.split(k_reset, config["NUM_ENVS"]))
        obs = batchify(obs)
        params = network.init(k_init, obs)
        tx = optax.chain(optax.clip_by_global_norm(0.5), optax.adam(config["LR"], eps=1e-5))
        opt_state = tx.init(params)

        def update(runner, _):
            def step(runner, _):
                params, opt_state, env_state, obs, rng = runner
                rng, k_act, k_env = jax.random.split(rng, 3)
                logits, value = network.apply(params, obs)
                action = jax.random.categorical(k_act, logits)
                log_prob = jnp.take_along_axis(jax.nn.log_softmax(logits), action[:, None], 1)[:, 0]
                new_obs, env_state, reward, done, info = env_step(
                    jax.random.split(k_env, config["NUM_ENVS"]), env_state, action)
                transition = Transition(done, action, value, reward.astype(jnp.float32),
                                        log_prob, obs, info)
                return (params, opt_state, env_state, new_obs, rng), transition

            runner, traj = jax.lax.scan(step, runner, None, config["NUM_STEPS"])
            params, opt_state, env_state, obs, rng = runner
            _, last_value = network.apply(params, obs)

            def gae(carry, t):
                advantage, next_value = carry
                delta = t.reward + config["GAMMA"] * next_value * (1 - t.done) - t.value
                advantage = delta + config["GAMMA"] * config["GAE_LAMBDA"] * (1 - t.done) * advantage
                return (advantage, t.value), advantage

            _, advantages = jax.lax.scan(gae, (jnp.zeros_like(last_value), last_value), traj,
                                         reverse=True)
            targets = advantages + traj.value

            def loss_fn(params, batch):
                t, adv, target = batch
                logits, value = network.apply(params, t.obs)
                log_prob = jnp.take_along_axis(jax.nn.log_softmax(logits), t.action[:, None],
                                               1)[:, 0]
                ratio = jnp.exp(log_prob - t.log_prob)
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                actor = -jnp.minimum(ratio * adv, jnp.clip(ratio, 0.8, 1.2) * adv).mean()
                entropy = -(jax.nn.softmax(logits) * jax.nn.log_softmax(logits)).sum(-1).mean()
                return actor + 0.5 * jnp.square(value - target).mean() - 0.01 * entropy

            def epoch(carry, _):
                params, opt_state, rng = carry
                rng, k_perm = jax.random.split(rng)
                flat = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]),
                                    (traj._replace(info=()), advantages, targets))
                perm = jax.random.permutation(k_perm, actors * config["NUM_STEPS"])
                batches = jax.tree.map(
                    lambda x: x[perm].reshape((config["NUM_MINIBATCHES"], minibatch) + x.shape[1:]),
                    flat)

                def minibatch_step(carry, batch):
                    params, opt_state = carry
                    loss, grads = jax.value_and_grad(loss_fn)(params, batch)
                    updates, opt_state = tx.update(grads, opt_state)
                    return (optax.apply_updates(params, updates), opt_state), loss

                (params, opt_state), losses = jax.lax.scan(minibatch_step, (params, opt_state),
                                                           batches)
                return (params, opt_state, rng), losses

            (params, opt_state, rng), losses = jax.lax.scan(
                epoch, (params, opt_state, rng), None, config["UPDATE_EPOCHS"])
            runner = (params, opt_state, env_state, obs, rng)
            return runner, {"loss": losses.mean(), "info": traj.info, "obs": traj.obs}

        runner = (params, opt_state, env_state, obs, rng)
        runner, metrics = jax.lax.scan(update, runner, None, num_updates)
        return {"runner_state": runner, "metrics": metrics}

    return train


SMALL = {"NUM_ENVS": 4, "NUM_STEPS": 16, "TOTAL_TIMESTEPS": 128, "UPDATE_EPOCHS": 2,
         "NUM_MINIBATCHES": 2, "LR": 3e-4, "GAMMA": 0.99, "GAE_LAMBDA": 0.95}


# ----------------------------------------------------------------------------- gymnax export
def test_gymnax_export_round_trips_a_gymnax_env_step_for_step():
    """gymnax CartPole -> our adapter -> to_gymnax plays exactly as CartPole under gymnax's
    own ``step``: the same observations, rewards, dones and auto-resets, terminations and
    time-limit truncations (max 12 steps, so both happen) alike."""
    base, base_params = gymnax.make("CartPole-v1")
    base_params = base_params.replace(max_steps_in_episode=12)
    exported = to_gymnax(GymnaxAdapter(base, base_params))
    params = exported.default_params
    assert isinstance(exported, environment.Environment)
    assert isinstance(exported.action_space(params), spaces.Discrete)
    assert isinstance(exported.observation_space(params), spaces.Box)

    def play(env, env_params, key):
        obs, state = env.reset(key, env_params)

        def body(carry, key):
            obs, state = carry
            k_act, k_step = jax.random.split(key)
            action = env.action_space(env_params).sample(k_act)
            obs, state, reward, terminated, truncated, info = env.step(k_step, state, action,
                                                                       env_params)
            return (obs, state), (obs, reward, terminated | truncated, info["final_observation"])

        return jax.lax.scan(body, (obs, state), jax.random.split(key, 60))[1]

    ours = jax.jit(lambda k: play(exported, params, k))(jax.random.PRNGKey(3))
    theirs = jax.jit(lambda k: play(base, base_params, k))(jax.random.PRNGKey(3))
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    obs, reward, done, final = (np.asarray(x) for x in ours)
    assert obs.shape == (60, 4) and reward.shape == (60,) and done.dtype == bool
    assert done.sum() >= 4, "the comparison must cover several auto-resets"
    assert not np.array_equal(obs[done], final[done]), "a done step returns the reset obs"


def test_to_gymnax_refuses_several_agents_in_one_line():
    with pytest.raises(ValueError, match=r"arena has 6 agents \(use to_jaxmarl") as err:
        to_gymnax(ArenaEnv(num_agents=6))
    assert "\n" not in str(err.value)


def test_ppo_trains_on_exported_npp_with_gymnax_log_wrapper():
    """N++ (one agent) without its agent axis, through gymnax's LogWrapper and a
    PureJaxRL-shaped PPO; a hand-made corridor level that random play finishes (win or
    the 100-frame limit: 25 steps)."""
    npp = to_gymnax(NppEnv(obs_kind="state", level_source="fixed", max_frames=100))
    params = npp.default_params
    assert npp.observation_space(params).shape == (40,)
    assert npp.action_space(params).n == 6
    out = jax.jit(make_train({**SMALL, "ENV": LogWrapper(npp), "MARL": False}))(
        jax.random.PRNGKey(0))
    metrics = jax.device_get(out["metrics"])
    assert np.all(np.isfinite(metrics["loss"])) and metrics["loss"].shape == (2,)
    info = metrics["info"]
    assert info["returned_episode"].shape == (2, 16, 4)  # updates x steps x envs: no agent axis
    finished = info["returned_episode"]
    assert finished.any(), "episodes must finish (auto-reset) within the rollout"
    assert np.all(np.isfinite(info["returned_episode_returns"][finished]))
    assert np.all(info["returned_episode_lengths"][finished] >= 1)
    obs = metrics["obs"].reshape(-1, 40)
    assert bool(jnp.all(jax.vmap(npp.observation_space(params).contains)(obs)))


# ----------------------------------------------------------------------------- dict of agents
def test_ppo_trains_on_arena_agents_flattened_into_the_batch():
    """The arena as a JaxMARL-style dict of 6 agents: spaces per agent (channels-last image),
    ``dones["__all__"]`` and auto-reset after ``ARENA_STEPS`` steps, PPO over env x agent
    actors."""
    arena = to_jaxmarl(ArenaEnv(num_agents=6, max_steps=ARENA_STEPS))
    assert arena.agents == [f"agent_{i}" for i in range(6)]
    space = arena.observation_space("agent_3")
    assert isinstance(space, spaces.Box) and space.shape == (11, 11, 27)
    assert space.dtype == jnp.uint8 and arena.action_space("agent_3").n > 1
    out = jax.jit(make_train({**SMALL, "ENV": MarlLogWrapper(arena), "MARL": True}))(
        jax.random.PRNGKey(0))
    metrics = jax.device_get(out["metrics"])
    assert np.all(np.isfinite(metrics["loss"]))
    info = metrics["info"]
    finished = info["returned_episode"]
    assert finished.shape == (2, 16, 24)  # updates x steps x (agents x envs)
    # Episodes end together at ARENA_STEPS and restart: 2 ends per agent in 32 steps.
    assert finished.sum() == 2 * 24
    np.testing.assert_array_equal(info["returned_episode_lengths"][finished], ARENA_STEPS)
    assert np.all(np.isfinite(info["returned_episode_returns"][finished]))
    assert info["terminated"][finished].all() and not info["truncated"].any()
    obs = metrics["obs"].reshape(-1, 11, 11, 27)
    assert obs.dtype == np.uint8 and bool(jnp.all(jax.vmap(space.contains)(obs[:64])))
