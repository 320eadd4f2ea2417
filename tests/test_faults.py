"""What real machines do to runs (issue #22), one test per row of docs/RELIABILITY.md: each
fault ends in the documented exit code with one line on stderr (no traceback), and nothing
good is lost. Runs are in-process on the toy env (seconds each); the CLI's error handling is
``cli.main_guard``, called here as the entry points call it."""

import errno
import json
import logging
import os
import signal
import struct
import subprocess
import sys
import time

import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from conftest import REPO
from toy_envs import CountdownEnv, countdown_params

from envs.arena.ascii_map import MapError, from_ascii
from jaxrl_arena import cli, loop
from jaxrl_arena import config as C
from jaxrl_arena.checkpoint import Checkpointer, CheckpointRestoreWarning, storage_cause
from jaxrl_arena.config.validation import check_values
from jaxrl_arena.logging import read_metrics
from jaxrl_arena.loop import TrainingStopped, train
from jaxrl_arena.run_lock import LOCK_FILENAME, RunDirInUse

TOY = ["ppo.num_envs=8", "ppo.num_steps=4", "ppo.num_minibatches=2", "ppo.update_epochs=2",
       "policy.hidden_sizes=8,8", "run.updates_per_chunk=2", "logging.progress=false",
       "logging.tensorboard=false"]
UPDATE = 64  # agent-steps per toy update: 8 envs x 4 steps x 2 agents


def toy_cfg(run, *extra):
    return C.apply_overrides(C.Config(), TOY + [f"run.dir={run}"] + list(extra))


def run_toy(run, *extra, env=None, **kwargs):
    return train(toy_cfg(run, *extra), env=env or CountdownEnv(num_agents=2), **kwargs)


def exit_and_stderr(capfd, fn):
    """``fn`` under the entry points' error handling: (exit code, non-blank stderr lines)."""
    capfd.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        cli.main_guard(fn)
    err = capfd.readouterr().err
    return exit_info.value.code, [line for line in err.splitlines() if line.strip()]


