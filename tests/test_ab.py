"""``--ab`` over any config key (jaxrl_arena/ab.py): keys that change the compiled program run
as separate programs in one command (same seeds, one dir each, configs differing in the A/B
keys only) with the vmappable keys vmapped inside each, every variant checked before the first
program trains, and one combined report; vmappable keys alone keep the loop's one program."""

import json
import sys

import numpy as np
import pytest

from jaxrl_arena import ab
from jaxrl_arena import config as C
from jaxrl_arena.config import ConfigError
from jaxrl_arena.logging import read_metrics

# CartPole at its smallest: 4 envs (one per test device) x 8 steps, 8 updates in one chunk.
TINY = ["ppo.num_envs=4", "ppo.num_steps=8", "ppo.num_minibatches=1", "ppo.update_epochs=1",
        "run.total_timesteps=256", "run.updates_per_chunk=8", "eval.every_updates=0",
        "logging.progress=false", "logging.tensorboard=false", "checkpoint.every_updates=0",
        "checkpoint.every_seconds=0"]


def _gymnax_entry(monkeypatch, *argv):
    """``experiments/gymnax_env.py ARGV`` in this process (its compiled programs stay cached)."""
    from experiments import gymnax_env

    monkeypatch.setattr(sys, "argv", ["gymnax_env.py", *argv])
    return gymnax_env.main()


def _cfg(tmp_path, *extra):
    return C.apply_overrides(C.get_recipe("cartpole"), TINY + [f"run.dir={tmp_path}", *extra])


# ----------------------------------------------------------------------------- planning
def test_programs_are_the_cross_product_of_the_keys_that_change_the_program(tmp_path):
    cfg = _cfg(tmp_path)
    plan = ab.plan(cfg, ["ppo.lr=1e-3,3e-4", "policy.hidden_sizes=(16,16),[32]",
                         "ppo.num_steps=8,16"], tmp_path)
    assert [p.label for p in plan.programs] == [
        f"policy.hidden_sizes={sizes},ppo.num_steps={steps}"
        for sizes in ("(16,16)", "(32)") for steps in (8, 16)]
    first, last = plan.programs[0], plan.programs[-1]
    assert first.directory == tmp_path / "ab" / "policy.hidden_sizes=(16,16),ppo.num_steps=8"
    assert C.diff(first.config, last.config) == {"policy.hidden_sizes": ((16, 16), (32,)),
                                                 "ppo.num_steps": (8, 16)}
    # The vmappable items travel as given, vmapped inside every program.
    assert all(p.ab == ["ppo.lr=1e-3,3e-4"] for p in plan.programs)
    assert first.variants() == ["ppo.lr=0.001", "ppo.lr=0.0003"]
    assert ab.plan(cfg, ["ppo.lr=1e-3,3e-4", "ppo.gamma=0.9,0.99"], tmp_path) is None
    assert ab.plan(cfg, [], tmp_path) is None
    # A value with a "/" still gives one directory below ab/.
    plan = ab.plan(cfg, ["run.init_from=a/b,c"], tmp_path)
    assert [p.directory.parent for p in plan.programs] == [tmp_path / "ab"] * 2


