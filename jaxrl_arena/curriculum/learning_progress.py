"""Learning-progress curriculum (corrected v1; spec: docs/specs/arena.md §12.2-§12.4).

All state is fixed-shape arrays over ``S`` *slots* (``LPState``), updated once per PPO update
inside the compiled step. Two task pools:

* **named tasks** (``LearningProgressCurriculum(tasks={name: params})``): slot ``i`` is task ``i``
  and task ids are slot indices; params are stacked and gathered.
* **a generated space** (``LearningProgressCurriculum.over_space(space, pool_size=...)``, e.g. the
  arena's 640,000 bucketed tasks): ``S = pool_size`` live tasks whose *global* ids are in
  ``state.task_ids``. ``sample`` returns global ids, ``task_params`` decodes global ids (data,
  no recompilation), ``update`` maps each finished episode's global id back to its slot (sorted
  search; an episode whose task was evicted while it ran is dropped). Each update the
  ``evict_per_update`` *mature* slots (``>= evict_min_outcomes`` outcomes and a baseline) with
  the **lowest learning-progress sampling weight** are evicted, ties broken by **oldest
  admission**, and replaced by fresh uniformly drawn task ids not already in the pool
  (admitted slots start from an empty memory).

Per update (``update``):

1. Scores are mapped to successes in [0, 1] by the documented monotone map
   ``success = clip((score - score_min) / (score_max - score_min), 0, 1)``; ``score_min`` /
   ``score_max`` may be per named task (task families), else scalars. The arena's returns
   exceed 1, so ``score_max`` must be above good-policy returns (never ``clip(score, 0, 1)``).
   Non-finite scores are not credited (counted in ``lp/num_dropped_outcomes``).
2. Every finished episode is credited to the task id stored at its reset (``outcomes.task_id``)
   and appended, in time order, to that task's ring buffer ``outcomes[S, memory]``: ranks inside
   a task come from one stable sort of the rollout's rows, writes are one masked scatter.
   Cost O(M log M + S * memory) for M = num_envs * T rows (over devices: all-gathered).
3. ``sr = masked sum / max(n, 1)`` over the ring's valid entries (never a mean of an empty
   slice). A task whose ``new_count`` (outcomes since its EMAs last moved) reaches
   ``sample_threshold`` and whose total count reaches ``min_outcomes`` is *refreshed*:
   - at its first refresh its baseline is set from its **own** first outcomes,
     ``baseline = min(sr, 0.75)``, and ``p_fast = p_slow = n``, ``p_true = sr``;
   - later, ``n = max(sr - baseline, 0) / (1 - baseline)`` and the v1 EMAs
     ``p_fast <- a n + (1-a) p_fast``, ``p_slow <- a p_fast' + (1-a) p_slow``,
     ``p_true <- a sr + (1-a) p_true`` are applied ``k = new_count / sample_threshold`` times
     in closed form (exact for integer k; makes the EMA time scale "per sample_threshold
     outcomes of that task", independent of num_envs and of how often updates run). With
     ``d = p - n``: ``d_fast <- A d_fast``, ``d_slow <- A d_slow + k a A d_fast``, ``A=(1-a)^k``.
   This replaces v1's active set (``num_active_tasks`` tasks drawn per recompute): every task
   is refreshed as soon as it has enough new data. ``num_active_tasks`` is kept as a knob and
   only used as the pool size default when none is given.
4. Distribution: ``R(p) = p(1-s) / (p + s(1-2p))`` on ``p in [0, 1]`` (clipped; denominator
   guarded), ``LP = |R(p_fast) - R(p_slow)|``; over ``pos = explored & (LP > 0 | p_true > 0)``
   (all explored if empty): z-score (std = 0 -> subtract the mean only), sigmoid, normalise.
   Tasks without a baseline ("exploring": fewer than ``min_outcomes`` / ``sample_threshold``
   outcomes) share an explicit exploration mass ``e = max(min(explore_rate, explore_boost *
   n_exploring / S), n_exploring / S)`` (at least their uniform share, so the first tasks to
   mature do not take the whole LP mass between them; at most ``explore_boost`` times a
   uniform share each once few remain; all of the mass when no task is explored yet);
   then ``dist = (1 - rand_task_rate) * that + rand_task_rate / S``: the uniform mixture
   applies to **episode sampling**, so no task has weight 0 when ``rand_task_rate > 0``, and an
   unexplored task never has weight 0 at all.

``sample`` draws with ``jax.random.categorical`` on ``log(dist)``, one key per episode (for more
than ``categorical_max_slots`` slots, the same distribution by inverse CDF: one uniform per key).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxrl_arena.curriculum.base import Curriculum, EpisodeOutcomes, shared_row
from jaxrl_arena.curriculum.ring import ring_append

RANDOM_BASELINE_CAP = 0.75
DEFAULT_SUCCESS_RATE = 0.0
# Histogram of sampling weights relative to uniform (dist * S): bin edges (8 bins).
WEIGHT_HIST_EDGES = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 4.0)


@struct.dataclass
class LPState:
    outcomes: jax.Array  # float32[S, memory]: success in [0, 1], ring buffer
    count: jax.Array  # int32[S]: outcomes credited since the task entered its slot
    new_count: jax.Array  # int32[S]: outcomes since the task's EMAs last moved
    has_baseline: jax.Array  # bool[S]
    baseline: jax.Array  # float32[S]
    p_fast: jax.Array  # float32[S]
    p_slow: jax.Array  # float32[S]
    p_true: jax.Array  # float32[S]
    dist: jax.Array  # float32[S]: episode sampling distribution (sums to 1)
    last_count: jax.Array  # int32[S]: episodes credited in the last update
    last_score_sum: jax.Array  # float32[S]: sum of their raw scores
    task_ids: jax.Array  # int32[S]: global task id of each slot (named: arange)
    admitted: jax.Array  # int32[S]: update index at which the slot's task was admitted
    step: jax.Array  # int32[]: updates so far
    dropped: jax.Array  # int32[]: outcomes not credited in the last update (non-finite/evicted)
    key: jax.Array  # uint32[2]: PRNG key for pool admissions


def smoothing_reweight(p: jax.Array, s: float) -> jax.Array:
    """v1's R(p) = p(1-s) / (p + s(1-2p)) on p clipped to [0, 1] (denominator <= 0 -> 1)."""
    p = jnp.clip(p, 0.0, 1.0)
    den = p + s * (1.0 - 2.0 * p)
    return p * (1.0 - s) / jnp.where(den > 0, den, 1.0)


