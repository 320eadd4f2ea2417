"""``python -m jaxrl_arena.compare``: config diffs of recipes and runs, and the metrics of runs
aligned by agent-steps with seeds summarised."""

import json

import numpy as np
import pytest

from jaxrl_arena import compare
from jaxrl_arena import config as C
from toy_envs import CountdownEnv

TOY = ["ppo.num_envs=8", "ppo.num_steps=4", "ppo.num_minibatches=2", "ppo.update_epochs=1",
       "run.total_timesteps=256", "run.updates_per_chunk=2", "policy.hidden_sizes=(8,)",
       "eval.every_updates=0", "logging.tensorboard=false", "logging.progress=false",
       "run.compile_cache=off", "checkpoint.enabled=false"]


def test_recipe_diff_names_every_differing_key(capsys):
    compare.main(["cartpole", "arena_ff"])
    out = capsys.readouterr().out
    a, b = C.get_recipe("cartpole"), C.get_recipe("arena_ff")
    for key in C.diff(a, b):
        assert f"`{key}`" in out
    compare.main(["cartpole", "cartpole"])
    assert "identical configs" in capsys.readouterr().out
    with pytest.raises(C.ConfigError, match="neither a recipe"):
        compare.main(["no_such_recipe", "cartpole"])


def test_runs_are_aligned_by_agent_steps_with_seeds_summarised(tmp_path, capsys):
    from jaxrl_arena.loop import train

    one = C.apply_overrides(C.Config(), TOY + [f"run.dir={tmp_path / 'one'}"])
    two = C.apply_overrides(C.Config(), TOY + [f"run.dir={tmp_path / 'two'}", "run.num_seeds=2",
                                               "ppo.lr=0.01"])
    train(one, env=CountdownEnv(num_agents=2))
    train(two, env=CountdownEnv(num_agents=2))
    png = tmp_path / "curves.png"
    compare.main([str(tmp_path / "one"), str(tmp_path / "two"), "--metrics",
                  "loss/value_loss", "no/such_metric", "--png", str(png)])
    out = capsys.readouterr().out
    assert "`ppo.lr`" in out and "`run.num_seeds`" in out
    rows = [line for line in out.splitlines() if line.startswith(f"| {tmp_path}")]
    assert [r.split("|")[2].strip() for r in rows] == ["1", "2"]
    assert "± " in rows[1] and "`no/such_metric`: not logged" in out
    assert png.stat().st_size > 0
    # The seed summary is the mean of the per-seed columns at the last logged step.
    last = [json.loads(line) for line in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()][-1]
    seeds = [v for k, v in last.items() if k.startswith("runs/") and k.endswith("/loss/value_loss")]
    assert len(seeds) == 2
    assert f"{np.mean(seeds):.4g} ± " in rows[1]