def assert_one_line_error(lines, code, expected_code, *fragments):
    assert code == expected_code, lines
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def truncate_state_files(step_dir):
    for path in (step_dir / "state").rglob("*"):
        if path.is_file():
            with path.open("r+b") as handle:
                handle.truncate(path.stat().st_size // 2)


class NaNRewards(CountdownEnv):
    """The toy env with NaN rewards (same tasks, same state layout): every update is
    non-finite."""

    def named_tasks(self):
        return {name: params.replace(reward=jnp.float32(np.nan))
                for name, params in super().named_tasks().items()}


# ------------------------------------------------------------------- divergence (ppo.lr=1e30)
def test_huge_lr_stops_saying_no_checkpoint_is_known_good_and_rerun_refuses(tmp_path, capfd):
    run = tmp_path / "lr"
    keys = ["run.total_timesteps=1280", "checkpoint.every_updates=1", "ppo.lr=1e30",
            "ppo.max_consecutive_skips=5", "checkpoint.keep=2"]
    code, lines = exit_and_stderr(capfd, lambda: run_toy(run, *keys))
    assert_one_line_error(lines, code, 3, "5 consecutive updates had a non-finite",
                          "No known-good checkpoint", "--fresh")
    checkpoints = Checkpointer(run / "checkpoints")
    assert checkpoints.all_steps() == [2, 4] and checkpoints.known_good_steps() == []
    # The rerun does not resume into the same failure.
    code, lines = exit_and_stderr(capfd, lambda: run_toy(run, *keys))
    assert_one_line_error(lines, code, 3, "holds no known-good checkpoint", "--fresh")


def test_divergence_keeps_the_last_known_good_checkpoint_and_rerun_resumes_from_it(tmp_path,
                                                                                     capfd):
    run = tmp_path / "div"
    keys = ["checkpoint.every_updates=2", "checkpoint.keep=2", "ppo.max_consecutive_skips=5"]
    run_toy(run, "run.total_timesteps=256", *keys)   # updates 1-4, finite
    with pytest.raises(TrainingStopped, match="last known-good checkpoint is update 4"):
        run_toy(run, "run.total_timesteps=1280", *keys, env=NaNRewards(num_agents=2))
    checkpoints = Checkpointer(run / "checkpoints")
    # Saved after the divergence (6, 8), and the known-good 4 kept out of the rotation.
    assert checkpoints.all_steps() == [4, 6, 8] and checkpoints.known_good_steps() == [4]
    capfd.readouterr()
    resumed = run_toy(run, "run.total_timesteps=512", *keys)
    err = capfd.readouterr().err
    assert resumed.resumed_from == 4 and resumed.updates == 8
    assert "resuming from the last known-good checkpoint, update 4" in err
    assert "2 later checkpoint(s) moved to _diverged/" in err
    steps = [row["step"] for row in read_metrics(run / "metrics.jsonl")]
    assert steps == [UPDATE * u for u in range(1, 9)]   # the diverged rows are gone
    assert np.isfinite([row["loss/policy_loss"] for row in read_metrics(run / "metrics.jsonl")]).all()


def test_rollback_scales_the_learning_rate_and_finishes(tmp_path, capfd):
    run = tmp_path / "rollback"
    result = run_toy(run, "run.total_timesteps=640", "ppo.lr=1e30", "ppo.max_consecutive_skips=2",
                     "run.on_diverge=rollback", "run.rollback_lr_factor=1e-33",
                     "run.max_rollbacks=1", "checkpoint.every_updates=2")
    err = capfd.readouterr().err
    assert "rolled back to the start (update 0) with ppo.lr x1e-33" in err
    assert result.updates == 10
    rows = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == [UPDATE * u for u in range(1, 11)]
    assert rows[-1]["train/learning_rate"] == pytest.approx(1e-3, rel=1e-3)
    assert rows[-1]["train/consecutive_skips"] == 0
    assert Checkpointer(run / "checkpoints").known_good_steps()[-1] == 10


@pytest.mark.parametrize("override, message", [
    ("ppo.lr=nan", "ppo.lr=nan must be a finite number"),
    ("ppo.lr=inf", "ppo.lr=inf must be a finite number"),
    ("ppo.lr=-1", "ppo.lr=-1.0 must be > 0"),
    ("ppo.max_grad_norm=0", "ppo.max_grad_norm=0.0 must be > 0"),
    ("ppo.adam_b2=1", "ppo.adam_b2=1.0 must be in [0, 1)"),
])
def test_non_finite_or_non_positive_hyperparameters_are_refused(tmp_path, capfd, override,
                                                               message):
    run = tmp_path / "bad"
    code, lines = exit_and_stderr(capfd, lambda: run_toy(run, override))
    assert_one_line_error(lines, code, 2, message)
    assert not run.exists()   # refused before anything was written


# ----------------------------------------------------------------------------- one run per dir
_HOLD_LOCK = """
import sys, time
from jaxrl_arena.run_lock import RunLock
with RunLock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(300)
"""


def _lock_holder(run):
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(run)], stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_second_process_on_a_run_dir_is_refused_naming_the_holder(tmp_path, capfd):
    run = tmp_path / "contested"
    holder = _lock_holder(run)
    try:
        code, lines = exit_and_stderr(capfd, lambda: run_toy(run, "run.total_timesteps=128"))
    finally:
        holder.kill()
        holder.wait()
    assert_one_line_error(lines, code, 2, f"is in use by pid {holder.pid}", "set run.dir")
    assert sorted(p.name for p in run.iterdir()) == [LOCK_FILENAME]   # nothing else written


def test_a_stale_lock_of_a_killed_run_is_taken_over_with_a_note(tmp_path, capfd):
    run = tmp_path / "stale"
    holder = _lock_holder(run)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert json.loads((run / LOCK_FILENAME).read_text())["pid"] == holder.pid
    capfd.readouterr()
    result = run_toy(run, "run.total_timesteps=128")
    err = capfd.readouterr().err
    assert result.updates == 2
    assert f"took over the lock of {run} left by pid {holder.pid}" in err
    assert not (run / LOCK_FILENAME).exists()   # released at the end of the run


def test_the_lock_is_exclusive_within_a_process_too(tmp_path):
    from jaxrl_arena.run_lock import RunLock

    with RunLock(tmp_path), pytest.raises(RunDirInUse, match=f"pid {os.getpid()}"):
        RunLock(tmp_path).acquire()


# --------------------------------------------------------------------------------- storage
def _failing_saves(monkeypatch, failures: dict[int, list[OSError]]):
    """Orbax's save raises the listed errors for a step, one per attempt, then works."""
    real = ocp.CheckpointManager.save

    def save(self, step, *args, **kwargs):
        if failures.get(step):
            raise failures[step].pop(0)
        return real(self, step, *args, **kwargs)

    monkeypatch.setattr(ocp.CheckpointManager, "save", save)