class LearningProgressCurriculum(Curriculum):
    """Bidirectional learning progress over named tasks or a pool of a generated task space."""

    def __init__(self, tasks: dict[str, Any] | None = None, *, ema_timescale: float = 0.001,
                 progress_smoothing: float = 0.05, num_active_tasks: int = 16,
                 rand_task_rate: float = 0.25, sample_threshold: int = 10, memory: int = 25,
                 min_outcomes: int | None = None, explore_rate: float = 0.2,
                 explore_boost: float = 2.0,
                 score_min: Any = 0.0, score_max: Any = 1.0,
                 space: Any = None, pool_size: int | None = None, evict_per_update: int = 1,
                 evict_min_outcomes: int | None = None, seed: int = 0,
                 categorical_max_slots: int = 64):
        if (tasks is None) == (space is None):
            raise ValueError("give either named tasks or a task space")
        if not 0.0 < progress_smoothing < 0.5:
            raise ValueError("progress_smoothing must be in (0, 0.5)")
        if memory < 1 or sample_threshold < 1:
            raise ValueError("memory and sample_threshold must be >= 1")
        self.alpha = float(ema_timescale)
        self.smoothing = float(progress_smoothing)
        self.num_active_tasks = int(num_active_tasks)
        self.rand_task_rate = float(rand_task_rate)
        self.sample_threshold = int(sample_threshold)
        self.memory = int(memory)
        self.min_outcomes = max(1, int(sample_threshold if min_outcomes is None else min_outcomes))
        self.explore_rate = float(explore_rate)
        self.explore_boost = float(explore_boost)
        self.seed = int(seed)
        self.categorical_max_slots = int(categorical_max_slots)
        self.space = space
        if space is None:
            if not tasks:
                raise ValueError("a curriculum needs at least one task")
            self.task_names = tuple(tasks)
            self.num_tasks = self.num_slots = len(tasks)
            self._table = jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]),
                                       *tasks.values())
            per_task = lambda v, name: (jnp.asarray([v[t] for t in tasks], jnp.float32)
                                        if isinstance(v, dict) else
                                        jnp.broadcast_to(jnp.asarray(v, jnp.float32),
                                                         (self.num_slots,)))
            self.score_min = per_task(score_min, "score_min")
            self.score_max = per_task(score_max, "score_max")
            self.evict_per_update = 0
        else:
            self.num_tasks = int(space.num_tasks)
            self.num_slots = int(pool_size or num_active_tasks)
            if not 1 <= self.num_slots <= self.num_tasks:
                raise ValueError("pool_size must be in [1, num_tasks]")
            self.task_names = tuple(f"pool{i}" for i in range(self.num_slots))  # never expanded
            self.score_min = jnp.asarray(score_min, jnp.float32)
            self.score_max = jnp.asarray(score_max, jnp.float32)
            self.evict_per_update = int(evict_per_update)
        if jnp.any(self.score_max <= self.score_min):
            raise ValueError("score_max must exceed score_min")
        self.evict_min_outcomes = int(2 * self.memory if evict_min_outcomes is None
                                      else evict_min_outcomes)

    @classmethod
    def over_space(cls, space, *, pool_size: int = 256, **kwargs) -> "LearningProgressCurriculum":
        return cls(None, space=space, pool_size=pool_size, **kwargs)

    # ------------------------------------------------------------------ interface
    def init(self, key: jax.Array | None = None) -> LPState:
        """``key``: the run's curriculum key (vmapped seeds get different initial pools and
        eviction draws); ``curriculum.seed`` is folded into it. Without a key (unit tests),
        ``PRNGKey(seed)``."""
        S, W = self.num_slots, self.memory
        key = jax.random.PRNGKey(self.seed) if key is None else jax.random.fold_in(key, self.seed)
        if self.space is None:
            ids = jnp.arange(S, dtype=jnp.int32)
        else:
            key, k = jax.random.split(key)
            ids = self._distinct_ids(k, S)
        zf = jnp.zeros(S, jnp.float32)
        zi = jnp.zeros(S, jnp.int32)
        state = LPState(
            outcomes=jnp.zeros((S, W), jnp.float32), count=zi, new_count=zi,
            has_baseline=jnp.zeros(S, bool), baseline=zf, p_fast=zf, p_slow=zf, p_true=zf,
            dist=jnp.full(S, 1.0 / S, jnp.float32), last_count=zi, last_score_sum=zf,
            task_ids=ids, admitted=zi, step=jnp.zeros((), jnp.int32),
            dropped=jnp.zeros((), jnp.int32), key=key,
        )
        return state.replace(dist=self._distribution(state))

    def _distinct_ids(self, key, n):
        """``n`` distinct task ids, uniform over the space (host-size independent)."""
        N = self.num_tasks
        if N <= 1 << 22:
            return jax.random.choice(key, N, (n,), replace=False).astype(jnp.int32)
        raise ValueError("space too large for the initial draw")  # pragma: no cover

    def sample(self, state: LPState, keys: jax.Array) -> jax.Array:
        """``jax.random.categorical`` on ``log(dist)`` (one key per episode), O(n S) noise;
        above ``categorical_max_slots`` slots the same distribution by inverse CDF, O(n log S)
        (the rollout samples a reset pool every step)."""
        if self.num_slots <= self.categorical_max_slots:
            logits = jnp.log(state.dist)
            slots = jax.vmap(lambda k: jax.random.categorical(k, logits))(keys)
        else:
            cdf = jnp.cumsum(state.dist)
            u = jax.vmap(lambda k: jax.random.uniform(k))(keys) * cdf[-1]
            slots = jnp.minimum(jnp.searchsorted(cdf, u, side="right"), self.num_slots - 1)
        return state.task_ids[slots].astype(jnp.int32)

    def task_params(self, task_ids: jax.Array):
        if self.space is not None:
            return self.space.params(task_ids)
        return jax.tree.map(lambda table: table[task_ids], self._table)

    def shared_params(self):
        return None if self.space is not None else shared_row(self._table)

    def slots_of(self, state: LPState, task_ids: jax.Array):
        """Slot of each global task id and whether it is live (sorted search, O(M log S))."""
        if self.space is None:
            ok = (task_ids >= 0) & (task_ids < self.num_slots)
            return jnp.clip(task_ids, 0, self.num_slots - 1), ok
        order = jnp.argsort(state.task_ids)
        sorted_ids = state.task_ids[order]
        j = jnp.clip(jnp.searchsorted(sorted_ids, task_ids), 0, self.num_slots - 1)
        return order[j].astype(jnp.int32), sorted_ids[j] == task_ids

    def update(self, state: LPState, outcomes: EpisodeOutcomes, axis_name: str | None = None):
        S = self.num_slots
        task_id, done, score = outcomes.task_id, outcomes.done, outcomes.score
        if axis_name is not None:  # every device sees every episode: identical state
            task_id, done, score = jax.lax.all_gather((task_id, done, score), axis_name,
                                                      tiled=True)
        task_id = task_id.astype(jnp.int32)
        score = score.astype(jnp.float32)
        slot, live = self.slots_of(state, task_id)
        credited = done & live & jnp.isfinite(score)
        dropped = jnp.sum(done & ~credited).astype(jnp.int32)
        seg = jnp.where(credited, slot, S)
        smin = self.score_min if self.score_min.ndim == 0 else self.score_min[slot]
        smax = self.score_max if self.score_max.ndim == 0 else self.score_max[slot]
        success = jnp.clip((score - smin) / (smax - smin), 0.0, 1.0)
        success = jnp.where(credited, success, 0.0)
        counts = jax.ops.segment_sum(jnp.ones_like(seg), seg, S + 1)[:S]
        raw_sums = jax.ops.segment_sum(jnp.where(credited, score, 0.0), seg, S + 1)[:S]

        buf = ring_append(state.outcomes, state.count, seg, success, counts)
        count = state.count + counts
        new_count = state.new_count + counts
        state = state.replace(outcomes=buf, count=count, new_count=new_count,
                              last_count=counts, last_score_sum=raw_sums, dropped=dropped)
        state = self._refresh(state)
        state = state.replace(step=state.step + 1)
        if self.space is not None and self.evict_per_update > 0:
            state = self._evict_admit(state)
        return state.replace(dist=self._distribution(state))

    # ------------------------------------------------------------------ the math
    def success_rate(self, state: LPState) -> jax.Array:
        """Mean of each ring's valid entries; DEFAULT_SUCCESS_RATE where there are none."""
        W = self.memory
        n = jnp.minimum(state.count, W)
        valid = jnp.arange(W)[None, :] < n[:, None]
        total = jnp.sum(jnp.where(valid, state.outcomes, 0.0), axis=1)
        return jnp.where(n > 0, total / jnp.maximum(n, 1), DEFAULT_SUCCESS_RATE)

    def _refresh(self, state: LPState) -> LPState:
        a = self.alpha
        sr = self.success_rate(state)
        refresh = (state.new_count >= self.sample_threshold) & (state.count >= self.min_outcomes)
        first = refresh & ~state.has_baseline
        later = refresh & state.has_baseline
        baseline = jnp.where(first, jnp.minimum(sr, RANDOM_BASELINE_CAP), state.baseline)
        n = jnp.maximum(sr - baseline, 0.0) / (1.0 - baseline)  # baseline <= 0.75
        k = state.new_count.astype(jnp.float32) / self.sample_threshold
        A = jnp.exp(k * jnp.log1p(-a)) if a < 1.0 else jnp.zeros_like(k)
        d_fast = state.p_fast - n
        d_slow = state.p_slow - n
        fast = n + A * d_fast
        slow = n + A * d_slow + k * a * A * d_fast
        true = sr + A * (state.p_true - sr)
        pick = lambda new, init, old: jnp.where(first, init, jnp.where(later, new, old))
        return state.replace(
            has_baseline=state.has_baseline | first, baseline=baseline,
            p_fast=pick(fast, n, state.p_fast), p_slow=pick(slow, n, state.p_slow),
            p_true=pick(true, sr, state.p_true),
            new_count=jnp.where(refresh, 0, state.new_count),
        )

    def learning_progress(self, state: LPState) -> jax.Array:
        s = self.smoothing
        return jnp.abs(smoothing_reweight(state.p_fast, s) - smoothing_reweight(state.p_slow, s))

    def _lp_weights(self, state: LPState) -> jax.Array:
        """v1's distribution over explored tasks (zeros where unexplored); sums to 1 or 0."""
        explored = state.has_baseline
        lp = self.learning_progress(state)
        pos = explored & ((lp > 0) | (state.p_true > 0))
        pos = jnp.where(jnp.any(pos), pos, explored)
        npos = jnp.maximum(jnp.sum(pos), 1)
        mean = jnp.sum(jnp.where(pos, lp, 0.0)) / npos
        var = jnp.sum(jnp.where(pos, jnp.square(lp - mean), 0.0)) / npos
        std = jnp.sqrt(var)
        z = (lp - mean) / jnp.where(std > 0, std, 1.0)
        w = jnp.where(pos, jax.nn.sigmoid(z), 0.0)
        return w / jnp.maximum(jnp.sum(w), jnp.finfo(jnp.float32).tiny)

    def _distribution(self, state: LPState) -> jax.Array:
        S = self.num_slots
        explored = state.has_baseline
        n_exp = jnp.sum(explored)
        n_unexp = S - n_exp
        # Exploring tasks keep at least their uniform share n_unexp / S: otherwise the first
        # few tasks to reach a baseline split 1 - explore_rate of all episodes between them
        # whatever their LP (seen on the H100 A/B: one task drew 30% of a 256-task pool).
        share = jnp.maximum(jnp.minimum(self.explore_rate, self.explore_boost * n_unexp / S),
                            n_unexp / S)
        e = jnp.where(n_unexp == 0, 0.0, jnp.where(n_exp == 0, 1.0, share))
        explore = jnp.where(explored, 0.0, 1.0) / jnp.maximum(n_unexp, 1)
        d = (1.0 - e) * self._lp_weights(state) + e * explore
        return (1.0 - self.rand_task_rate) * d + self.rand_task_rate / S

    def _evict_admit(self, state: LPState) -> LPState:
        """Evict the ``evict_per_update`` mature slots with the lowest LP weight (ties: oldest
        admission) and admit fresh uniformly drawn task ids not already in the pool."""
        S = self.num_slots
        w = self._lp_weights(state)
        mature = state.has_baseline & (state.count >= self.evict_min_outcomes)
        # lexsort: last key is primary -> by weight, then by admission step, then slot.
        order = jnp.lexsort((jnp.arange(S), state.admitted, w, ~mature))
        key, sub = jax.random.split(state.key)

        def body(i, carry):
            st, k = carry
            k, kc = jax.random.split(k)
            slot = order[i]
            cand = jax.random.randint(kc, (4,), 0, self.num_tasks, dtype=jnp.int32)
            present = jnp.any(cand[:, None] == st.task_ids[None, :], axis=1)
            ok = ~present
            new_id = cand[jnp.argmax(ok)]
            do = mature[slot] & jnp.any(ok)
            upd = lambda arr, v: arr.at[slot].set(jnp.where(do, v, arr[slot]))
            st = st.replace(
                outcomes=st.outcomes.at[slot].set(jnp.where(do, 0.0, st.outcomes[slot])),
                count=upd(st.count, 0), new_count=upd(st.new_count, 0),
                has_baseline=upd(st.has_baseline, False), baseline=upd(st.baseline, 0.0),
                p_fast=upd(st.p_fast, 0.0), p_slow=upd(st.p_slow, 0.0),
                p_true=upd(st.p_true, 0.0), last_count=upd(st.last_count, 0),
                last_score_sum=upd(st.last_score_sum, 0.0), task_ids=upd(st.task_ids, new_id),
                admitted=upd(st.admitted, st.step),
            )
            return st, k

        n = min(self.evict_per_update, S)
        state, _ = jax.lax.fori_loop(0, n, body, (state, sub))
        return state.replace(key=key)

    # ------------------------------------------------------------------ metrics
    def num_nan_tasks(self, state: LPState) -> jax.Array:
        """Slots with any non-finite LP value, read from the raw state (no nan_to_num)."""
        bad = ~jnp.all(jnp.isfinite(state.outcomes), axis=1)
        for x in (state.baseline, state.p_fast, state.p_slow, state.p_true, state.dist,
                  state.last_score_sum):
            bad = bad | ~jnp.isfinite(x)
        return jnp.sum(bad)

    def metrics(self, state: LPState) -> dict[str, jax.Array]:
        S = self.num_slots
        f = lambda x: jnp.asarray(x, jnp.float32)
        sr = self.success_rate(state)
        seen = state.count > 0
        rel = state.dist * S
        edges = jnp.asarray(WEIGHT_HIST_EDGES[1:], jnp.float32)
        bins = jnp.searchsorted(edges, rel, side="right")  # 0..7
        hist = jax.ops.segment_sum(jnp.ones(S, jnp.float32), bins, len(WEIGHT_HIST_EDGES)) / S
        out = {
            "lp/num_active_tasks": f(jnp.sum(state.has_baseline)),
            "lp/num_exploring_tasks": f(jnp.sum(~state.has_baseline)),
            "lp/num_unseen_tasks": f(jnp.sum(~seen)),
            "lp/mean_sample_prob": f(jnp.mean(state.dist)),
            "lp/max_sample_prob": f(jnp.max(state.dist)),
            "lp/sample_entropy": f(-jnp.sum(state.dist * jnp.log(jnp.maximum(state.dist, 1e-30)))),
            "lp/task_success_rate": f(jnp.sum(jnp.where(seen, sr, 0.0))
                                      / jnp.maximum(jnp.sum(seen), 1)),
            "lp/mean_evals_per_task": f(jnp.mean(state.count)),
            "lp/mean_learning_progress": f(jnp.mean(self.learning_progress(state))),
            "lp/num_nan_tasks": f(self.num_nan_tasks(state)),
            "lp/num_dropped_outcomes": f(state.dropped),
        }
        for i in range(len(WEIGHT_HIST_EDGES)):
            out[f"lp/weight_hist_{i}"] = hist[i]
        if self.space is None:  # per-task vectors: the host names them by task
            out["task_reward/rewards.mean"] = jnp.where(
                state.last_count > 0, state.last_score_sum / jnp.maximum(state.last_count, 1),
                jnp.nan)
            out["lp/sample_prob"] = state.dist
            out["lp/success_rate"] = sr
        return out
