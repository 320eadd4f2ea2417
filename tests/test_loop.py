"""The host loop: run files, TensorBoard scalars, bitwise resume, SIGTERM, non-finite stop,
num_envs=auto."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from jaxrl_arena import config as C
from jaxrl_arena.checkpoint import Checkpointer
from jaxrl_arena.logging import read_metrics, read_tensorboard_scalars
from jaxrl_arena.loop import TrainingStopped, train
from toy_envs import CountdownEnv, countdown_params

from conftest import REPO

TOY = ["ppo.num_envs=8", "ppo.num_steps=4", "ppo.num_minibatches=2", "ppo.update_epochs=2",
       "policy.hidden_sizes=8,8", "run.updates_per_chunk=2", "logging.progress=false"]
CARTPOLE = ["ppo.num_envs=4", "ppo.num_steps=32", "ppo.num_minibatches=2", "ppo.update_epochs=2",
            "run.updates_per_chunk=2", "logging.progress=false", "checkpoint.every_updates=2"]

REQUIRED = ["overview/reward", "overview/sps", "overview/episode_length", "loss/policy_loss",
            "loss/value_loss", "loss/entropy", "loss/approx_kl", "loss/clipfrac",
            "loss/explained_variance", "train/learning_rate", "env_agent/steps",
            "curriculum/total_episodes", "task_reward/short/rewards.mean"]


def toy_cfg(tmp_path, *extra):
    return C.apply_overrides(C.Config(), TOY + [f"run.dir={tmp_path}"] + list(extra))


def test_run_files_and_tensorboard_scalars(tmp_path):
    cfg = toy_cfg(tmp_path / "run", "run.total_timesteps=640")  # 10 updates of 64 agent-steps
    result = train(cfg, env=CountdownEnv(num_agents=2), experiment="toy")
    run = tmp_path / "run"
    saved = json.loads((run / "config.json").read_text())
    assert saved["ppo"]["num_envs"] == 8 and saved["_resolved"]["num_updates"] == 10
    rows = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == [64 * (i + 1) for i in range(10)]
    assert result.agent_steps == 640 and Checkpointer(run / "checkpoints").latest_step() == 10
    scalars = read_tensorboard_scalars(run / "tb")
    for name in REQUIRED:
        logged = [(r["step"], r[name]) for r in rows if r.get(name) is not None]
        assert logged, f"{name} never logged"
        tb = dict(scalars[name])
        for step, value in logged:
            assert tb[step] == pytest.approx(value, rel=1e-6), name
    # Episode means appear only where episodes finished: the first update (4 steps of
    # 3- or 5-step episodes) has some; none are written as zero placeholders.
    assert all(r["env_agent/steps"] in (None, 3.0) or 3.0 <= r["env_agent/steps"] <= 5.0 for r in rows if "env_agent/steps" in r)


def _params(state):
    return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(state.params))]


def test_resume_is_bitwise_identical(tmp_path):
    env = CountdownEnv(num_agents=2)
    full = train(toy_cfg(tmp_path / "full", "run.total_timesteps=512"), env=env)  # 8 updates
    half = train(toy_cfg(tmp_path / "split", "run.total_timesteps=256"), env=env)
    assert half.updates == 4
    resumed = train(toy_cfg(tmp_path / "split", "run.total_timesteps=512"), env=env)
    assert resumed.resumed_from == 4 and resumed.updates == 8
    for a, b in zip(_params(full.state), _params(resumed.state)):
        np.testing.assert_array_equal(a, b)
    drop = ("wall_time", "overview/sps")
    clean = lambda rows: [{k: v for k, v in r.items() if k not in drop} for r in rows]
    assert clean(read_metrics(tmp_path / "full" / "metrics.jsonl")) == clean(
        read_metrics(tmp_path / "split" / "metrics.jsonl"))
    # Resuming with a different learning problem is refused in one line.
    with pytest.raises(C.ConfigError, match="holds a run with a different config .*ppo.lr"):
        train(toy_cfg(tmp_path / "split", "run.total_timesteps=640", "ppo.lr=0.1"), env=env)
    # --fresh starts over.
    fresh = train(toy_cfg(tmp_path / "split", "run.total_timesteps=128"), env=env, fresh=True)
    assert fresh.resumed_from is None and fresh.updates == 2
    assert len(read_metrics(tmp_path / "split" / "metrics.jsonl")) == 2


def test_non_finite_updates_stop_the_run_with_last_checkpoint_intact(tmp_path):
    class NaNAfterwards(CountdownEnv):
        """Finite rewards for the first task, NaN for the other: training goes non-finite."""

        def named_tasks(self):
            return {"nan": countdown_params(3, float("nan"))}

    cfg = toy_cfg(tmp_path / "nan", "run.total_timesteps=6400", "ppo.max_consecutive_skips=3")
    with pytest.raises(TrainingStopped, match="3 consecutive updates had a non-finite"):
        train(cfg, env=NaNAfterwards(num_agents=2))
    assert Checkpointer(tmp_path / "nan" / "checkpoints").latest_step() is None


def test_sigterm_saves_and_exits_zero_then_resumes(tmp_path):
    run = tmp_path / "sig"
    cmd = [sys.executable, str(REPO / "experiments" / "gymnax_env.py"), "--env", "CartPole-v1",
           "--config-override", *CARTPOLE, "run.total_timesteps=100_000_000", f"run.dir={run}",
           "checkpoint.every_updates=0"]
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
           "JAX_COMPILATION_CACHE_DIR": os.environ.get("JAXRL_TEST_JAX_CACHE", "/tmp/jaxrl_arena_test_jax_cache")}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 240
    metrics = run / "metrics.jsonl"   # a first row: the first chunk has run
    while time.time() < deadline and not (metrics.exists() and metrics.stat().st_size > 0):
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "received SIGTERM: saved checkpoint" in err
    step = Checkpointer(run / "checkpoints").latest_step()
    assert step is not None and step > 0
    rows = read_metrics(run / "metrics.jsonl")
    assert rows[-1]["update"] >= step


def test_sigterm_while_compiling_exits_zero_and_says_so(tmp_path):
    """A signal before the first chunk (here: during the compile) is caught, not fatal."""
    run = tmp_path / "early"
    cmd = [sys.executable, str(REPO / "experiments" / "gymnax_env.py"), "--env", "CartPole-v1",
           "--config-override", *CARTPOLE, "run.total_timesteps=100_000_000", f"run.dir={run}",
           "run.compile_cache=off"]
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
           "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    for line in proc.stdout:
        if line.startswith("compiling the train chunk"):
            proc.send_signal(signal.SIGTERM)
            break
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    assert "received SIGTERM: saved checkpoint at update 0" in err
    assert not (run / "metrics.jsonl").exists() or "update" not in (run / "metrics.jsonl").read_text()


def test_num_envs_auto_keeps_ten_updates_without_a_trial(tmp_path, monkeypatch):
    """A short run on a large device: the count is capped so the run has >= 10 updates (and
    whole minibatches), with no trial compile."""
    from jaxrl_arena import autosize

    cfg = C.apply_overrides(C.Config(), TOY + ["ppo.num_envs=auto", f"run.dir={tmp_path}",
                                               "run.total_timesteps=20000", "ppo.num_steps=10",
                                               "ppo.minibatch_size=80"])
    env = CountdownEnv(num_agents=2)
    monkeypatch.setattr(autosize, "device_memory_bytes", lambda d: 80 << 30)
    monkeypatch.setattr(autosize, "compiled_bytes", lambda *a, **k: pytest.fail("compiled a trial"))
    resolved, report = autosize.resolve_num_envs(cfg, env, jax.devices()[:1])
    n = resolved.ppo.num_envs   # 20000 / (10 x 10 x 2) = 100 -> 64, and 64 x 20 splits by 80
    assert n == 64 and "at least 10 updates" in report
    assert 20000 // (n * 10 * 2) >= 10 and (n * 10 * 2) % 80 == 0
    small_mb = C.replace(C.replace(cfg, "ppo.minibatch_size", 1280), "run.total_timesteps", 4000)
    n = autosize.resolve_num_envs(small_mb, env, jax.devices()[:1])[0].ppo.num_envs
    assert n == 64 and "fewest whole minibatches" in autosize.resolve_num_envs(
        small_mb, env, jax.devices()[:1])[1]


def test_num_envs_auto_compiles_one_trial_fits_the_budget_and_remembers(tmp_path, capsys,
                                                                        monkeypatch):
    from jaxrl_arena import autosize

    cfg = C.apply_overrides(C.Config(), TOY + ["ppo.num_envs=auto", f"run.dir={tmp_path}"])
    env = CountdownEnv(num_agents=2)
    devices = jax.devices()[:1]
    # CPU: the agent-row cap, no trial compiles.
    resolved, report = autosize.resolve_num_envs(cfg, env, devices)
    assert resolved.ppo.num_envs == 512 and "CPU cap" in report
    # With a device memory figure: one trial compile, the largest power of two that fits.
    real = autosize.compiled_bytes
    per_env = (real(cfg, env, devices, 64) - real(cfg, env, devices, 32)) / 32
    fixed = real(cfg, env, devices, 32) - per_env * 32
    fake_memory = (fixed + per_env * 40) / 0.6      # 32 envs fit, 64 do not
    trials = []
    monkeypatch.setattr(autosize, "device_memory_bytes", lambda d: int(fake_memory))
    monkeypatch.setattr(autosize, "compiled_bytes",
                        lambda *a, **k: trials.append(a[3]) or real(*a, **k))
    remembered = tmp_path / "num_envs_auto.json"
    resolved, report = autosize.resolve_num_envs(cfg, env, devices, cache_file=remembered)
    assert len(trials) == 1, trials
    assert resolved.ppo.num_envs == 32, report
    assert real(cfg, env, devices, 32) <= 0.6 * fake_memory
    assert "KiB per env" in report and "ppo.num_envs=auto -> 32" in capsys.readouterr().out
    # A rerun of the same config on the same device kind: no trial at all.
    trials.clear()
    again, report = autosize.resolve_num_envs(cfg, env, devices, cache_file=remembered)
    assert trials == [] and again.ppo.num_envs == 32 and "remembered" in report
    # Another config (a different rollout length) is decided anew.
    other = C.replace(cfg, "ppo.num_steps", cfg.ppo.num_steps * 2)
    autosize.resolve_num_envs(other, env, devices, cache_file=remembered)
    assert len(trials) == 1


def test_restart_without_checkpoint_sets_old_logs_aside(tmp_path, capsys):
    """Regression: a second run in the same dir with checkpoints off appended a new step
    axis from 0 to the old metrics.jsonl (the curves then zig-zag)."""
    cfg = toy_cfg(tmp_path / "run", "run.total_timesteps=128", "checkpoint.enabled=false",
                  "logging.tensorboard=false")
    train(cfg, env=CountdownEnv(num_agents=2), experiment="toy")
    first = read_metrics(tmp_path / "run" / "metrics.jsonl")
    train(cfg, env=CountdownEnv(num_agents=2), experiment="toy")
    second = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [r["step"] for r in second] == [r["step"] for r in first] == [64, 128]
    (kept,) = (tmp_path / "run" / "previous").iterdir()
    assert read_metrics(kept / "metrics.jsonl") == first
    assert "moved them to" in capsys.readouterr().err


def _old_layout(data):
    """A config dict as runs saved it before the env-specific keys left ``env`` (arena's
    switches and ``stage`` in ``env``; an N++ run's frame limit in ``env.max_steps``)."""
    data = json.loads(json.dumps(data))
    arena, npp = data.pop("arena"), data.pop("npp")
    data["env"].update(arena, stage=npp["stage"])
    if data["env"]["name"] == "npp":
        data["env"]["max_steps"] = npp["max_frames"]
    return data


@pytest.mark.parametrize("keys, changed", [
    (["env.name=arena", "arena.combat=false", "arena.desync_episodes=false"], "arena.combat=true"),
    (["env.name=npp", "npp.stage=simplest", "npp.max_frames=40"], "npp.max_frames=80"),
])
def test_a_run_saved_with_old_keys_resumes(tmp_path, monkeypatch, keys, changed):
    """config.json and the checkpoint metadata of a run saved before the config split are
    read through config.migrate: the run resumes, and a real change is still refused."""
    from jaxrl_arena import loop

    env = CountdownEnv(num_agents=2)  # the run's env: env.name only names the sections
    run = tmp_path / "old"
    metadata = loop.run_metadata
    monkeypatch.setattr(loop, "run_metadata", lambda d: metadata(_old_layout(d)))
    half = train(toy_cfg(run, "run.total_timesteps=256", *keys), env=env)
    monkeypatch.undo()
    saved = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**_old_layout(saved), "_resolved": saved["_resolved"]}))
    with Checkpointer(run / "checkpoints") as checkpoints:
        _, written, _ = checkpoints.restore(half.state)
    assert "npp" not in written["config"] and "stage" in written["config"]["env"]
    with pytest.raises(C.ConfigError, match=f"holds a run with a different config .*{changed.split('=')[0]}"):
        train(toy_cfg(run, "run.total_timesteps=512", *keys, changed), env=env)
    resumed = train(toy_cfg(run, "run.total_timesteps=512", *keys), env=env)
    assert resumed.resumed_from == 4 and resumed.updates == 8
    rewritten = json.loads((run / "config.json").read_text())  # the current layout again
    assert all(rewritten[s] == saved[s] for s in ("env", "arena", "npp"))