def test_disk_full_at_the_final_save_stops_cleanly_with_metrics_flushed(tmp_path, capfd,
                                                                       monkeypatch):
    run = tmp_path / "full"
    _failing_saves(monkeypatch, {4: [OSError(errno.ENOSPC, "No space left on device")]})
    code, lines = exit_and_stderr(capfd, lambda: run_toy(run, "run.total_timesteps=256",
                                                         "checkpoint.every_updates=2"))
    assert_one_line_error(lines, code, 3, "saving checkpoint 4", "[errno 28 ENOSPC]",
                          "the disk is full", "latest checkpoint: update 2")
    assert [r["update"] for r in read_metrics(run / "metrics.jsonl")] == [1, 2, 3, 4]
    checkpoints = Checkpointer(run / "checkpoints")
    assert checkpoints.all_steps() == [2]
    assert [p.name for p in (run / "checkpoints").iterdir() if "tmp" in p.name] == []
    monkeypatch.undo()
    assert run_toy(run, "run.total_timesteps=256").resumed_from == 2


def test_a_failed_save_is_retried_once_then_skipped_and_the_run_goes_on(tmp_path, capfd,
                                                                        monkeypatch):
    run = tmp_path / "eio"
    _failing_saves(monkeypatch, {2: [OSError(errno.EIO, "I/O error")] * 2,
                                 4: [OSError(errno.EIO, "I/O error")]})
    capfd.readouterr()
    result = run_toy(run, "run.total_timesteps=384", "checkpoint.every_updates=2")
    err = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert result.updates == 6 and Checkpointer(run / "checkpoints").all_steps() == [4, 6]
    failed = "saving checkpoint {} in " + f"{run / 'checkpoints'} failed: [errno 5 EIO] I/O error"
    kept = "kept the previous checkpoints (latest: none) and continuing"
    assert err == [f"warning: {failed.format(2)}; retrying once",
                   f"warning: {failed.format(2)} again; {kept}",
                   f"warning: {failed.format(4)}; retrying once"]


def test_storage_errors_without_an_errno_are_classified():
    tensorstore_style = ValueError("RESOURCE_EXHAUSTED: Error writing local file \"/x/d/1\"\nmore")
    assert storage_cause(tensorstore_style)[0] == errno.ENOSPC
    wrapped = RuntimeError("commit failed")
    wrapped.__cause__ = PermissionError(errno.EACCES, "Permission denied")
    assert storage_cause(wrapped) == (errno.EACCES, "[errno 13 EACCES] Permission denied")
    assert storage_cause(ValueError("OUT_OF_RANGE: a\nb")) == (None, "ValueError: OUT_OF_RANGE: a")


def test_a_truncated_latest_checkpoint_falls_back_in_one_line(tmp_path, capfd):
    run = tmp_path / "trunc"
    run_toy(run, "run.total_timesteps=256", "checkpoint.every_updates=2")
    truncate_state_files(run / "checkpoints" / "4")
    capfd.readouterr()
    resumed = run_toy(run, "run.total_timesteps=384", "checkpoint.every_updates=2")
    err = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert resumed.resumed_from == 2 and resumed.updates == 6
    assert len(err) == 1 and err[0].startswith("warning: Could not restore checkpoint step 4")
    assert "fell back to step 2" in err[0]


def test_storage_library_noise_is_captured_not_printed(tmp_path, capfd, monkeypatch):
    with Checkpointer(tmp_path) as checkpoints:
        for step in (1, 2):
            checkpoints.save(step, {"w": np.full(3, step, np.float32)}, {"step": step})
    real = ocp.CheckpointManager.restore

    def noisy_restore(self, step, *args, **kwargs):
        if step == 2:
            for _ in range(500):
                logging.getLogger("absl").error("tensorstore: read failed\n  spec: {...}")
                logging.getLogger("asyncio").error("Task exception was never retrieved")
                os.write(2, b"E1203 tensorstore/driver.cc:99] OUT_OF_RANGE\n")
            raise ValueError("OUT_OF_RANGE: Error reading \"w/0\"\n  with a multi-line spec")
        return real(self, step, *args, **kwargs)

    monkeypatch.setattr(ocp.CheckpointManager, "restore", noisy_restore)
    capfd.readouterr()
    with Checkpointer(tmp_path) as checkpoints:
        with pytest.warns(CheckpointRestoreWarning, match="fell back to step 1"):
            _, metadata, step = checkpoints.restore({"w": np.zeros(3, np.float32)})
        assert (step, metadata) == (1, {"step": 1})
        assert any("OUT_OF_RANGE" in line for line in checkpoints.library_output)
    captured = capfd.readouterr()
    assert "tensorstore" not in captured.err and "Task exception" not in captured.err


