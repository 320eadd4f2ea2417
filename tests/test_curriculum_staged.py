"""Staged-threshold curriculum (npp.md §10.1): advances, mixes and regresses at its thresholds.

Section marks (§) cite docs/specs/npp.md.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.npp.generators import STAGE_ORDER, STAGE_THRESHOLDS
from jaxrl_arena.curriculum import EpisodeOutcomes, StagedCurriculum

M = 128  # rows per update (padded with non-episodes)
STAGES = {name: {"level": jnp.full(3, i, jnp.int32), "scale": jnp.float32(i)}
          for i, name in enumerate(STAGE_ORDER)}
CUR = StagedCurriculum(STAGES, stage_table=STAGE_THRESHOLDS)   # what NppEnv declares
UPDATE = jax.jit(CUR.update)
METRICS = jax.jit(CUR.metrics)
SAMPLE = jax.jit(CUR.sample)


def step(state, successes, stage=None):
    """One update whose finished episodes (in time order) have these win flags."""
    successes = np.asarray(successes, np.float32)
    n = len(successes)
    stage = int(state.stage) if stage is None else stage
    ids = np.pad(np.full(n, stage, np.int32), (0, M - n))
    score = np.pad(successes, (0, M - n))  # success = score >= 0.5
    done = np.pad(np.ones(n, bool), (0, M - n))
    return UPDATE(state, EpisodeOutcomes(task_id=jnp.asarray(ids), done=jnp.asarray(done),
                                         score=jnp.asarray(score)))


def batch(k, n=10):
    return [1.0] * k + [0.0] * (n - k)


def test_defaults_are_the_spec_table():
    rows = [STAGE_THRESHOLDS[name] for name in STAGE_ORDER]
    np.testing.assert_allclose(CUR.thresholds, [r[0] for r in rows])
    assert CUR.min_episodes.tolist() == [r[1] for r in rows]
    np.testing.assert_allclose(CUR.regression_thresholds[1:], [r[2] for r in rows[1:]])
    assert CUR.window == 50 and CUR.check_every == 10 and CUR.regression_min_episodes == 200
    assert CUR.task_names[0] == "simplest" and CUR.task_names[-1] == "mine_heavy"


def test_advances_exactly_at_threshold_and_min_episodes():
    state = CUR.init()
    for u in range(9):  # 7/10 = 0.70 = threshold of stage 0, but fewer than 100 episodes
        state = step(state, batch(7))
        assert int(state.stage) == 0, u
    state = step(state, batch(7))  # the 100th episode
    assert int(state.stage) == 1 and int(state.advances) == 1
    # just below the threshold never advances
    state = CUR.init()
    for _ in range(30):
        state = step(state, batch(6))
    assert int(state.stage) == 0
    # sr exactly 0.70 over the window with 90 episodes (no trend): no advance; at 100: advance
    state = CUR.init()
    state = step(state, [0.0] * 40 + batch(7) * 5)
    assert int(state.stage) == 0 and float(CUR.success_rates(state)[0]) == np.float32(0.7)
    assert float(CUR.trends(state)[0]) < 0.15
    state = step(state, batch(7))
    assert int(state.stage) == 1


def test_early_advancement():
    state = CUR.init()
    for _ in range(4):  # 0.9 success but 40 episodes
        state = step(state, batch(9))
    assert int(state.stage) == 0
    state = step(state, batch(9))  # 50 episodes at 0.90
    assert int(state.stage) == 1
    state = step(state, [1.0] * 49)  # stage 1: 49 episodes at 1.0 -> not yet
    assert int(state.stage) == 1
    state = step(state, [1.0] * 10)
    assert int(state.stage) == 2


def test_trend_bonus():
    # stage 0: threshold 0.70, min 100 -> trend needs >= 90 episodes and sr >= 0.68
    older, newer = [1.0] * 15 + [0.0] * 10, [1.0] * 20 + [0.0] * 5  # sr 0.70, trend 0.20
    state = step(CUR.init(), [0.0] * 40 + older + newer)  # 90 episodes
    assert int(state.stage) == 1
    state = step(CUR.init(), [0.0] * 35 + older + newer)  # 85 < 0.9 * 100
    assert int(state.stage) == 0
    flat = ([1.0] * 7 + [0.0] * 3) * 5  # sr 0.70, no trend
    state = step(CUR.init(), [0.0] * 40 + flat)
    assert int(state.stage) == 0


def test_checks_only_every_10_episodes():
    state = step(CUR.init(), [1.0] * 9 + [1.0] * 41)  # 50 wins in one update: checked
    assert int(state.stage) == 1
    state = CUR.init()
    state = state.replace(episodes=state.episodes.at[0].set(100), since_check=jnp.int32(0))
    state = step(state, [1.0] * 9)  # all conditions hold but only 9 episodes since the check
    assert int(state.stage) == 0 and int(state.since_check) == 9
    state = step(state, [1.0])
    assert int(state.stage) == 1 and int(state.since_check) == 0


def test_regression_exactly_at_threshold_and_min_episodes():
    state = CUR.init()
    state = step(state, [1.0] * 50)  # advance to stage 1 (early)
    assert int(state.stage) == 1
    assert int(state.win_count[0]) == 50
    for u in range(19):  # stage 1: 0.2 < 0.30 regression threshold, < 200 episodes
        state = step(state, batch(2))
        assert int(state.stage) == 1, u
    state = step(state, batch(2))  # the 200th episode on stage 1
    assert int(state.stage) == 0 and int(state.regressions) == 1
    # the ring of the stage regressed to is cleared, counts are kept
    assert int(state.win_count[0]) == 0 and int(state.episodes[0]) == 50
    assert float(CUR.success_rates(state)[0]) == 0.0
    # at exactly the regression threshold (0.30) it does not regress
    state = step(CUR.init(), [1.0] * 50)
    for _ in range(25):
        state = step(state, batch(3))
    assert int(state.stage) == 1


def test_stage_mixing_probabilities():
    state = CUR.init()
    assert float(CUR.mix_prob(state)) == 0.0  # stage 0 never mixes
    state = state.replace(stage=jnp.int32(2))
    for hits, n, expect in [(0, 50, 0.40), (24, 50, 0.40), (25, 50, 0.25), (12, 20, 0.25),
                            (13, 20, 0.15), (39, 50, 0.15), (40, 50, 0.05), (50, 50, 0.05)]:
        win = np.zeros((CUR.num_tasks, CUR.window), np.float32)
        win[2, :hits] = 1.0
        s = state.replace(window=jnp.asarray(win), win_count=state.win_count.at[2].set(n))
        assert float(CUR.success_rates(s)[2]) == np.float32(hits / n)
        assert float(CUR.mix_prob(s)) == pytest.approx(expect), (hits, n)
    # sampling: the previous stage with the mix probability, never any other
    ids = np.asarray(SAMPLE(state, jax.random.split(jax.random.PRNGKey(0), 20000)))
    assert set(ids.tolist()) <= {1, 2}
    assert abs(np.mean(ids == 1) - 0.40) < 0.02  # no data on stage 2: sr 0 -> 0.40


def test_mixed_episodes_are_credited_to_their_stage():
    state = step(CUR.init(), [1.0] * 50)
    assert int(state.stage) == 1
    ids = np.array([0, 1, 0, 1, 1], np.int32)
    wins = np.array([1, 0, 1, 0, 0], np.float32)
    out = EpisodeOutcomes(task_id=jnp.asarray(np.pad(ids, (0, M - 5))),
                          done=jnp.asarray(np.pad(np.ones(5, bool), (0, M - 5))),
                          score=jnp.asarray(np.pad(wins, (0, M - 5))))
    state2 = UPDATE(state, out)
    assert state2.episodes.tolist()[:2] == [52, 3]
    np.testing.assert_allclose(CUR.success_rates(state2)[:2], [1.0, 0.0])


def test_task_params_metrics_and_finiteness():
    p = CUR.task_params(jnp.array([0, 3, 8]))
    assert p["level"].shape == (3, 3) and p["level"][:, 0].tolist() == [0, 3, 8]
    state = step(CUR.init(), [1.0] * 50)
    m = METRICS(state)
    assert float(m["curriculum/stage"]) == 1.0
    assert float(m["curriculum/mix_prob"]) == pytest.approx(0.40)
    assert float(m["curriculum/success_rate/simplest"]) == 1.0
    assert all(f"curriculum/success_rate/{n}" in m for n in CUR.task_names)
    assert m["task_reward/rewards.mean"].shape == (CUR.num_tasks,)
    for leaf in jax.tree.leaves(state):
        assert np.all(np.isfinite(np.asarray(leaf, np.float64)))


def test_last_stage_does_not_advance_and_roundtrip():
    state = CUR.init().replace(stage=jnp.int32(CUR.num_tasks - 1))
    state = step(state, [1.0] * 120)
    assert int(state.stage) == CUR.num_tasks - 1
    leaves, tree = jax.tree.flatten(state)
    restored = jax.tree.unflatten(tree, [np.asarray(x) for x in leaves])
    a, b = step(state, batch(5)), step(restored, batch(5))
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert np.array_equal(np.asarray(x), np.asarray(y))
