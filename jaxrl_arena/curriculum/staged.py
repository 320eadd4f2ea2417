"""Staged-threshold curriculum (spec: docs/specs/npp.md §10.1), usable by any env.

Tasks are stages, in order, with per-stage thresholds from the env (``stage_thresholds``: N++
declares the spec's table) or ``GENERIC_STAGE_ROW``; each stage's env params (or level-pool / generator params) are data,
stacked and gathered by ``task_params``. All state is jitted, fixed-shape (``StagedState``).

* **Success** of an episode: ``outcomes.success`` if the outcomes carry one (the win flag),
  else ``score >= success_score``. It is recorded under the stage its level was drawn from
  (``outcomes.task_id``), which can be the previous stage when stages are mixed.
* **Window:** per stage, a ring of the last ``window`` (50) outcomes; success rate = masked mean
  (0 with no data). ``episodes[stage]`` is the all-time count used for the minimums.
* **When checked:** once per update, when ``>= check_every`` (10) episodes finished since the
  last check (the reference checks every 10 episodes inside the env; here at most one stage
  change per update, on the state after all of this update's episodes are recorded).
  Regression is checked first, then advancement.
* **Advance** one stage (not past the last) if ``sr >= threshold and episodes >= min``, or early
  (``sr >= 0.90 and episodes >= 50``), or the trend bonus (``trend > 0.15``, ``episodes >=
  0.9 min``, ``sr >= max(threshold - 0.02, 0.60)``; trend = mean of the newer half - mean of the
  older half of the window, chronological, with ``>= 20`` entries).
* **Regress** one stage if the current stage has ``>= 200`` episodes and ``sr < its regression
  threshold``; the window of the stage regressed *to* is cleared (counts kept).
* **Mixing:** on stages > 0 an episode plays the previous stage with probability 0.40 if the
  current stage's sr < 0.50, 0.25 if < 0.65, 0.15 if < 0.80, else 0.05.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import struct

from jaxrl_arena.curriculum.base import Curriculum, EpisodeOutcomes, shared_row
from jaxrl_arena.curriculum.ring import ring_append

# A stage without a row in the env's table (``stage_thresholds``): advance at this success rate
# over at least this many episodes, regress below the last value.
GENERIC_STAGE_ROW = (0.70, 100, 0.30)
MIX_EDGES = (0.50, 0.65, 0.80)
MIX_PROBS = (0.40, 0.25, 0.15, 0.05)


@struct.dataclass
class StagedState:
    stage: jax.Array  # int32[]
    window: jax.Array  # float32[K, window]: success ring per stage
    win_count: jax.Array  # int32[K]: appends since the ring was last cleared
    episodes: jax.Array  # int32[K]: all-time episodes per stage
    since_check: jax.Array  # int32[]: episodes since the last check
    last_count: jax.Array  # int32[K]: episodes of the last update
    last_score_sum: jax.Array  # float32[K]
    advances: jax.Array  # int32[]: stage advances so far
    regressions: jax.Array  # int32[]


class StagedCurriculum(Curriculum):
    def __init__(self, stages: dict[str, Any], *,
                 stage_table: dict[str, tuple[float, int, float]] | None = None,
                 thresholds: Sequence[float] | None = None,
                 min_episodes: Sequence[int] | None = None,
                 regression_thresholds: Sequence[float] | None = None, window: int = 50,
                 check_every: int = 10, early_threshold: float = 0.90, early_min_episodes: int = 50,
                 trend_threshold: float = 0.15, trend_min_entries: int = 20,
                 trend_min_fraction: float = 0.9, trend_floor: float = 0.60,
                 trend_margin: float = 0.02, regression_min_episodes: int = 200,
                 mix_edges: Sequence[float] = MIX_EDGES, mix_probs: Sequence[float] = MIX_PROBS,
                 success_score: float = 0.5):
        if not stages:
            raise ValueError("a staged curriculum needs at least one stage")
        self.task_names = tuple(stages)
        K = self.num_tasks = len(stages)
        table = stage_table or {}
        defaults = [tuple(table.get(name, GENERIC_STAGE_ROW)) for name in self.task_names]

        def column(given, j, dtype):
            vals = [d[j] for d in defaults] if given is None else list(given)
            if len(vals) != K:
                raise ValueError(f"need one value per stage ({K}), got {len(vals)}")
            return jnp.asarray(vals, dtype)

        self.thresholds = column(thresholds, 0, jnp.float32)
        self.min_episodes = column(min_episodes, 1, jnp.int32)
        self.regression_thresholds = column(regression_thresholds, 2, jnp.float32)
        self.window = int(window)
        self.check_every = int(check_every)
        self.early_threshold, self.early_min_episodes = float(early_threshold), int(early_min_episodes)
        self.trend_threshold, self.trend_min_entries = float(trend_threshold), int(trend_min_entries)
        self.trend_min_fraction, self.trend_floor = float(trend_min_fraction), float(trend_floor)
        self.trend_margin = float(trend_margin)
        self.regression_min_episodes = int(regression_min_episodes)
        if len(mix_probs) != len(mix_edges) + 1:
            raise ValueError("mix_probs needs one more entry than mix_edges")
        self.mix_edges = jnp.asarray(mix_edges, jnp.float32)
        self.mix_probs = jnp.asarray(mix_probs, jnp.float32)
        self.success_score = float(success_score)
        self._table = jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]),
                                   *stages.values())

    def init(self, key: jax.Array | None = None) -> StagedState:  # deterministic: key unused
        K = self.num_tasks
        zi = jnp.zeros(K, jnp.int32)
        z = jnp.zeros((), jnp.int32)
        return StagedState(stage=z, window=jnp.zeros((K, self.window), jnp.float32), win_count=zi,
                           episodes=zi, since_check=z, last_count=zi,
                           last_score_sum=jnp.zeros(K, jnp.float32), advances=z, regressions=z)

    # ------------------------------------------------------------------ reads
    def success_rates(self, state: StagedState) -> jax.Array:
        n = jnp.minimum(state.win_count, self.window)
        valid = jnp.arange(self.window)[None, :] < n[:, None]
        total = jnp.sum(jnp.where(valid, state.window, 0.0), axis=1)
        return jnp.where(n > 0, total / jnp.maximum(n, 1), 0.0)

    def trends(self, state: StagedState) -> jax.Array:
        """Mean of the newer half minus the older half of each window (chronological)."""
        W = self.window
        n = jnp.minimum(state.win_count, W)
        j = jnp.arange(W)[None, :]
        # chronological index of storage slot j: 0 = oldest
        oldest = jnp.where(state.win_count >= W, state.win_count % W, 0)[:, None]
        chrono = (j - oldest) % W
        valid = chrono < n[:, None]
        half = (n // 2)[:, None]
        old = valid & (chrono < half)
        new = valid & (chrono >= half)
        mean = lambda m: jnp.sum(jnp.where(m, state.window, 0.0), 1) / jnp.maximum(m.sum(1), 1)
        return jnp.where(n >= self.trend_min_entries, mean(new) - mean(old), 0.0)

    def mix_prob(self, state: StagedState) -> jax.Array:
        sr = self.success_rates(state)[state.stage]
        p = self.mix_probs[jnp.searchsorted(self.mix_edges, sr, side="right")]
        return jnp.where(state.stage > 0, p, 0.0)

    # ------------------------------------------------------------------ interface
    def sample(self, state: StagedState, keys: jax.Array) -> jax.Array:
        p = self.mix_prob(state)
        prev = jax.vmap(lambda k: jax.random.bernoulli(k, p))(keys)
        return jnp.where(prev, state.stage - 1, state.stage).astype(jnp.int32)

    def task_params(self, task_ids: jax.Array):
        return jax.tree.map(lambda table: table[task_ids], self._table)

    def shared_params(self):
        return shared_row(self._table)

    def update(self, state: StagedState, outcomes: EpisodeOutcomes, axis_name: str | None = None):
        K = self.num_tasks
        task_id, done, score = outcomes.task_id, outcomes.done, outcomes.score
        success = getattr(outcomes, "success", None)
        if success is None:
            success = score >= self.success_score
        if axis_name is not None:
            task_id, done, score, success = jax.lax.all_gather(
                (task_id, done, score, success), axis_name, tiled=True)
        task_id = task_id.astype(jnp.int32)
        ok = done & (task_id >= 0) & (task_id < K)
        seg = jnp.where(ok, task_id, K)
        counts = jax.ops.segment_sum(jnp.ones_like(seg), seg, K + 1)[:K]
        score_sum = jax.ops.segment_sum(jnp.where(ok, score.astype(jnp.float32), 0.0), seg,
                                        K + 1)[:K]
        window = ring_append(state.window, state.win_count, seg,
                             success.astype(jnp.float32), counts)
        state = state.replace(window=window, win_count=state.win_count + counts,
                              episodes=state.episodes + counts,
                              since_check=state.since_check + counts.sum(), last_count=counts,
                              last_score_sum=score_sum)
        return self._check(state)

    def _check(self, state: StagedState) -> StagedState:
        K = self.num_tasks
        s = state.stage
        sr = self.success_rates(state)[s]
        eps = state.episodes[s]
        check = state.since_check >= self.check_every
        regress = (s > 0) & (eps >= self.regression_min_episodes) & (
            sr < self.regression_thresholds[s])
        thr, mn = self.thresholds[s], self.min_episodes[s]
        trend = self.trends(state)[s]
        advance = (
            ((sr >= thr) & (eps >= mn))
            | ((sr >= self.early_threshold) & (eps >= self.early_min_episodes))
            | ((trend > self.trend_threshold)
               & (eps.astype(jnp.float32) >= self.trend_min_fraction * mn)
               & (sr >= jnp.maximum(thr - self.trend_margin, self.trend_floor)))
        ) & (s < K - 1)
        regress = check & regress
        advance = check & ~regress & advance
        new_stage = s + advance.astype(jnp.int32) - regress.astype(jnp.int32)
        clear = regress & (jnp.arange(K) == new_stage)
        return state.replace(
            stage=new_stage,
            win_count=jnp.where(clear, 0, state.win_count),
            window=jnp.where(clear[:, None], 0.0, state.window),
            since_check=jnp.where(check, 0, state.since_check),
            advances=state.advances + advance.astype(jnp.int32),
            regressions=state.regressions + regress.astype(jnp.int32),
        )

    def metrics(self, state: StagedState) -> dict[str, jax.Array]:
        sr = self.success_rates(state)
        out = {
            "curriculum/stage": state.stage.astype(jnp.float32),
            "curriculum/mix_prob": self.mix_prob(state).astype(jnp.float32),
            "curriculum/advances": state.advances.astype(jnp.float32),
            "curriculum/regressions": state.regressions.astype(jnp.float32),
            "curriculum/stage_episodes": state.episodes[state.stage].astype(jnp.float32),
            # per-task vector: the host names it task_reward/<stage>/rewards.mean
            "task_reward/rewards.mean": jnp.where(
                state.last_count > 0, state.last_score_sum / jnp.maximum(state.last_count, 1),
                jnp.nan),
        }
        for i, name in enumerate(self.task_names):  # scalars, named here (not by the host)
            out[f"curriculum/success_rate/{name}"] = sr[i]
        return out
