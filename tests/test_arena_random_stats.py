"""Uniform-random-policy statistics vs the reference engine (spec §14): every stat within
4 combined standard errors over 200 episodes. Slow (minutes on CPU).

Section marks (§) cite docs/specs/arena.md.
"""

import json

import pytest

from tools import arena_random_stats as random_stats
from tools.arena_golden import golden_dir


@pytest.mark.slow
def test_random_policy_statistics_match_reference():
    reference = json.loads((golden_dir() / "random_policy_stats.json").read_text())
    per_episode = random_stats.collect(episodes=200, batch=20, seed=0, log=lambda *_: None)
    rows = random_stats.compare(per_episode, reference, tol=4.0)
    names = {r[0] for r in rows}
    for required in (
        "episode_return_per_agent",
        "agent/heart.gained",
        "agent/ore_red.gained",
        "agent/action.move.success",
        "agent/action.attack.failed",
        "agent/status.max_steps_without_motion",
        "negative_reward_events_per_agent",
    ):
        assert required in names
    bad = [r for r in rows if not r[6]]
    assert not bad, bad
