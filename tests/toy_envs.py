"""Small deterministic multi-agent envs whose every number is known in advance (tests only)."""

from __future__ import annotations

import jax.numpy as jnp
from flax import struct

from envs.base import Box, Discrete, MultiAgentEnv


@struct.dataclass
class CountdownParams:
    length: jnp.ndarray  # int32: the episode ends after this many steps
    reward: jnp.ndarray  # float32: reward per agent per step
    truncate: jnp.ndarray  # bool: the end is a truncation (time limit), not a termination


@struct.dataclass
class CountdownState:
    t: jnp.ndarray
    actions_sum: jnp.ndarray  # float32[A]


def countdown_params(length: int, reward: float, truncate: bool = False) -> CountdownParams:
    return CountdownParams(jnp.int32(length), jnp.float32(reward), jnp.bool_(truncate))


class CountdownEnv(MultiAgentEnv):
    """``A`` agents; every step pays ``reward`` to each; the episode ends after ``length``
    steps. Observation per agent: ``[t / length, reward]``. Episode stats: ``steps`` and
    ``reward_rate`` per agent. Two named tasks with different returns (short: 3 × 1 = 3,
    long: 5 × 2 = 10) so crediting mistakes show."""

    def __init__(self, num_agents: int = 2, truncate: bool = False):
        self.num_agents = num_agents
        self._truncate = truncate

    @property
    def default_params(self):
        return countdown_params(3, 1.0, self._truncate)

    def named_tasks(self):
        return {
            "short": countdown_params(3, 1.0, self._truncate),
            "long": countdown_params(5, 2.0, self._truncate),
        }

    def _obs(self, state, params):
        row = jnp.stack([state.t / params.length, params.reward]).astype(jnp.float32)
        return jnp.broadcast_to(row, (self.num_agents, 2))

    def reset_env(self, key, params):
        state = CountdownState(jnp.int32(0), jnp.zeros(self.num_agents, jnp.float32))
        return self._obs(state, params), state

    def step_env(self, key, state, action, params):
        state = CountdownState(state.t + 1, state.actions_sum + action.astype(jnp.float32))
        end = state.t >= params.length
        terminated = jnp.broadcast_to(end & ~params.truncate, (self.num_agents,))
        truncated = jnp.broadcast_to(end & params.truncate, (self.num_agents,))
        reward = jnp.full((self.num_agents,), params.reward, jnp.float32)
        return self._obs(state, params), state, reward, terminated, truncated, {}

    def observation_space(self, params):
        return Box(0.0, 10.0, (2,), jnp.float32)

    def action_space(self, params):
        return Discrete(3)

    def episode_stats(self, state):
        return {"steps": jnp.full((self.num_agents,), state.t, jnp.float32)}
