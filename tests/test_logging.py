import io
import json
import math

import jax.numpy as jnp
import numpy as np
import pytest
from rich.console import Console

from jaxrl_arena.logging import (
    Progress,
    RunLogger,
    print_banner,
    read_metrics,
    read_tensorboard_scalars,
)

METRIC_NAMES = ("overview/reward", "loss/policy_loss", "train/learning_rate")


def metrics_at(update: int) -> dict:
    return {
        "overview/reward": np.float32(update * 1.5),
        "loss/policy_loss": jnp.float32(0.1 / update),
        "train/learning_rate": 3e-4 * (1 - update / 10),
        "train/episodes": np.int64(update * 4),
    }


def test_metrics_jsonl_and_tensorboard_hold_the_logged_values(tmp_path):
    with RunLogger(tmp_path, resume_step=None) as logger:
        for update in (1, 2, 3):
            logger.log(update * 1000, metrics_at(update), update=update)
        logger.log(4000, {"overview/reward": float("nan"), "loss/policy_loss": np.inf}, update=4)

    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert all(json.loads(line, parse_constant=pytest.fail) for line in lines)  # strict JSON
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records] == [1000, 2000, 3000, 4000]
    assert [r["update"] for r in records] == [1, 2, 3, 4]
    wall_times = [r["wall_time"] for r in records]
    assert wall_times == sorted(wall_times) and wall_times[0] >= 0
    for record, update in zip(records, (1, 2, 3)):
        expected = metrics_at(update)
        assert record["overview/reward"] == float(expected["overview/reward"])
        assert record["loss/policy_loss"] == float(expected["loss/policy_loss"])
        assert record["train/learning_rate"] == expected["train/learning_rate"]
        assert record["train/episodes"] == update * 4 and isinstance(record["train/episodes"], int)
    assert records[3]["overview/reward"] is None and records[3]["loss/policy_loss"] is None

    scalars = read_tensorboard_scalars(tmp_path / "tb")
    for name in METRIC_NAMES:
        steps, values = zip(*scalars[name])
        assert steps == (1000, 2000, 3000), name  # non-finite values at 4000 are skipped
        expected = [float(metrics_at(update)[name]) for update in (1, 2, 3)]
        np.testing.assert_allclose(values, expected, rtol=1e-6, err_msg=name)


def test_append_after_crash_cuts_the_torn_line(tmp_path):
    with RunLogger(tmp_path, tensorboard=False) as logger:
        logger.log(100, {"overview/reward": 1.0})
    with (tmp_path / "metrics.jsonl").open("a") as handle:
        handle.write('{"step": 200, "overview/rew')
    with RunLogger(tmp_path, tensorboard=False) as logger:
        logger.log(100, {"overview/reward": 1.5})
    assert [r["overview/reward"] for r in read_metrics(tmp_path)] == [1.0, 1.5]


def test_resume_drops_metrics_logged_after_the_checkpoint(tmp_path):
    with RunLogger(tmp_path) as logger:
        for update in range(1, 6):
            logger.log(update * 100, {"overview/reward": float(update)}, update=update)
    # The run died mid-write of a line after its checkpoint at step 300.
    with (tmp_path / "metrics.jsonl").open("a") as handle:
        handle.write('{"step": 600, "overview/rew')

    with RunLogger(tmp_path, resume_step=300) as logger:
        assert [r["step"] for r in read_metrics(tmp_path)] == [100, 200, 300]
        resumed_wall_time_floor = read_metrics(tmp_path)[-1]["wall_time"]
        for update in range(4, 7):
            logger.log(update * 100, {"overview/reward": update * 10.0}, update=update)

    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records] == [100, 200, 300, 400, 500, 600]
    assert [r["overview/reward"] for r in records] == [1.0, 2.0, 3.0, 40.0, 50.0, 60.0]
    assert all(r["wall_time"] >= resumed_wall_time_floor for r in records[3:])

    series = read_tensorboard_scalars(tmp_path / "tb")["overview/reward"]
    assert series == [(100, 1.0), (200, 2.0), (300, 3.0), (400, 40.0), (500, 50.0), (600, 60.0)]


