"""Learning-progress curriculum (arena.md §12.2-§12.4): synthetic outcome processes only.

Compilation dominates on CPU, so the tests share a few curricula and their jitted functions,
and every update sees M rows.

Section marks (§) cite docs/specs/arena.md.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_arena.curriculum import EpisodeOutcomes, LearningProgressCurriculum
from envs.arena.tasks import NUM_TASKS, ArenaTaskSpace

M = 256  # rollout rows per update


def named(n, **kw):
    return LearningProgressCurriculum({f"t{i}": {"x": jnp.float32(i)} for i in range(n)}, **kw)


class Jitted:
    def __init__(self, cur):
        self.cur = cur
        self.init = jax.jit(cur.init)
        self.update = jax.jit(cur.update)
        self.sample = jax.jit(cur.sample)
        self.metrics = jax.jit(cur.metrics)
        self.success_rate = jax.jit(cur.success_rate)

    def step(self, state, ids, score, done=None):
        ids, score = np.asarray(ids, np.int32), np.asarray(score, np.float32)
        done = np.ones(len(ids), bool) if done is None else np.asarray(done, bool)
        pad = M - len(ids)
        assert pad >= 0
        ids, score = np.pad(ids, (0, pad)), np.pad(score, (0, pad))
        done = np.pad(done, (0, pad))
        return self.update(state, EpisodeOutcomes(task_id=jnp.asarray(ids), done=jnp.asarray(done),
                                                  score=jnp.asarray(score)))


NAMED = Jitted(named(4, ema_timescale=0.05))
NAMED_R0 = Jitted(named(4, ema_timescale=0.05, rand_task_rate=0.0))
POOL = Jitted(LearningProgressCurriculum.over_space(
    ArenaTaskSpace(), pool_size=8, evict_min_outcomes=10, rand_task_rate=0.25, score_max=10.0,
    ema_timescale=0.2, sample_threshold=5, min_outcomes=5))


def all_finite(state):
    leaves = [x for x in jax.tree.leaves(state) if jnp.issubdtype(x.dtype, jnp.floating)]
    return all(bool(jnp.all(jnp.isfinite(x))) for x in leaves)


def run_process(j, success_prob, updates, seed):
    """``updates`` updates of M episodes sampled from the curriculum; returns state, dists."""
    rng = np.random.default_rng(seed)
    state, dists = j.init(), []
    for u in range(updates):
        ids = np.asarray(j.sample(state, jax.random.split(jax.random.PRNGKey(u + 1000 * seed), M)))
        score = (rng.random(M) < success_prob(u)[ids]).astype(np.float32)
        state = j.step(state, ids, score)
        dists.append(np.asarray(state.dist))
    return state, np.stack(dists)


def test_concentrates_on_improving_tasks():
    j = NAMED
    # task 0 solved, task 1 impossible, task 2 improving fast, task 3 improving slowly
    prob = lambda u: np.array([1.0, 0.0, min(1.0, u / 60.0), min(1.0, u / 300.0)])
    state, dists = run_process(j, prob, 160, seed=0)
    # while task 2 improves (u < 60) it is sampled more than the solved and impossible ones;
    # once it is solved, task 3 (still improving) is the most sampled
    assert dists[20:55, 2].mean() > dists[20:55, [0, 1]].max(axis=1).mean()
    assert np.all(dists[120:, 3] > dists[120:, [0, 1, 2]].max(axis=1))
    # the impossible task only gets the uniform mixture
    np.testing.assert_allclose(dists[120:, 1], j.cur.rand_task_rate / 4, rtol=1e-5)
    assert all_finite(state)
    m = j.metrics(state)
    assert float(m["lp/num_nan_tasks"]) == 0 and float(m["lp/num_unseen_tasks"]) == 0
    np.testing.assert_allclose(np.asarray(j.success_rate(state))[[0, 1]], [1.0, 0.0])


@pytest.mark.parametrize("j", [NAMED, NAMED_R0], ids=["rand0.25", "rand0"])
def test_explores_unseen_tasks_never_weight_zero(j):
    rand = j.cur.rand_task_rate
    state = j.init()
    np.testing.assert_allclose(state.dist, 0.25)  # nothing explored: uniform exploration
    for u in range(30):  # tasks 0..2 finish episodes (task 2 improving); task 3 never finishes
        ids = np.arange(M) % 3
        score = np.where(ids == 2, min(1.0, u / 20), 0.5)
        state = j.step(state, ids, score)
    d = np.asarray(state.dist)
    assert d[3] > 0 and np.isclose(d.sum(), 1.0)
    # the exploring task gets its explicit share max(min(explore_rate, boost / S), 1 / S),
    # plus uniform
    share = max(min(j.cur.explore_rate, j.cur.explore_boost * 1 / 4), 1 / 4)
    np.testing.assert_allclose(d[3], (1 - rand) * share + rand / 4, rtol=1e-5)
    assert not bool(state.has_baseline[3]) and int(state.count[3]) == 0
    assert float(j.metrics(state)["lp/num_unseen_tasks"]) == 1
    ids = np.asarray(j.sample(state, jax.random.split(jax.random.PRNGKey(1), M)))
    assert np.sum(ids == 3) > 0.5 * d[3] * M  # and it is actually drawn


def test_empty_memory_regression():
    """Reference bug #3: mean of an empty slice / stats before any completion."""
    j = NAMED
    state = j.init()
    m = j.metrics(state)  # before any episode finished
    assert float(m["lp/num_nan_tasks"]) == 0
    assert np.isfinite(float(m["lp/task_success_rate"]))
    np.testing.assert_array_equal(j.success_rate(state), 0.0)
    for _ in range(3):  # rollouts where nothing finished (scores of unfinished rows: NaN)
        state = j.step(state, np.zeros(M), np.full(M, np.nan), done=np.zeros(M, bool))
    assert all_finite(state)
    np.testing.assert_allclose(state.dist, 1 / 4)
    assert np.all(np.isnan(np.asarray(j.metrics(state)["task_reward/rewards.mean"])))


