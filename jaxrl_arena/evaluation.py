"""Held-out evaluation: fixed episodes played by the current policy, compiled, metrics per task.

Every env offers evaluation sets through ``env.eval_sets(episodes, seed) -> (eval_env, sets)``
with ``sets = {task name: params stacked on axis 0}`` (the contract's default: its named tasks,
``episodes`` resets each). Every set is played from the same reset keys at every
evaluation (a fixed ``eval.seed``), so curves over training compare the same episodes: for
N++ the sets are the seeded held-out levels of each stage, for the arena fixed maps of the
``arena/basic`` and ``arena/combat`` suites.

All episodes of all sets run side by side in one ``lax.while_loop`` that stops when every
episode has ended or after ``max_steps``; an episode that has not ended by then is scored as
it stands (for N++: not a success). Each episode's stats are recorded at the step it ends
(never after). Metrics: ``eval/<stat>/<task>`` for every ``env.episode_stats`` entry (the
``success`` stat is named ``success_rate``), ``eval/reward/<task>``,
``eval/episode_length/<task>`` and ``eval/finished/<task>`` (share of episodes that ended
within ``max_steps``).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from envs.base import MultiAgentEnv


def metric_name(stat: str) -> str:
    return "success_rate" if stat == "success" else stat


class Evaluator:
    """``evaluate(params) -> {metric: float32[R]}`` for params of ``R`` vmapped runs."""

    def __init__(self, env: MultiAgentEnv, policy, *, episodes: int, max_steps: int, seed: int,
                 deterministic: bool = False):
        if episodes < 1:
            raise ValueError(f"eval.episodes must be >= 1, got {episodes}")
        self.env, self.sets = env.eval_sets(episodes, seed)
        self.policy = policy
        self.task_names = tuple(self.sets)
        sizes = [int(jax.tree.leaves(p)[0].shape[0]) for p in self.sets.values()]
        self.sizes = tuple(sizes)
        self.num_episodes = int(sum(sizes))
        self.params = jax.tree.map(lambda *xs: jnp.concatenate(xs), *self.sets.values())
        self.task_index = jnp.asarray(np.repeat(np.arange(len(sizes)), sizes), jnp.int32)
        self.max_steps = int(max_steps)
        self.deterministic = deterministic
        self.key = jax.random.PRNGKey(seed)
        self._compiled: Callable | None = None

    def start(self, env_params, episodes: int):
        """``(play key, obs, state)`` of ``episodes`` fresh episodes under ``env_params`` (stacked
        on axis 0), reset from this evaluator's fixed keys."""
        k_reset, k_play = jax.random.split(self.key)
        obs, state = jax.vmap(self.env.reset_env)(jax.random.split(k_reset, episodes), env_params)
        return k_play, obs, state

    def step(self, params, env_params, k_play, t, state, obs, carry):
        """Step ``t`` of the episodes ``start`` began, the policy ``params`` acting:
        ``(obs, state, reward, terminated, truncated, carry)``. Episodes played with the same
        params, count and step index take the same actions."""
        env, policy = self.env, self.policy
        E, A = jax.tree.leaves(obs)[0].shape[0], env.num_agents
        k_act, k_env = jax.random.split(jax.random.fold_in(k_play, t))
        first = jnp.full(E * A, t == 0)
        flat_obs = jax.tree.map(lambda x: x.reshape((E * A,) + x.shape[2:]), obs)
        carry, logits, _ = policy.apply(params, flat_obs, carry, first)
        logits = logits.reshape(E, A, -1)
        if self.deterministic:
            action = jnp.argmax(logits, -1)
        else:
            action = jax.random.categorical(k_act, logits)
        obs2, state2, reward, term, trunc, _ = jax.vmap(env.step_env)(
            jax.random.split(k_env, E), state, action.astype(jnp.int32), env_params)
        return obs2, state2, reward, term, trunc, carry

    def evaluate_single(self, params) -> dict[str, jax.Array]:
        """One run's metrics (scalars); pure, jittable."""
        env, policy = self.env, self.policy
        E = self.num_episodes
        k_play, obs, state = self.start(self.params, E)
        stats0 = jax.tree.map(lambda x: jnp.zeros(x.shape, jnp.float32),
                              jax.eval_shape(jax.vmap(env.episode_stats), state))

        def body(c):
            t, state, obs, carry, done, ret, length, stats = c
            obs2, state2, reward, term, trunc, carry = self.step(
                params, self.params, k_play, t, state, obs, carry)
            live = ~done
            ends = live & jnp.all(term | trunc, axis=-1)
            ret = ret + jnp.where(live[:, None], reward.astype(jnp.float32), 0.0)
            length = length + live.astype(jnp.int32)
            # Stats of an episode are taken at the step it ends, or at the cap if it never does.
            last_step = t + 1 >= self.max_steps
            take = ends | (live & last_step)
            new = jax.vmap(env.episode_stats)(state2)
            stats = jax.tree.map(
                lambda old, x: jnp.where(take.reshape((E,) + (1,) * (old.ndim - 1)),
                                         x.astype(jnp.float32), old), stats, new)
            return t + 1, state2, obs2, carry, done | ends, ret, length, stats

        def cond(c):
            t, done = c[0], c[4]
            return (t < self.max_steps) & ~jnp.all(done)

        A = env.num_agents
        init = (jnp.zeros((), jnp.int32), state, obs, policy.initial_carry(E * A),
                jnp.zeros(E, bool), jnp.zeros((E, A), jnp.float32), jnp.zeros(E, jnp.int32),
                stats0)
        _, _, _, _, done, ret, length, stats = jax.lax.while_loop(cond, body, init)

        n = len(self.task_names)
        count = jnp.asarray(self.sizes, jnp.float32)
        per_task = lambda x: jax.ops.segment_sum(x, self.task_index, n) / count
        columns = {"reward": ret.mean(-1), "episode_length": length.astype(jnp.float32),
                   "finished": done.astype(jnp.float32)}
        for name, value in stats.items():
            columns[metric_name(name)] = value.reshape(E, -1).mean(-1)
        out = {}
        for metric, column in columns.items():
            means = per_task(column)
            for i, task in enumerate(self.task_names):
                out[f"eval/{metric}/{task}"] = means[i]
        return out

    def __call__(self, params) -> dict[str, np.ndarray]:
        """Metrics of every run (params with a leading run axis) as host arrays ``[R]``."""
        if self._compiled is None:
            self._compiled = jax.jit(jax.vmap(self.evaluate_single))
        return jax.device_get(self._compiled(params))


def make_evaluator(cfg, env: MultiAgentEnv, policy) -> Evaluator | None:
    """The evaluator ``cfg.eval`` asks for, or None when evaluation is off."""
    e = cfg.eval
    if e.every_updates <= 0:
        return None
    max_steps = e.max_steps or env.max_episode_steps or 1000
    return Evaluator(env, policy, episodes=e.episodes, max_steps=int(max_steps), seed=e.seed,
                     deterministic=e.deterministic)