def test_rejects_non_scalar_and_reserved_names(tmp_path):
    with RunLogger(tmp_path, tensorboard=False) as logger:
        with pytest.raises(TypeError, match="loss/value"):
            logger.log(1, {"loss/value": np.zeros(3)})
        with pytest.raises(ValueError, match="step"):
            logger.log(1, {"step": 1.0})
    assert not (tmp_path / "tb").exists()


def test_wandb_requested_without_package_warns_once(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(__import__("sys").modules, "wandb", None)  # makes `import wandb` fail
    with RunLogger(tmp_path, tensorboard=False, wandb=True, wandb_project="p") as logger:
        logger.log(1, {"overview/reward": 1.0})
    warning_lines = [line for line in capsys.readouterr().err.splitlines() if "wandb" in line]
    assert len(warning_lines) == 1
    assert read_metrics(tmp_path)[0]["overview/reward"] == 1.0


def test_progress_disabled_prints_compact_lines():
    output = io.StringIO()
    console = Console(file=output, width=60)
    with Progress(
        10_000,
        key_metrics=("overview/reward", "loss/policy_loss"),
        enabled=False,
        print_every_s=0.0,
        console=console,
    ) as progress:
        for update in range(1, 5):
            progress.update(
                update * 2500, {"overview/reward": update * 1.0, "loss/policy_loss": 0.5}
            )
    lines = output.getvalue().splitlines()
    assert len(lines) == 5  # one per update plus the final line
    assert lines[-1].startswith("training 10.00k/10.00k (100.0%)")
    assert "SPS" in lines[-1] and "reward 4" in lines[-1] and "policy_loss 0.5" in lines[-1]


def test_progress_auto_disables_off_terminal_and_throttles():
    output = io.StringIO()
    with Progress(100, console=Console(file=output), print_every_s=3600.0) as progress:
        assert not progress.enabled
        for step in range(10, 101, 10):
            progress.update(step, {"overview/reward": math.nan})
    assert len(output.getvalue().splitlines()) == 2  # the first update and the final line


def test_progress_enabled_renders_rich_bar():
    output = io.StringIO()
    console = Console(file=output, force_terminal=True, width=120)
    with Progress(100, enabled=True, console=console) as progress:
        progress.update(50, {"overview/reward": 2.0})
        progress.update(100, {"overview/reward": 3.0})
    assert "100/100" in output.getvalue()


def test_print_banner_plain_and_rich(capsys):
    rows = {"devices": "cpu:0", "num_envs": "2048", "compile time": "3.2 s"}
    print_banner(None, title="jaxrl_arena", rows=rows)
    plain = capsys.readouterr().out.splitlines()
    assert plain[0] == "== jaxrl_arena =="
    assert plain[1:] == [
        "  devices      : cpu:0",
        "  num_envs     : 2048",
        "  compile time : 3.2 s",
    ]

    output = io.StringIO()
    print_banner(
        Console(file=output, force_terminal=True, width=80), title="jaxrl_arena", rows=rows
    )
    assert "compile time" in output.getvalue() and "2048" in output.getvalue()


def test_wandb_offline_run_is_resumed_under_the_same_id(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    with RunLogger(tmp_path, tensorboard=False, wandb=True, wandb_project="test") as logger:
        logger.log(10, {"overview/reward": 1.0, "loss/value_loss": float("nan")}, update=1)
    run_id = (tmp_path / "wandb_run_id").read_text().strip()
    with RunLogger(tmp_path, tensorboard=False, wandb=True, resume_step=10) as logger:
        logger.log(20, {"overview/reward": 2.0}, update=2)
    assert (tmp_path / "wandb_run_id").read_text().strip() == run_id
    offline_runs = [p.name for p in (tmp_path / "wandb").glob("offline-run-*")]
    assert offline_runs and all(name.endswith(run_id) for name in offline_runs)
