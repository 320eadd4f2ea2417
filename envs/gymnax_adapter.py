"""Any gymnax environment as the single-agent (``A = 1``) case of the multi-agent contract."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from envs.base import Box, Discrete, MultiAgentEnv


class GymnaxAdapter(MultiAgentEnv):
    """Wraps a gymnax 1.0 environment: adds the agent axis, splits terminated/truncated.

    gymnax's ``step_env`` returns natural termination; its time limit comes from
    ``is_truncated`` (``state.time >= params.max_steps_in_episode``). A step that both
    terminates and hits the limit counts as terminated (no bootstrap), which is the MDP's truth.
    """

    num_agents = 1
    cheap_reset = True  # gymnax resets sample a few numbers (its own step resets every step)

    def __init__(self, env: Any, env_params: Any, *, max_steps: int = 0):
        self.env = env
        if max_steps and hasattr(env_params, "max_steps_in_episode"):
            env_params = env_params.replace(max_steps_in_episode=max_steps)
        # Leaves as arrays so params can be stacked per env and vmapped.
        self._default_params = jax.tree.map(jnp.asarray, env_params)

    @property
    def name(self) -> str:
        return self.env.name

    @property
    def default_params(self):
        return self._default_params

    @property
    def max_episode_steps(self) -> int | None:
        limit = getattr(self._default_params, "max_steps_in_episode", None)
        return None if limit is None else int(limit)

    def reset_env(self, key, params):
        obs, state = self.env.reset_env(key, params)
        return self._agent_axis(obs), state

    def step_env(self, key, state, action, params):
        obs, state, reward, terminated, info = self.env.step_env(key, state, action[0], params)
        terminated = jnp.asarray(terminated, bool)
        truncated = jnp.asarray(self.env.is_truncated(state, params), bool) & ~terminated
        info = {k: v for k, v in info.items() if k != "discount"}
        return (
            self._agent_axis(obs),
            state,
            jnp.asarray(reward, jnp.float32)[None],
            terminated[None],
            truncated[None],
            info,
        )

    def observation_space(self, params) -> Box:
        space = self.env.observation_space(params)
        shape = tuple(space.shape)
        if len(shape) == 3:  # image obs: the project's convention is channels first
            shape = (shape[2], shape[0], shape[1])
        dtype = jnp.dtype(getattr(space, "dtype", jnp.float32))
        if jnp.issubdtype(dtype, jnp.integer) or dtype == jnp.bool_:
            dtype = jnp.float32  # gymnax obs are used as float features
        return Box(float(np.min(space.low)), float(np.max(space.high)), shape, dtype)

    def action_space(self, params) -> Discrete:
        space = self.env.action_space(params)
        if not hasattr(space, "n"):
            raise ValueError(
                f"gymnax env {self.name!r} has a continuous action space; only discrete "
                "actions are supported"
            )
        return Discrete(int(space.n))

    def _agent_axis(self, obs):
        obs = jnp.asarray(obs, jnp.float32)
        if obs.ndim == 3:  # HWC -> CHW
            obs = jnp.transpose(obs, (2, 0, 1))
        return obs[None]