@pytest.mark.parametrize("items, expected", [
    (["ppo.lrr=1,2"], "unknown config key 'ppo.lrr'; did you mean ppo.lr"),
    (["policy.kind=mlp,transformer"], "bad value 'transformer' for policy.kind: expected one of"),
    (["ppo.num_steps=8,eight"], "bad value 'eight' for ppo.num_steps: expected an int"),
    (["ppo.num_steps=8", "ppo.num_steps=16"], "--ab names ppo.num_steps twice"),
    (["ppo.num_steps=8,8"], "--ab ppo.num_steps lists 8 twice"),
    (["run.dir=a,b"], "--ab run.dir: it names the run dir"),
    (["ppo.num_steps="], "--ab 'ppo.num_steps=' lists no value"),
])
def test_mistakes_in_the_items_are_one_line_errors(tmp_path, items, expected):
    with pytest.raises(ConfigError) as err:
        ab.plan(_cfg(tmp_path), items, tmp_path)
    assert expected in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("items, expected", [
    (["ppo.num_steps=8,0"], "--ab program ppo.num_steps=0: ppo.num_steps=0 must be >= 1"),
    # 4 envs on the 4 test devices: 8 rows per device, not 3 minibatches.
    (["ppo.num_minibatches=2,3"], "--ab program ppo.num_minibatches=3: batch 8 (num_envs"),
    (["policy.hidden_sizes=(8),(16)", "ppo.lr=1e-3,-1"], "ppo.lr=-1.0 must be > 0"),
])
def test_every_variant_is_checked_before_any_program(tmp_path, items, expected):
    import jax

    plan = ab.plan(_cfg(tmp_path), items, tmp_path)
    with pytest.raises(ConfigError) as err:
        ab.check(plan, num_devices=len(jax.devices()))
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_a_bad_second_variant_stops_the_command_before_training(tmp_path, monkeypatch, capsys):
    from experiments import gymnax_env
    from jaxrl_arena import cli

    monkeypatch.setattr(sys, "argv", ["gymnax_env.py", "--config-override", *TINY,
                                      f"run.dir={tmp_path / 'run'}",
                                      "--ab", "ppo.num_steps=8,0", "ppo.lr=1e-3,3e-4"])
    with pytest.raises(SystemExit) as exit_:
        cli.main_guard(gymnax_env.main)
    out, err = capsys.readouterr()
    assert exit_.value.code == 2
    assert err.splitlines() == ["error: --ab program ppo.num_steps=0: ppo.num_steps=0 must be >= 1"]
    assert "A/B program" not in out and not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- one command
