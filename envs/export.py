"""This project's environments in the APIs other JAX RL code already speaks.

* :func:`to_gymnax` — a one-agent env (N++, any ``GymnaxAdapter``) as a real gymnax 1.0
  ``Environment``: gymnax spaces, no agent axis (``obs[...]``, scalar reward and flags), and
  gymnax's own ``step`` (auto-reset, ``info["final_observation"]``), so gymnax wrappers
  (``LogWrapper``, ...) and PureJaxRL-style training loops run on it unchanged.
* :func:`to_jaxmarl` — any env (the arena's agents) as a JaxMARL-style dict of agents:
  ``agents``, ``reset(key) -> (obs, state)``, ``step(key, state, actions) -> (obs, state,
  rewards, dones, infos)`` with ``dones["__all__"]`` and auto-reset when every agent is done,
  ``observation_space(agent)`` / ``action_space(agent)`` as gymnax spaces.

Both follow the JAX ecosystem's image layout: a 3-D observation is channels-last ``[H, W, C]``
(``channels_last=False`` keeps this project's ``[C, H, W]``). ``terminated`` vs ``truncated``
survive the export: gymnax reads truncation through ``is_truncated(state, params)``, the dict
view puts both flags in ``infos`` (a JaxMARL ``done`` merges them).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from envs.base import Box, Discrete, MultiAgentEnv


@struct.dataclass
class GymnaxState(environment.EnvState):
    """gymnax's ``EnvState`` (``time``: steps this episode) around the wrapped env's state;
    ``truncated`` is the last step's time-limit flag, which gymnax reads via ``is_truncated``."""

    env_state: Any
    truncated: jax.Array


def gymnax_box(space: Box, channels_last: bool) -> spaces.Box:
    shape = tuple(space.shape)
    if channels_last and len(shape) == 3:
        shape = (shape[1], shape[2], shape[0])
    return spaces.Box(space.low, space.high, shape, jnp.dtype(space.dtype))


def gymnax_discrete(space: Discrete) -> spaces.Discrete:
    return spaces.Discrete(int(space.n), dtype=space.dtype)


def to_channels_last(obs: jax.Array, per_agent_ndim: int) -> jax.Array:
    """``[..., C, H, W] -> [..., H, W, C]`` when the per-agent observation is an image."""
    if per_agent_ndim != 3:
        return obs
    return jnp.moveaxis(obs, -3, -1)


class GymnaxEnv(environment.Environment):
    """A one-agent :class:`~envs.base.MultiAgentEnv` as a gymnax ``Environment`` (see
    :func:`to_gymnax`)."""

    def __init__(self, env: MultiAgentEnv, channels_last: bool = True):
        if env.num_agents != 1:
            raise ValueError(f"to_gymnax needs a one-agent env; {env.name} has {env.num_agents} "
                             "agents (use to_jaxmarl for a dict of agents)")
        self.env = env
        self.channels_last = channels_last
        self._obs_ndim = len(env.observation_space(env.default_params).shape)

    @property
    def name(self) -> str:
        return self.env.name

    @property
    def default_params(self) -> Any:
        return self.env.default_params

    @property
    def num_actions(self) -> int:
        return int(self.env.action_space(self.env.default_params).n)

    def reset_env(self, key: jax.Array, params: Any) -> tuple[jax.Array, GymnaxState]:
        obs, env_state = self.env.reset_env(key, params)
        state = GymnaxState(time=jnp.int32(0), env_state=env_state, truncated=jnp.bool_(False))
        return self._observation(obs), state

    def step_env(self, key: jax.Array, state: GymnaxState, action: Any, params: Any
                 ) -> tuple[jax.Array, GymnaxState, jax.Array, jax.Array, dict[str, Any]]:
        action = jnp.asarray(action, jnp.int32).reshape(1)
        obs, env_state, reward, terminated, truncated, info = self.env.step_env(
            key, state.env_state, action, params)
        state = GymnaxState(time=state.time + 1, env_state=env_state, truncated=truncated[0])
        # Per-agent info leaves lose the agent axis like everything else.
        info = jax.tree.map(lambda x: x[0] if jnp.ndim(x) and jnp.shape(x)[0] == 1 else x, info)
        info = {**info, "discount": 1.0 - terminated[0].astype(jnp.float32)}
        return self._observation(obs), state, reward[0], terminated[0], info

    def is_truncated(self, state: GymnaxState, params: Any) -> jax.Array:
        return state.truncated

    def observation_space(self, params: Any) -> spaces.Box:
        return gymnax_box(self.env.observation_space(params), self.channels_last)

    def action_space(self, params: Any) -> spaces.Discrete:
        return gymnax_discrete(self.env.action_space(params))

    def _observation(self, obs: jax.Array) -> jax.Array:
        obs = obs[0]
        return to_channels_last(obs, self._obs_ndim) if self.channels_last else obs


