"""The environment contract every jaxrl_arena environment implements.

gymnax 1.0 semantics extended to several agents:

* ``reset_env(key, params) -> (obs, state)`` and
  ``step_env(key, state, action, params) -> (obs, state, reward, terminated, truncated, info)``
  are pure, jittable and *do not* auto-reset. Every per-agent output carries a leading
  agent axis ``A = num_agents``: ``obs[A, ...]``, ``reward[A]`` float32, ``terminated[A]`` and
  ``truncated[A]`` bool. A single-agent gymnax environment is the ``A = 1`` case
  (:class:`envs.gymnax_adapter.GymnaxAdapter`).
* ``terminated`` means the MDP ended (no bootstrap); ``truncated`` means it was cut by a
  limit that is not part of the MDP (bootstrap from the final observation). An environment
  episode ends when every agent is done; the envs of this project end all agents together.
* ``params`` is data: a pytree of arrays (task / curriculum parameters). The trainer keeps one
  ``params`` per environment (vmapped over axis 0), so changing tasks never recompiles. Things
  that change shapes (number of agents, map size, observation kind) are constructor arguments.
* ``episode_stats(state)`` returns per-agent statistics of the episode so far as
  ``{name: float32[A]}``; the trainer reads it from the final state of each finished episode
  and logs the mean over finished episodes as ``env_agent/<name>``.
* Auto-reset is done by the trainer (``jaxrl_arena.rollout``) with a scalable reset strategy;
  :meth:`MultiAgentEnv.step` is the naive reference (resets every step and selects), useful
  for tests and notebooks.

The optional surface is declared here with defaults, and envs override what they have (the
trainer reads these and never probes for attributes): ``named_tasks()`` (the tasks a
curriculum samples), ``curriculum_stages()`` (ordered stages for a staged curriculum),
``stage_thresholds()`` (its advance / regression table), ``eval_sets(episodes, seed)``
(held-out evaluation), ``task_space()`` (a generated space of
tasks), ``obs_scale`` (a scale a policy may multiply observations by), and the flags
``can_truncate`` and ``cheap_reset``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Generic, TypeVar

import jax
import jax.numpy as jnp

TEnvState = TypeVar("TEnvState")
TEnvParams = TypeVar("TEnvParams")


@dataclasses.dataclass(frozen=True)
class Discrete:
    """``n`` discrete actions ``0 .. n-1`` (per agent)."""

    n: int
    dtype: Any = jnp.int32

    @property
    def shape(self) -> tuple[int, ...]:
        return ()

    def sample(self, key: jax.Array, shape: tuple[int, ...] = ()) -> jax.Array:
        return jax.random.randint(key, shape, 0, self.n, dtype=self.dtype)


@dataclasses.dataclass(frozen=True)
class Box:
    """A per-agent array observation of fixed ``shape`` and ``dtype``."""

    low: float
    high: float
    shape: tuple[int, ...]
    dtype: Any = jnp.float32


class MultiAgentEnv(Generic[TEnvState, TEnvParams]):
    """Base class: subclasses implement ``reset_env``, ``step_env``, the spaces and
    ``default_params``; ``num_agents`` is a static attribute."""

    num_agents: int = 1
    # False when episodes only ever terminate (no time limits outside the MDP): the trainer
    # then skips computing V(final_observation) for truncation bootstraps.
    can_truncate: bool = True
    # True when a reset costs about as much as a step (gymnax's classic-control envs): the
    # trainer's "auto" reset strategy then resets every env every step and selects (exact and
    # the fewest kernels), instead of handing a small pool of resets to the envs that finished.
    cheap_reset: bool = False
    # Per-channel (or per-element) factors that bring observations to about [0, 1]; a policy
    # configured with ``obs_scale="env"`` multiplies by them. None: use observations as they are.
    obs_scale: Any = None

    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def max_episode_steps(self) -> int | None:
        """The longest episode under ``default_params`` (agent steps), if the env has a limit."""
        return None

    @property
    def default_params(self) -> TEnvParams:
        raise NotImplementedError

    def reset_env(self, key: jax.Array, params: TEnvParams) -> tuple[Any, TEnvState]:
        raise NotImplementedError

    def step_env(
        self, key: jax.Array, state: TEnvState, action: jax.Array, params: TEnvParams
    ) -> tuple[Any, TEnvState, jax.Array, jax.Array, jax.Array, dict[str, Any]]:
        raise NotImplementedError

    def reset_env_first(self, key: jax.Array, params: TEnvParams) -> tuple[Any, TEnvState]:
        """The reset of each env's *first* episode. Envs that stagger episode boundaries
        across parallel envs (the arena's ``desync_episodes``) override it; by default it is
        ``reset_env``."""
        return self.reset_env(key, params)

    def observation_space(self, params: TEnvParams) -> Box:
        raise NotImplementedError

    def action_space(self, params: TEnvParams) -> Discrete:
        raise NotImplementedError

    def episode_stats(self, state: TEnvState) -> dict[str, jax.Array]:
        """Per-agent statistics of the current episode, ``{name: float32[A]}``."""
        del state
        return {}

    # ------------------------------------------------------------------ optional surface
    def named_tasks(self) -> dict[str, TEnvParams]:
        """``{task name: params}``: what a curriculum samples (default: one task, the defaults)."""
        return {self.name: self.default_params}

    def curriculum_stages(self) -> dict[str, TEnvParams] | None:
        """Ordered ``{stage: params}``, easiest first, for a staged curriculum; None: the
        named tasks in order."""
        return None

    def stage_thresholds(self) -> dict[str, tuple[float, int, float]] | None:
        """Per stage of ``curriculum_stages``: (advance success rate, min episodes, regression
        success rate); None: the staged curriculum's generic row."""
        return None

    def eval_sets(self, episodes: int, seed: int) -> tuple[MultiAgentEnv, dict[str, Any]]:
        """``(env that plays them, {set name: params stacked on axis 0})``: held-out evaluation.
        Default: every named task, ``episodes`` times (the evaluator's seeded resets vary them)."""
        del seed
        return self, {name: repeat_params(p, episodes) for name, p in self.named_tasks().items()}

    def task_space(self) -> Any | None:
        """A generated space of tasks (``num_tasks``, ``params(task_ids)``, ...) for curricula
        over more tasks than can be named; None when the env has none."""
        return None

    # ------------------------------------------------------------------ conveniences
    def reset(self, key: jax.Array, params: TEnvParams | None = None) -> tuple[Any, TEnvState]:
        params = self.default_params if params is None else params
        return self.reset_env(key, params)

    def step(
        self,
        key: jax.Array,
        state: TEnvState,
        action: jax.Array,
        params: TEnvParams | None = None,
    ) -> tuple[Any, TEnvState, jax.Array, jax.Array, jax.Array, dict[str, Any]]:
        """Step with naive auto-reset (resets every call and selects).

        ``info["final_observation"]`` holds the observation before the reset.
        """
        params = self.default_params if params is None else params
        key_step, key_reset = jax.random.split(key)
        obs_st, state_st, reward, terminated, truncated, info = self.step_env(
            key_step, state, action, params
        )
        done = jnp.all(terminated | truncated)
        obs_re, state_re = self.reset_env(key_reset, params)
        state = jax.tree.map(lambda r, s: jnp.where(done, r, s), state_re, state_st)
        obs = jax.tree.map(lambda r, s: jnp.where(done, r, s), obs_re, obs_st)
        info = {**info, "final_observation": obs_st}
        return obs, state, reward, terminated, truncated, info



def repeat_params(params: Any, n: int) -> Any:
    """One task's params repeated ``n`` times on a new leading axis (an evaluation set)."""
    return jax.tree.map(lambda x: jnp.broadcast_to(jnp.asarray(x), (n, *jnp.shape(x))), params)
