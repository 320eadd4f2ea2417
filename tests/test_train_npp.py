"""CPU smoke test: the N++ recipes train a few updates on generated levels, and the staged
curriculum receives the env's own success flag."""

import numpy as np
import pytest

from jaxrl_arena import config as C
from jaxrl_arena.config import ConfigError
from jaxrl_arena.logging import read_metrics
from jaxrl_arena.loop import train

SMALL = ["ppo.num_envs=4", "ppo.num_steps=8", "ppo.num_minibatches=2", "ppo.update_epochs=1",
         "policy.hidden_sizes=32,32", "run.updates_per_chunk=2", "logging.progress=false",
         "npp.max_frames=40"]


def test_npp_curriculum_recipe_trains_a_few_updates(tmp_path):
    cfg = C.apply_overrides(C.get_recipe("npp_curriculum"),
                            SMALL + ["run.total_timesteps=128", f"run.dir={tmp_path}",
                                     "eval.every_updates=4", "eval.episodes=2", "eval.max_steps=6"])
    result = train(cfg, experiment="npp", recipe="npp_curriculum")
    assert result.updates == 4
    rows = read_metrics(tmp_path / "metrics.jsonl")
    # Held-out evaluation of every stage, logged once (update 4 is both the due and last one).
    evaluated = [r for r in rows if "eval/success_rate/simplest" in r]
    assert [r["update"] for r in evaluated] == [4]
    for stage in ("simplest", "simple", "mine_heavy"):
        assert 0.0 <= evaluated[0][f"eval/success_rate/{stage}"] <= 1.0
        assert evaluated[0][f"eval/episode_length/{stage}"] <= 6
    assert all(np.isfinite(r["loss/policy_loss"]) for r in rows)
    assert rows[-1]["curriculum/stage"] == 0  # no wins yet: still on the first stage
    assert "curriculum/success_rate/simplest" in rows[-1]
    # 40-frame episodes (10 steps of 4 frames) finish inside the run: success is logged.
    assert any(r.get("env_agent/success") is not None for r in rows)


def test_npp_stage_and_obs_errors_are_one_line():
    cfg = C.apply_overrides(C.get_recipe("npp_simplest"), ["npp.stage=nope"])
    with pytest.raises(ConfigError, match="npp.stage='nope' is not an N\\+\\+ stage; allowed: simplest"):
        train(cfg)
    cfg = C.apply_overrides(C.get_recipe("npp_simplest"), ["env.obs_kind=tokens"])
    with pytest.raises(ConfigError, match="not an N\\+\\+ observation"):
        train(cfg)


def test_npp_episode_limit_reaches_the_env_in_frames():
    from jaxrl_arena.train import make_env

    def env(*overrides):
        return make_env(C.apply_overrides(C.get_recipe("npp_simplest"), list(overrides)))

    recipe = env()
    assert recipe.max_frames == 20_000 and recipe.max_episode_steps == 5_000
    short = env("npp.max_frames=40")
    assert short.max_frames == 40 and int(short.default_params.max_frames) == 40
    # env.max_steps counts agent steps for every env: 4 frames each in N++.
    steps = env("npp.max_frames=0", "env.max_steps=10")
    assert steps.max_frames == 40 and steps.max_episode_steps == 10
    assert env("npp.max_frames=0").max_frames == 20_000  # the env's own
    with pytest.raises(ConfigError, match=r"^env.max_steps=10 \(agent steps\) and "
                                          r"npp.max_frames=20000 \(frames\) both limit N\+\+ "
                                          r"episodes; set one of them to 0$"):
        env("env.max_steps=10")