def test_attribution_with_config_swapped_between_episodes():
    """Reference bug #5 / §12.4.1: each env holds the task id of its reset; the outcome is
    credited to it before the next task is drawn. Tasks with constant, distinct returns."""
    j = NAMED
    returns = np.array([0.3, 0.8, 0.1, 0.6], np.float32)
    n_env, T = 32, 8
    state = j.init()
    task = np.asarray(j.sample(state, jax.random.split(jax.random.PRNGKey(3), M)))[:n_env]
    for u in range(15):
        rows_task, rows_score = [], []
        for t in range(T):  # every env ends an episode each step and swaps its task at reset
            rows_task.append(task)
            rows_score.append(returns[task])
            key = jax.random.PRNGKey(100 * u + t)
            task = np.asarray(j.sample(state, jax.random.split(key, M)))[:n_env]
        state = j.step(state, np.concatenate(rows_task), np.concatenate(rows_score))
    np.testing.assert_allclose(j.success_rate(state), returns, rtol=1e-6)
    np.testing.assert_allclose(state.p_true, returns, rtol=1e-6)
    np.testing.assert_allclose(j.metrics(state)["task_reward/rewards.mean"], returns, rtol=1e-6)


def test_sampling_weights_never_all_zero():
    """Reference: weights all zero (every task impossible, no LP), here with rand_task_rate 0."""
    j = NAMED_R0
    state = j.init()
    for _ in range(5):
        state = j.step(state, np.arange(M) % 4, np.zeros(M))
    d = np.asarray(state.dist)
    assert np.all(d > 0) and np.isclose(d.sum(), 1.0)
    np.testing.assert_allclose(d, 0.25, rtol=1e-6)
    ids = np.asarray(j.sample(state, jax.random.split(jax.random.PRNGKey(0), M)))
    assert set(ids.tolist()) == set(range(4))


def test_score_normalisation_per_family():
    """Map: clip((score - score_min) / (score_max - score_min), 0, 1), per named task."""
    cur = named(2, score_min={"t0": 0.0, "t1": -1.0}, score_max={"t0": 10.0, "t1": 1.0})
    ids = jnp.array([0, 0, 0, 1, 1, 1], jnp.int32)
    score = jnp.array([5.0, 25.0, -3.0, 0.0, 3.0, -2.0])
    state = jax.jit(cur.update)(jax.jit(cur.init)(), EpisodeOutcomes(task_id=ids, done=jnp.ones(6, bool),
                                                            score=score))
    np.testing.assert_allclose(state.outcomes[0, :3], [0.5, 1.0, 0.0])
    np.testing.assert_allclose(state.outcomes[1, :3], [0.5, 1.0, 0.0])
    np.testing.assert_allclose(state.last_score_sum / state.last_count, [9.0, 1 / 3], rtol=1e-6)


def test_ring_buffer_keeps_last_outcomes_in_order():
    j = NAMED  # memory 25
    ids = np.array([0] * 30 + [1, 1])
    score = np.concatenate([np.arange(30) / 100, [0.9, 0.8]])
    done = np.ones(32, bool)
    done[3] = False  # 0.03 is not an episode end
    state = j.step(j.init(), ids, score, done)
    # task 0 got 29 outcomes in time order (.00 .01 .02 .04 ... .29): the ring holds the last
    # 25; appends 26..29 wrapped to positions 0..3
    kept = np.delete(np.arange(30), 3)[-25:] / 100
    expect = np.empty(25)
    expect[np.arange(4, 29) % 25] = kept
    np.testing.assert_allclose(state.outcomes[0], expect, rtol=1e-6)
    np.testing.assert_allclose(state.outcomes[1, :2], [0.9, 0.8])
    assert state.count.tolist() == [29, 2, 0, 0]
    np.testing.assert_allclose(j.success_rate(state)[:2], [kept.mean(), 0.85], rtol=1e-5)