def test_the_loop_resolves_the_config_once(tmp_path, monkeypatch):
    from jaxrl_arena import autosize

    calls = {"num_envs": 0, "static": 0, "validate": 0}

    def counting(name, fn):
        def wrapper(*a, **k):
            calls[name] += 1
            return fn(*a, **k)
        return wrapper

    monkeypatch.setattr(autosize, "resolve_num_envs", counting("num_envs", autosize.resolve_num_envs))
    monkeypatch.setattr(C, "resolve_static", counting("static", C.resolve_static))
    monkeypatch.setattr(C.validation, "validate", counting("validate", C.validation.validate))
    monkeypatch.setattr(C, "validate", C.validation.validate)
    cfg = toy_cfg(tmp_path / "run", "run.total_timesteps=128", "ppo.num_envs=auto",
                  "ppo.minibatch_size=16", "checkpoint.enabled=false", "logging.tensorboard=false")
    result = train(cfg, env=CountdownEnv(num_agents=2), experiment="toy")
    # make_train validates what the loop resolved (cheaply) and resolves nothing itself.
    assert calls == {"num_envs": 1, "static": 1, "validate": 2}, calls
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["ppo"]
    assert isinstance(saved["num_envs"], int) and result.updates >= 1
    assert saved["num_minibatches"] == saved["num_envs"] * 2 * saved["num_steps"] // 16


def test_resume_says_when_a_schedule_changes_slope(tmp_path, capsys):
    from jaxrl_arena.loop import check_resumable

    saved = C.apply_overrides(C.get_recipe("cartpole"), ["ppo.lr_schedule=linear"])
    longer = C.replace(saved, "run.total_timesteps", 2 * saved.run.total_timesteps)
    check_resumable(C.to_dict(saved), longer, tmp_path)
    assert "learning-rate schedule now spans the new total" in capsys.readouterr().out
    check_resumable(C.to_dict(saved), saved, tmp_path)
    assert capsys.readouterr().out == ""
    with pytest.raises(C.ConfigError, match="different config"):
        check_resumable(C.to_dict(saved), C.replace(saved, "ppo.lr", 1.0), tmp_path)