def test_every_checkpoint_corrupt_is_one_line_suggesting_fresh(tmp_path, capfd):
    run = tmp_path / "corrupt"
    run_toy(run, "run.total_timesteps=256", "checkpoint.every_updates=2")
    for step_dir in (run / "checkpoints").glob("[0-9]*"):
        truncate_state_files(step_dir)
    code, lines = exit_and_stderr(capfd, lambda: run_toy(run, "run.total_timesteps=384"))
    assert_one_line_error(lines, code, 3, "No checkpoint in", "could be restored",
                          "Pass --fresh")
    assert run_toy(run, "run.total_timesteps=128", fresh=True).updates == 2


@pytest.mark.parametrize("where", ["read_only", "under_a_file"])
def test_an_unwritable_or_invalid_run_dir_is_one_line(tmp_path, capfd, where):
    if where == "read_only":
        run = "/sys/jaxrl_arena_test_run"   # read-only even for root
        expected = "[errno"
    else:
        (tmp_path / "file").write_text("")
        run, expected = tmp_path / "file" / "run", "[errno 20 ENOTDIR]"
    code, lines = exit_and_stderr(capfd, lambda: run_toy(run, "run.total_timesteps=128"))
    assert_one_line_error(lines, code, 2, f"run.dir {run} cannot be written", expected,
                          "set run.dir to a writable directory")


# ------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("override, minibatch", [("ppo.num_envs=-4", "ppo.minibatch_size=64"),
                                                 ("ppo.num_envs=0", "ppo.minibatch_size=0")])
def test_bad_sizes_are_named_as_set(tmp_path, capfd, override, minibatch):
    code, lines = exit_and_stderr(capfd, lambda: run_toy(tmp_path / "n", override, minibatch))
    value = override.split("=")[1]
    assert_one_line_error(lines, code, 2, f'ppo.num_envs={value} must be a positive int or "auto"')


def test_a_continuous_action_env_is_one_line(capfd, monkeypatch):
    from experiments import gymnax_env

    monkeypatch.setattr(sys, "argv", ["gymnax_env.py", "--env", "Pendulum-v1"])
    code, lines = exit_and_stderr(capfd, gymnax_env.main)
    assert_one_line_error(lines, code, 2, "env.name=Pendulum-v1 has a continuous action space")


@pytest.mark.parametrize("rows, message", [
    (["#####", "#@..#", "#..#", "#####"], "row 2 has 4 characters but row 0 has 5"),
    (["#####", "#.x.#", "#@..#", "#####"], "unknown map character 'x' at row 1, column 2; allowed:"),
    (["#####", "#...#", "#####"], "the map has no agent ('@')"),
    (["#####", "#@...", "#####"], "row 1, column 4 is '.', but the map's border must be walls"),
    ([], "the map is empty"),
    ([""], "the map is empty"),
    ("#####\n#@..#\n#####", "not one string"),
])
def test_malformed_arena_maps_are_refused_in_one_line(rows, message):
    with pytest.raises(MapError) as error:
        from_ascii(rows)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_the_replay_tool_reports_each_bad_input_and_checks_the_rest(tmp_path, capsys,
                                                                   monkeypatch):
    from tools import npp_replay

    short = tmp_path / "short.replay"
    short.write_bytes(b"\x01\x02")
    odd = tmp_path / "odd.replay"
    odd.write_bytes(struct.pack("<II", 200, 0) + bytes(200))
    good = tmp_path / "good.replay"
    good.write_bytes(b"")
    empty_dir = tmp_path / "none"
    empty_dir.mkdir()
    real = npp_replay.replay_outcome

    def outcome(path):   # stand-ins: an unexpected error type, and a reproducing file
        if path.name == "odd.replay":
            raise IndexError("index 160 is out of bounds")
        if path.name == "good.replay":
            return {"n_inputs": 3, "ticks": 3, "switch_tick": 2, "win_tick": 3,
                    "dead_tick": None, "repaired": False}
        return real(path)

    monkeypatch.setattr(npp_replay, "replay_outcome", outcome)
    code = npp_replay.main([str(tmp_path / "missing.replay"), str(empty_dir), str(short),
                            str(odd), str(good)])
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert out == [
        f"ERROR {tmp_path / 'missing.replay'}: no such file or folder",
        f"ERROR {empty_dir}: folder holds no .replay files",
        f"ERROR short.replay: {short}: replay file too short (2 bytes)",
        "ERROR odd.replay: IndexError: index 160 is out of bounds",
        "OK   good.replay: ticks 3/3 switch 2 win 3 dead None",
        "1/5 inputs reproduce",
    ]


