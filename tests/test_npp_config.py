"""N++ settings reachable from the config: reward weights, frame skip, the staged curriculum's
per-stage tables and mixing; each key has one meaning, and a misplaced key fails in one line."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_arena import config as C
from jaxrl_arena.config import ConfigError
from jaxrl_arena.config.validation import check_values, validate
from jaxrl_arena.curriculum.factory import make_curriculum
from jaxrl_arena.registry import make
from envs.npp import generators as G

REWARD_KEYS = {"reward_win": "win", "reward_death": "death", "reward_switch": "switch",
               "reward_time": "time", "reward_nav": "nav", "reward_explore": "explore",
               "reward_pbrs": "pbrs", "reward_pbrs_gamma": "gamma", "reward_geo": "geo"}


def npp_cfg(*overrides):
    return C.apply_overrides(C.get_recipe("npp_grid"), list(overrides))


def test_every_reward_key_reaches_every_task_and_eval_set():
    values = {key: 0.125 * (i + 1) for i, key in enumerate(REWARD_KEYS)}
    values["reward_pbrs_gamma"] = 0.5
    env = make(npp_cfg(*(f"npp.{k}={v}" for k, v in values.items())))
    _, sets = env.eval_sets(2)
    params = [env.default_params, *env.named_tasks().values(), *sets.values()]
    for p in params:
        for key, field in REWARD_KEYS.items():
            np.testing.assert_allclose(np.asarray(getattr(p.reward, field)), values[key])
    assert env.geodesic  # a non-zero geodesic weight needs the distance field


def test_defaults_are_the_spec_weights_and_geodesic_is_off():
    env = make(npp_cfg())
    w = env.default_params.reward
    assert (float(w.win), float(w.death), float(w.switch), float(w.time)) == \
        pytest.approx((1.0, -0.5, 0.1, -0.01))
    assert float(w.geo) == 0.0 and not env.geodesic


def test_frame_skip_sets_the_env_and_the_step_limit():
    env = make(npp_cfg("npp.frame_skip=2", "env.max_steps=100", "npp.max_frames=0"))
    assert env.frame_skip == 2 and env.max_frames == 200
    with pytest.raises(ConfigError, match="npp.frame_skip=0 must be >= 1"):
        check_values(npp_cfg("npp.frame_skip=0"))


@pytest.mark.parametrize("item, suggestion", [
    ("env.reward_nav=2", "did you mean npp.reward_nav"),
    ("npp.reward_navigation=2", "did you mean npp.reward_nav"),
    ("curriculum.threshold=0.9", "curriculum.stage_thresholds"),
    ("env.frame_skip=2", "did you mean npp.frame_skip"),
])
def test_misplaced_keys_suggest_the_right_one(item, suggestion):
    with pytest.raises(ConfigError, match=suggestion):
        C.apply_overrides(C.Config(), [item])


def test_stage_tables_one_value_or_one_per_stage():
    K = len(G.STAGE_ORDER)
    one = make_curriculum(npp_cfg("curriculum.kind=staged", "curriculum.stage_thresholds=0.9",
                                  "curriculum.stage_min_episodes=300"), make(npp_cfg()))
    np.testing.assert_allclose(np.asarray(one.thresholds), [0.9] * K)
    np.testing.assert_array_equal(np.asarray(one.min_episodes), [300] * K)
    # Unset columns keep the env's table (npp.md §10.1).
    np.testing.assert_allclose(np.asarray(one.regression_thresholds),
                               [G.STAGE_THRESHOLDS[s][2] for s in G.STAGE_ORDER])
    per = ",".join(str(0.5 + 0.05 * i) for i in range(K))
    each = make_curriculum(npp_cfg("curriculum.kind=staged", f"curriculum.stage_regression={per}",
                                   "curriculum.mix_edges=0.9", "curriculum.mix_probs=0.3,0.1"),
                           make(npp_cfg()))
    np.testing.assert_allclose(np.asarray(each.regression_thresholds),
                               [0.5 + 0.05 * i for i in range(K)], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(each.mix_edges), [0.9])
    np.testing.assert_allclose(np.asarray(each.mix_probs), [0.3, 0.1])


@pytest.mark.parametrize("items, message", [
    (["curriculum.stage_thresholds=0.9,0.8"], "needs one value or one per stage"),
    (["curriculum.mix_probs=0.1,0.2"], "needs one more value than curriculum.mix_edges"),
    (["curriculum.mix_edges=0.5,0.4", "curriculum.mix_probs=0.1,0.2,0.3"], "must increase"),
])
def test_bad_stage_tables_are_one_line_errors(items, message):
    with pytest.raises(ConfigError, match=message):
        make_curriculum(npp_cfg("curriculum.kind=staged", *items), make(npp_cfg()))


@pytest.mark.parametrize("item, message", [
    ("curriculum.stage_thresholds=1.5", r"1.5 must be in \[0, 1\]"),
    ("curriculum.mix_probs=0.4,-0.1", r"-0.1 must be in \[0, 1\]"),
    ("curriculum.stage_min_episodes=-1", "-1 must be >= 0"),
])
def test_stage_table_values_are_checked(item, message):
    with pytest.raises(ConfigError, match=message):
        check_values(npp_cfg("curriculum.kind=staged", item))


@pytest.mark.parametrize("kind, item", [
    ("uniform", "curriculum.stage_thresholds=0.9"),
    ("uniform", "curriculum.window=20"),
    ("staged", "curriculum.ema_timescale=0.01"),
    ("learning_progress", "curriculum.pool_size=8"),
])
def test_a_knob_of_another_curriculum_is_refused(kind, item):
    with pytest.raises(ConfigError, match=f"applies to curriculum.kind=.* only, not '{kind}'"):
        validate(npp_cfg(f"curriculum.kind={kind}", item))


def test_the_knob_table_of_validation_names_every_knob_the_factory_reads():
    """validation.CURRICULUM_KNOB_KINDS (which kinds read a knob) and the factory's knob tables
    name the same knobs, so a knob added to one cannot be missed by the other."""
    from jaxrl_arena.config.validation import CURRICULUM_KNOB_KINDS
    from jaxrl_arena.curriculum import factory as F

    read = {*F.LP_KNOBS, *F.POOL_KNOBS, *F.STAGED_KNOBS, *F.STAGE_COLUMNS, *F.STAGED_MIX}
    assert set(CURRICULUM_KNOB_KINDS) == read - {"num_active_tasks"}
    for knob in F.STAGED_KNOBS.keys() | F.STAGE_COLUMNS.keys() | F.STAGED_MIX.keys():
        assert CURRICULUM_KNOB_KINDS[knob] == ("staged",)
    for knob in F.POOL_KNOBS:
        assert CURRICULUM_KNOB_KINDS[knob] == ("arena_lp",)