class JaxMarlEnv:
    """A :class:`~envs.base.MultiAgentEnv` as a JaxMARL-style dict of agents (see
    :func:`to_jaxmarl`); the env's params are fixed at construction, as JaxMARL's are."""

    def __init__(self, env: MultiAgentEnv, params: Any = None, channels_last: bool = True):
        self.env = env
        self.params = env.default_params if params is None else params
        self.channels_last = channels_last
        self.num_agents = env.num_agents
        self.agents = [f"agent_{i}" for i in range(env.num_agents)]
        self._obs_ndim = len(env.observation_space(self.params).shape)
        obs_space = gymnax_box(env.observation_space(self.params), channels_last)
        act_space = gymnax_discrete(env.action_space(self.params))
        self.observation_spaces = {agent: obs_space for agent in self.agents}
        self.action_spaces = {agent: act_space for agent in self.agents}

    @property
    def name(self) -> str:
        return self.env.name

    def observation_space(self, agent: str) -> spaces.Box:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Discrete:
        return self.action_spaces[agent]

    @functools.partial(jax.jit, static_argnums=(0,))
    def reset(self, key: jax.Array) -> tuple[dict[str, jax.Array], Any]:
        obs, state = self.env.reset_env(key, self.params)
        return self._per_agent(self._observation(obs)), state

    @functools.partial(jax.jit, static_argnums=(0,))
    def step(self, key: jax.Array, state: Any, actions: dict[str, jax.Array]
             ) -> tuple[dict, Any, dict, dict, dict]:
        """One step of every agent; when every agent is done the env resets (gymnax's naive
        auto-reset: a reset every call, selected). ``infos`` holds ``terminated`` and
        ``truncated`` as ``bool[num_agents]`` (per-agent arrays, as JaxMARL's infos are)."""
        key_step, key_reset = jax.random.split(key)
        action = jnp.stack([jnp.asarray(actions[agent], jnp.int32) for agent in self.agents])
        obs_st, state_st, reward, terminated, truncated, info = self.env.step_env(
            key_step, state, action, self.params)
        done = terminated | truncated
        done_all = jnp.all(done)
        obs_re, state_re = self.env.reset_env(key_reset, self.params)
        state = jax.tree.map(lambda r, s: jnp.where(done_all, r, s), state_re, state_st)
        obs = jax.tree.map(lambda r, s: jnp.where(done_all, r, s), obs_re, obs_st)
        dones = {**self._per_agent(done), "__all__": done_all}
        infos = {**info, "terminated": terminated, "truncated": truncated}
        return (self._per_agent(self._observation(obs)), state, self._per_agent(reward), dones,
                infos)

    def _observation(self, obs: jax.Array) -> jax.Array:
        return to_channels_last(obs, self._obs_ndim) if self.channels_last else obs

    def _per_agent(self, x: jax.Array) -> dict[str, jax.Array]:
        return {agent: x[i] for i, agent in enumerate(self.agents)}


def to_gymnax(env: MultiAgentEnv, channels_last: bool = True) -> GymnaxEnv:
    """``env`` (one agent) as a gymnax ``Environment``; a one-line ``ValueError`` for an env
    of several agents (use :func:`to_jaxmarl`)."""
    return GymnaxEnv(env, channels_last)


def to_jaxmarl(env: MultiAgentEnv, params: Any = None, channels_last: bool = True) -> JaxMarlEnv:
    """``env`` as a JaxMARL-style dict of agents, playing ``params`` (default: the env's
    ``default_params``)."""
    return JaxMarlEnv(env, params, channels_last)


__all__ = ["GymnaxEnv", "GymnaxState", "JaxMarlEnv", "to_gymnax", "to_jaxmarl"]
