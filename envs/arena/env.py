"""``ArenaEnv``: the Era-B MettaGrid arena as a ``MultiAgentEnv`` (spec: docs/specs/arena.md).

Static configuration (shapes) goes to the constructor; the task is ``params`` (data).
"""

from __future__ import annotations

from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np

from envs.arena import constants as K
from envs.arena.actions import run_agents
from envs.arena.converters import fire_events
from envs.arena.mapgen import MapLayout, generate_state
from envs.arena.observations import dense_observations, token_observations
from envs.arena.state import EnvParams, EnvState, make_params
from envs.arena.stats import episode_stats
from envs.arena.tasks import ArenaTaskSpace
from envs.base import Box, Discrete, MultiAgentEnv, repeat_params

OBS_KINDS = ("dense", "tokens")


def potential(inv, params: EnvParams):
    """Capped holdings potential Phi (float32), summed in the engine's order (item id,
    ``K.REWARD_SUM_ORDER``: the order that reproduces the golden recordings bit for bit)."""
    held = inv.astype(jnp.float32)
    per_item = jnp.minimum(held * params.reward_weight, params.reward_cap)
    total = jnp.zeros(inv.shape[:-1], jnp.float32)
    for item in K.REWARD_SUM_ORDER:
        total = total + per_item[..., item]
    return total