@pytest.mark.parametrize("j", [NAMED, POOL], ids=["named", "pool"])
def test_never_nan_property(j):
    cur = j.cur
    rng = np.random.default_rng(0)
    state = j.init()
    for u in range(30):
        slots = rng.integers(0, cur.num_slots, M)
        slots = np.where(slots == 3, 2, slots)  # slot 3 never gets an outcome
        ids = np.asarray(state.task_ids)[slots]
        if u % 5 == 0:
            ids[:8] = rng.integers(-3, cur.num_tasks + 3, 8)  # stale / evicted / unknown ids
            ids = np.where(ids == int(state.task_ids[3]), int(state.task_ids[2]), ids)
        done = rng.random(M) < (0.0 if u % 7 == 0 else 0.5)
        score = rng.normal(0, 20, M).astype(np.float32) * (rng.random() < 0.5)
        score[rng.random(M) < 0.05] = np.nan  # non-finite returns are not credited
        score[rng.random(M) < 0.05] = np.inf
        state = j.step(state, ids, score, done)
        assert all_finite(state), u
        np.testing.assert_allclose(float(state.dist.sum()), 1.0, rtol=1e-5)
        assert bool(jnp.all(state.dist > 0))
        metrics = j.metrics(state)
        assert float(metrics["lp/num_nan_tasks"]) == 0
        assert all(np.isfinite(float(v)) for k, v in metrics.items() if np.ndim(v) == 0)
    assert int(state.count[3]) == 0 and bool(state.has_baseline.any())
    if j is POOL:
        ids = np.asarray(state.task_ids)
        assert len(set(ids.tolist())) == len(ids) and ids.min() >= 0 and ids.max() < NUM_TASKS
        assert int(state.admitted.max()) > 0  # evictions happened


def test_num_nan_tasks_counts_honestly():
    j = NAMED
    state = j.init()
    state = state.replace(p_fast=state.p_fast.at[2].set(jnp.nan),
                          outcomes=state.outcomes.at[0, 3].set(jnp.inf))
    assert float(j.metrics(state)["lp/num_nan_tasks"]) == 2


def pool_step(state, u):
    ids = np.asarray(POOL.sample(state, jax.random.split(jax.random.PRNGKey(u), M)))
    score = np.random.default_rng(u).random(M) * 12.0
    return POOL.step(state, ids, score)


def test_checkpoint_resume_bitwise(tmp_path):
    from jaxrl_arena.checkpoint import Checkpointer

    state = POOL.init()
    for u in range(5):
        state = pool_step(state, u)
    assert int(state.admitted.max()) > 0
    with Checkpointer(tmp_path / "ckpt") as ck:
        ck.save(5, {"curriculum": state}, {"note": "lp"})
    with Checkpointer(tmp_path / "ckpt") as ck:
        restored, _, at = ck.restore({"curriculum": POOL.init()})
    # uncommitted arrays like the jit outputs (committed ones would only cost a recompile)
    restored = jax.tree.map(lambda x: jnp.asarray(np.asarray(x)), restored["curriculum"])
    assert at == 5
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(restored)):
        assert a.dtype == b.dtype and np.array_equal(np.asarray(a), np.asarray(b))
    for u in range(5, 10):
        state, restored = pool_step(state, u), pool_step(restored, u)
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(restored)):
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_pool_evicts_lowest_lp_and_drops_stale_outcomes():
    j = POOL
    state = j.init()
    ids0 = np.asarray(state.task_ids)
    traces = []
    for u in range(2):  # every slot gets 20 outcomes; slot 5's task improves, the rest are flat
        ids = np.repeat(np.asarray(state.task_ids), 20)
        score = np.where(ids == ids0[5], 5.0 + 2.5 * u, 5.0)
        state = j.step(state, ids, score)
        traces.append(np.asarray(state.task_ids))
        compiled = j.update._cache_size()
    # update 0: all mature, equal weights -> the oldest admission, then lowest slot: slot 0
    assert traces[0][0] != ids0[0] and np.array_equal(traces[0][1:], ids0[1:])
    # update 1: slot 5 shows progress, the fresh slot 0 is not mature: the next flat one goes
    assert traces[1][1] != ids0[1] and traces[1][5] == ids0[5]
    assert np.array_equal(traces[1][2:], ids0[2:])
    assert int(state.count[0]) == 20 and int(state.count[1]) == 0  # fresh slot, empty memory
    # outcomes of an evicted task that arrive late are dropped, not credited to the new task
    before = np.asarray(state.count)
    state = j.step(state, np.full(4, ids0[0]), np.ones(4))
    assert float(j.metrics(state)["lp/num_dropped_outcomes"]) == 4
    assert np.all(np.asarray(state.count) <= before)  # (this update also evicted one slot)
    assert j.update._cache_size() == compiled  # task changes never recompile