def test_programs_run_in_their_dirs_with_the_same_seeds_and_one_report(tmp_path, monkeypatch,
                                                                      capsys):
    import jax

    from jaxrl_arena import autosize, compare
    from jaxrl_arena.loop import check_resumable
    from jaxrl_arena.policy_artifact import export_run, load_policy
    from jaxrl_arena.train import make_env

    run = tmp_path / "run"
    items = ["policy.hidden_sizes=(8),(16,16)", "ppo.lr=1e-3,3e-4"]
    argv = ["--config-override", *TINY, f"run.dir={run}", "--num-seeds", "2", "--ab", *items]
    assert _gymnax_entry(monkeypatch, *argv) == 0
    out = capsys.readouterr().out
    small = run / "ab" / "policy.hidden_sizes=(8)"
    large = run / "ab" / "policy.hidden_sizes=(16,16)"
    assert sorted((run / "ab").iterdir()) == [large, small]
    assert out.index(f"A/B program 1 of 2: policy.hidden_sizes=(8) -> {small}") \
        < out.index(f"done: 256 agent-steps in {small}") \
        < out.index(f"A/B program 2 of 2: policy.hidden_sizes=(16,16) -> {large}")

    # Two programs: their saved configs differ in the A/B key only (the compare command says
    # so), each vmapped the same lr variants over the same seeds.
    saved = {d: json.loads((d / "config.json").read_text()) for d in (small, large)}
    compare.main([str(small), str(large), "--metrics", "overview/reward"])
    diff = capsys.readouterr().out
    assert [line.split("|")[1].strip() for line in diff.splitlines()
            if line.startswith("| `")] == ["`policy.hidden_sizes`"]
    labels = ["ppo.lr=0.001,seed=0", "ppo.lr=0.001,seed=1", "ppo.lr=0.0003,seed=0",
              "ppo.lr=0.0003,seed=1"]
    programs = {p.directory: p for p in
                ab.plan(C.replace(_cfg(run), "run.num_seeds", 2), items, run).programs}
    for d, sizes in ((small, [8]), (large, [16, 16])):
        assert saved[d]["policy"]["hidden_sizes"] == sizes
        assert saved[d]["run"]["seed"] == 0 and saved[d]["run"]["num_seeds"] == 2
        assert saved[d]["_resolved"]["ab"] == ["ppo.lr=1e-3,3e-4"]
        assert saved[d]["_resolved"]["runs"] == labels
        # A rerun of the command resumes this dir: the config saved is the program's.
        program = programs[d].config
        resolved, _ = autosize.resolve(program, make_env(program), jax.devices())
        check_resumable(saved[d], resolved, d)

    # A program dir is a run dir: its policy loads with its own network.
    loaded = load_policy(export_run(small, tmp_path / "policy"))
    assert list(loaded.meta["policy"]["hidden_sizes"]) == [8]
    assert loaded.params["params"]["Dense_0"]["kernel"].shape == (4, 8)

    # The report: every program x vmapped variant, its reward the mean over its two seeds
    # (the per-run series of its program's metrics.jsonl, each at its last logged value).
    report = (run / "ab_report.md").read_text()
    assert report in out and (run / "ab_report.png").stat().st_size > 0
    reward = report[report.index("`overview/reward` (mean"):report.index("`overview/sps` (mean")]
    rows = {line.split("|")[1].strip(): line for line in reward.splitlines()
            if line.startswith("| policy")}
    assert list(rows) == [f"policy.hidden_sizes={s},ppo.lr={lr}" for s in ("(8)", "(16,16)")
                          for lr in ("0.001", "0.0003")]
    for name, line in rows.items():
        sizes, lr = name.split(",ppo.")
        metrics = read_metrics(run / "ab" / sizes)
        last = []
        for seed in (0, 1):
            key = f"runs/ppo.{lr},seed={seed}/overview/reward"
            last.append([r[key] for r in metrics if r.get(key) is not None][-1])
        assert line.split("|")[2].strip() == "2"  # seeds
        assert line.split("|")[-2].strip() == f"{np.mean(last):.4g} ± {np.std(last):.2g}"
    sps = report[report.index("`overview/sps` (mean"):]
    assert sum(line.startswith("| policy") for line in sps.splitlines()) == 4


def test_vmappable_keys_alone_keep_one_program_in_the_run_dir(tmp_path, monkeypatch, capsys):
    from jaxrl_arena import loop
    from jaxrl_arena.train import expand_runs

    calls = []

    def recorded(cfg, **kwargs):
        calls.append((cfg, kwargs))
        return loop.RunResult(loop.run_dir(cfg, kwargs["experiment"], kwargs["recipe"]), 8,
                              256, {"overview/reward": 9.0})

    monkeypatch.setattr(loop, "train", recorded)
    run = tmp_path / "run"
    items = ["ppo.lr=1e-3,3e-4", "ppo.ent_coef=0,0.01"]
    assert _gymnax_entry(monkeypatch, "--config-override", *TINY, f"run.dir={run}",
                         "--ab", *items) == 0
    # The loop's call as before --ab took other keys: the whole config, the items as given,
    # its own run dir; no A/B programs, no report.
    [(cfg, kwargs)] = calls
    assert cfg == _cfg(run) and kwargs == {"experiment": "gymnax", "recipe": "cartpole",
                                           "fresh": False, "ab": items}
    assert [r.label for r in expand_runs(cfg, kwargs["ab"])] == [
        "ppo.lr=0.001,ppo.ent_coef=0.0,seed=0", "ppo.lr=0.001,ppo.ent_coef=0.01,seed=0",
        "ppo.lr=0.0003,ppo.ent_coef=0.0,seed=0", "ppo.lr=0.0003,ppo.ent_coef=0.01,seed=0"]
    assert capsys.readouterr().out.strip() == f"done: 256 agent-steps in {run}, last reward 9.000"
    assert not (run / "ab").exists() and not (run / "ab_report.md").exists()