class ArenaEnv(MultiAgentEnv[EnvState, EnvParams]):
    """Multi-agent converter arena.

    Args:
        num_agents: agents (divisible by 6 for generated maps; 24 = the Era-B arena).
        obs_kind: "dense" (uint8[A, 27, 11, 11]) or "tokens" (uint8[A, 200, 3]).
        max_steps: episode length of ``default_params``.
        quadrant_capacity: static per-room capacity of (wall, altar, mine, generator, lasery,
            armory); ``params.quadrant_counts`` may place fewer.
        map_shape / num_converters: for states built by ``from_ascii`` (no map generation);
            then ``reset_env`` is unavailable.
        easy_altar / shaped_rewards / combat / desync_episodes: the task switches of the env's
            one named task (``named_tasks``: ``arena/combat`` or ``arena/basic``) and of its
            evaluation suites (``eval_sets``, §12.1).
    """

    # Episodes end only by termination (episode_truncates=False): nothing to bootstrap.
    can_truncate = False

    def __init__(
        self,
        num_agents: int = 24,
        obs_kind: str = "dense",
        max_steps: int = 1000,
        quadrant_capacity: tuple[int, ...] = tuple(int(x) for x in K.DEFAULT_QUADRANT_COUNTS),
        map_shape: tuple[int, int] | None = None,
        num_converters: int | None = None,
        easy_altar: bool = True,
        shaped_rewards: bool = True,
        combat: bool = True,
        desync_episodes: bool = False,
    ):
        if obs_kind not in OBS_KINDS:
            raise ValueError(f"obs_kind must be one of {OBS_KINDS}, got {obs_kind!r}")
        self.num_agents = int(num_agents)
        self.obs_kind = obs_kind
        self.max_steps = int(max_steps)
        self.switches = dict(easy_altar=bool(easy_altar), shaped_rewards=bool(shaped_rewards),
                             combat=bool(combat))
        self.desync_episodes = bool(desync_episodes)
        self.layout = None
        if map_shape is None:
            self.layout = MapLayout(self.num_agents, tuple(int(x) for x in quadrant_capacity))
            self.map_shape = self.layout.shape
            self.num_converters = self.layout.num_converters
        else:
            self.map_shape = tuple(map_shape)
            self.num_converters = int(num_converters or 0)
        # Policy-side normalisation of the dense box (§9.6): obs * scale; tokens carry ids.
        self.obs_scale = ((1.0 / K.FEATURE_NORMS).astype(np.float32) if obs_kind == "dense"
                          else None)

    # ------------------------------------------------------------------ contract
    @property
    def name(self) -> str:
        return "arena"

    @property
    def default_params(self) -> EnvParams:
        """The recipe arena_basic_easy_shaped: easy altar, shaped rewards, combat on."""
        return make_params(max_steps=self.max_steps)

    @property
    def max_episode_steps(self) -> int:
        return self.max_steps

    def named_tasks(self) -> dict[str, EnvParams]:
        """The one task of this env's switches, named by its attack cost (§12.1)."""
        name = "arena/" + ("combat" if self.switches["combat"] else "basic")
        return {name: make_params(max_steps=self.max_steps, desync_episodes=self.desync_episodes,
                                  **self.switches)}

    def eval_sets(self, episodes: int, seed: int):
        """The evaluation suites of §12.1 on the un-bucketed env: ``arena/basic`` (attack cost
        100) and ``arena/combat`` (cost 1), with this env's altar and reward switches, no
        desync; the maps come from the evaluator's fixed reset keys."""
        del seed
        switches = {k: v for k, v in self.switches.items() if k != "combat"}
        return self, {suite: repeat_params(make_params(max_steps=self.max_steps, combat=combat,
                                                       desync_episodes=False, **switches), episodes)
                      for suite, combat in (("arena/basic", False), ("arena/combat", True))}

    def task_space(self) -> ArenaTaskSpace:
        """The 640,000 bucketed tasks (§12.1) on top of this env's named task."""
        return ArenaTaskSpace(next(iter(self.named_tasks().values())))

    def observation_space(self, params: EnvParams) -> Box:
        if self.obs_kind == "dense":
            return Box(0, 255, (K.NUM_FEATURES, K.OBS_SIZE, K.OBS_SIZE), jnp.uint8)
        return Box(0, 255, (K.OBS_TOKENS, 3), jnp.uint8)

    def action_space(self, params: EnvParams) -> Discrete:
        return Discrete(K.NUM_ACTIONS)

    def reset_env(self, key: jax.Array, params: EnvParams) -> tuple[jax.Array, EnvState]:
        """A fresh random map; the episode runs params.max_steps steps."""
        return self._reset(key, params, desync=False)

    def reset_env_first(self, key: jax.Array, params: EnvParams) -> tuple[jax.Array, EnvState]:
        """The trainer's reset of each env's first episode, v0 desync (§10.3): if
        ``params.desync_episodes``, the horizon is H ~ U{1..max_steps} and the episode
        *terminates* at t = H (the completion-pct token counts toward H)."""
        return self._reset(key, params, desync=True)

    def step_env(self, key, state, action, params):
        order = jax.random.permutation(key, self.num_agents).astype(jnp.int32)
        obs, state, reward, terminated, truncated, _ = self._step(state, action, order, params)
        return obs, state, reward, terminated, truncated, {}

    def step_env_ordered(self, key, state, action, params, order):
        """``step_env`` with an explicit agent processing order (replay of golden episodes).
        ``info["action_success"]`` holds the engine's per-agent success flags."""
        del key
        obs, state, reward, terminated, truncated, success = self._step(
            state, action, order, params
        )
        return obs, state, reward, terminated, truncated, {"action_success": success}

    def episode_stats(self, state: EnvState) -> dict[str, jax.Array]:
        return episode_stats(state)

    # ------------------------------------------------------------------ internals
    def observe(self, state: EnvState) -> jax.Array:
        if self.obs_kind == "dense":
            return dense_observations(state)
        return token_observations(state)

    def _reset(self, key, params: EnvParams, desync: bool):
        if self.layout is None:
            raise ValueError(
                "this env has a fixed map shape (from_ascii); build states with from_ascii"
            )
        key_map, key_h = jax.random.split(key)
        horizon = params.max_steps
        if desync:
            drawn = jax.random.randint(key_h, (), 1, params.max_steps + 1, dtype=jnp.int32)
            horizon = jnp.where(params.desync_episodes, drawn, params.max_steps)
        state = generate_state(key_map, params, self.layout, horizon)
        return self.observe(state), state

    def _step(self, state: EnvState, action, order, params: EnvParams):
        chex.assert_shape(action, (self.num_agents,))
        chex.assert_shape(order, (self.num_agents,))
        action = action.astype(jnp.int32)
        now = state.time + 1
        state = state.replace(time=now)
        state = fire_events(state, now, params)
        state, success = run_agents(state, action, order.astype(jnp.int32), params)
        valid = (action >= 0) & (action < K.NUM_ACTIONS)
        state = state.replace(agent_last_action=jnp.where(valid, action, 0).astype(jnp.uint8))
        obs = self.observe(state)  # before the rewards: the last_reward token stays 0 (§9.5)
        phi = potential(state.agent_inv, params)
        reward = phi - state.agent_potential
        state = state.replace(agent_potential=phi, episode_return=state.episode_return + reward)
        done = now >= state.horizon
        terminated = jnp.full((self.num_agents,), done)
        truncated = jnp.zeros((self.num_agents,), jnp.bool_)
        return obs, state, reward, terminated, truncated, success

    def render(self, state: EnvState, scale: int = 8) -> Any:
        from envs.arena.render import render

        return render(state, scale)