def test_update_over_devices_equals_single_call():
    j = NAMED
    rng = np.random.default_rng(1)
    ids = jnp.asarray(rng.integers(0, 4, M), jnp.int32)
    done = jnp.asarray(rng.random(M) < 0.6)
    score = jnp.asarray(rng.random(M), jnp.float32)
    state = j.init()
    single = j.update(state, EpisodeOutcomes(task_id=ids, done=done, score=score))
    shards = EpisodeOutcomes(task_id=ids.reshape(4, -1), done=done.reshape(4, -1),
                             score=score.reshape(4, -1))
    multi = jax.jit(jax.vmap(lambda o: j.cur.update(state, o, "d"), axis_name="d"))(shards)
    for a, b in zip(jax.tree.leaves(single), jax.tree.leaves(multi)):
        for r in range(4):
            assert np.array_equal(np.asarray(a), np.asarray(b[r]))


def test_metrics_keys():
    m = NAMED.metrics(NAMED.init())
    for k in ("lp/num_active_tasks", "lp/mean_sample_prob", "lp/task_success_rate",
              "lp/mean_evals_per_task", "lp/num_unseen_tasks", "lp/num_nan_tasks",
              "task_reward/rewards.mean", "lp/weight_hist_0", "lp/weight_hist_7"):
        assert k in m
    assert m["task_reward/rewards.mean"].shape == (4,)
    assert np.isclose(sum(float(m[f"lp/weight_hist_{i}"]) for i in range(8)), 1.0)
    mp = POOL.metrics(POOL.init())
    assert all(np.ndim(v) == 0 for v in mp.values())  # no per-task vectors for the pool


def test_inverse_cdf_sampler_matches_distribution():
    cur = named(100, categorical_max_slots=64)  # 100 slots: the inverse-CDF path
    dist = np.zeros(100, np.float32)
    dist[[3, 50, 99]] = [0.5, 0.3, 0.2]
    state = jax.jit(cur.init)().replace(dist=jnp.asarray(dist))
    ids = np.asarray(jax.jit(cur.sample)(state, jax.random.split(jax.random.PRNGKey(0), 20000)))
    assert set(ids.tolist()) == {3, 50, 99}  # zero-probability slots are never drawn
    np.testing.assert_allclose([np.mean(ids == i) for i in (3, 50, 99)], [0.5, 0.3, 0.2],
                               atol=0.015)


def test_pool_is_drawn_from_the_run_key_so_seeds_differ():
    """Regression: the pool and its eviction stream came from ``curriculum.seed`` alone, so
    every vmapped seed of an A/B trained on the same initial tasks."""
    cur = POOL.cur
    a, b = cur.init(jax.random.PRNGKey(1)), cur.init(jax.random.PRNGKey(2))
    assert not np.array_equal(a.task_ids, b.task_ids) and not np.array_equal(a.key, b.key)
    np.testing.assert_array_equal(cur.init(jax.random.PRNGKey(1)).task_ids, a.task_ids)
    from jaxrl_arena.curriculum import make_curriculum  # noqa: F401  (the trainer's path)
    from jaxrl_arena import config as C
    from jaxrl_arena.train import make_train
    from toy_envs import CountdownEnv

    cfg = C.apply_overrides(C.Config(), [
        "curriculum.kind=learning_progress", "run.num_seeds=2", "ppo.num_envs=4",
        "ppo.num_steps=4", "ppo.num_minibatches=1", "policy.hidden_sizes=4"])
    state = make_train(cfg, env=CountdownEnv(), devices=jax.devices()[:1]).init()
    keys = np.asarray(state.curriculum.key)
    assert keys.shape[0] == 2 and not np.array_equal(keys[0], keys[1])


def test_first_matured_tasks_do_not_take_the_lp_mass():
    """Regression (H100 A/B): with one task of a 256-task pool past its baseline, that task
    drew 60% of the episodes (1 - explore_rate of the non-random mass) whatever its LP; it
    now gets about a uniform share until the rest of the pool is explored."""
    j = POOL
    state = j.init()
    ids0 = np.asarray(state.task_ids)
    state = j.step(state, np.full(8, ids0[3]), np.full(8, 5.0))  # slot 3 matures alone
    assert int(np.sum(state.has_baseline)) == 1
    d = np.asarray(state.dist)
    S = d.size
    assert d[3] <= 1.5 / S and np.isclose(d.sum(), 1.0)
