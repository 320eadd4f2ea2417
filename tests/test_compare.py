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


def test_a_selection_takes_some_runs_of_a_multi_run_dir(tmp_path, capsys):
    labels = ["ppo.lr=0.1,seed=0", "ppo.lr=0.1,seed=1", "ppo.lr=0.2,seed=0", "ppo.lr=0.2,seed=1"]
    many, one = tmp_path / "many", tmp_path / "one"
    for d, runs in ((many, labels), (one, [""])):
        d.mkdir()
        (d / "config.json").write_text(json.dumps({**C.to_dict(C.Config()),
                                                   "_resolved": {"runs": runs}}))
    rows = []
    for step in (10, 20):
        row = {"step": step, "overview/reward": -1.0, "overview/sps": 100.0 + step}
        row.update({f"runs/{label}/overview/reward": step + r for r, label in enumerate(labels)})
        row["runs/x/other/overview/reward"] = 99.0  # another metric's name ends the same way
        rows.append(row)
    (many / "metrics.jsonl").write_text("\n".join(map(json.dumps, rows)))
    (one / "metrics.jsonl").write_text("\n".join(
        json.dumps({k: v for k, v in r.items() if not k.startswith("runs/")}) for r in rows))

    _, values = compare.run_curves(many, "overview/reward", "ppo.lr=0.2")
    np.testing.assert_array_equal(values, [[12, 13], [22, 23]])
    _, values = compare.run_curves(many, "overview/reward", "ppo.lr=0.1,seed=1")
    np.testing.assert_array_equal(values, [[11], [21]])
    _, values = compare.run_curves(many, "overview/reward")
    assert values.shape == (2, 4)
    # The speed is the program's, the same for each selection; a dir that logged no run
    # apart has nothing to select.
    _, values = compare.run_curves(many, "overview/sps", "ppo.lr=0.2")
    np.testing.assert_array_equal(values, [[110], [120]])
    assert compare.run_curves(one, "overview/reward", "ppo.lr=0.2")[1].shape == (2, 0)
    np.testing.assert_array_equal(compare.run_curves(one, "overview/reward")[1], [[-1], [-1]])

    compare.main([f"{many}::ppo.lr=0.1", f"{many}::ppo.lr=0.2", "--metrics", "overview/reward"])
    out = capsys.readouterr().out
    assert "| `ppo.lr` | 0.1 | 0.2 |" in out  # the selection's config keys are set
    rows = {line.split("|")[1].strip(): line.split("|")[-2].strip()
            for line in out.splitlines() if line.startswith(f"| {many}::")}
    assert rows == {f"{many}::ppo.lr=0.1": "20.5 ± 0.5", f"{many}::ppo.lr=0.2": "22.5 ± 0.5"}
    with pytest.raises(C.ConfigError, match=r"::ppo.lr=0.3 selects none of the runs of .*many "
                                            r"\(ppo.lr=0.1,seed=0, "):
        compare.main([f"{many}::ppo.lr=0.3"])