# ------------------------------------------------------------------------------- signals
def test_sigterm_during_the_compile_saves_update_zero_and_says_so(tmp_path, capfd, monkeypatch):
    """In-process twin of test_loop's subprocess test (exit 0): the signal lands while the
    chunk compiles."""
    real = loop.make_train

    def make_train_signalling(*args, **kwargs):
        program = real(*args, **kwargs)
        chunk_for = program.chunk_for

        def chunk_for_after_sigterm(length, learn=True):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.1)
            return chunk_for(length, learn)

        program.chunk_for = chunk_for_after_sigterm
        return program

    monkeypatch.setattr(loop, "make_train", make_train_signalling)
    run = tmp_path / "term"
    capfd.readouterr()
    result = run_toy(run, "run.total_timesteps=1280")
    err = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert result.stopped_by_signal and result.updates == 0
    assert err == [f"received SIGTERM: saved checkpoint at update 0 in {run / 'checkpoints'}; "
                   + "rerun the same command to resume"]
    assert Checkpointer(run / "checkpoints").known_good_steps() == [0]


# -------------------------------------------------------------------------- honest success
class WinsOrRunsOn(CountdownEnv):
    """N++'s `simplest` levels in small: a win ends its episode after 3 steps; the other
    task's episodes outlast the run. ``success`` is the win flag."""

    def named_tasks(self):
        return {"win": countdown_params(3, 1.0), "run_on": countdown_params(10_000, 0.0, True)}

    def episode_stats(self, state):
        won = jnp.full((self.num_agents,), state.t == 3, jnp.float32)
        return {**super().episode_stats(state), "success": won}


class TimesOut(WinsOrRunsOn):
    def named_tasks(self):
        return {"timeout": countdown_params(5, 1.0, True)}


def test_success_counts_wins_only_and_truncations_as_failures(tmp_path):
    run_toy(tmp_path / "timeout", "run.total_timesteps=640", env=TimesOut(num_agents=2))
    rows = read_metrics(tmp_path / "timeout" / "metrics.jsonl")
    finished = [r for r in rows if r["overview/episodes"] > 0]
    assert finished and all(r["env_agent/success"] == 0.0 for r in finished)
    assert rows[-1]["overview/success_rate"] == 0.0

    run_toy(tmp_path / "wins", "run.total_timesteps=640", env=WinsOrRunsOn(num_agents=2))
    rows = read_metrics(tmp_path / "wins" / "metrics.jsonl")
    # Over finished episodes only, the rate is 1.0 whatever the policy does ...
    assert all(r["env_agent/success"] == 1.0 for r in rows if r["overview/episodes"] > 0)
    # ... over episodes started, the ones still running count as not won.
    wins = sum(r["overview/episodes"] for r in rows)
    assert rows[-1]["overview/success_rate"] == pytest.approx(wins / (wins + 8))
    assert rows[-1]["overview/success_rate"] < 0.9


def test_the_npp_closing_line_reports_wins_over_episodes_started(monkeypatch):
    from experiments import npp

    reported = {}
    monkeypatch.setattr(cli, "train_and_report",
                        lambda cfg, args, experiment, metric, label: reported.update(metric=metric))
    monkeypatch.setattr(sys, "argv", ["npp.py"])
    npp.main()
    assert reported["metric"] == "overview/success_rate"


def test_validation_reports_values_before_derived_sizes():
    cfg = C.apply_overrides(C.Config(), ["ppo.num_envs=-4", "ppo.minibatch_size=64"])
    with pytest.raises(C.ConfigError, match=r'^ppo.num_envs=-4 must be a positive int or "auto"$'):
        C.resolve_minibatches(cfg, num_agents=24)
    check_values(C.Config())  # the defaults pass
