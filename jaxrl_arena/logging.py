"""Metric logging (JSONL + TensorBoard + optional W&B), console progress and start banner.

Files written under ``run_dir``:

* ``metrics.jsonl``: one JSON object per ``RunLogger.log`` call::

      {"step": agent_steps, "wall_time": seconds, "update": n, ..., "loss/policy_loss": 0.1}

  Non-finite floats are written as ``null`` so every line is strict JSON.
* ``tb/``: TensorBoard event files (tensorboardX), one scalar series per metric name, and the
  images of ``log_gif`` (animated GIFs: the evaluation GIFs of ``eval_gifs.py``).
* ``wandb_run_id``: the W&B run id, so that a resumed run continues the same W&B run.
"""

from __future__ import annotations

import collections
import json
import math
import os
import secrets
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn
from rich.progress import Progress as RichProgress
from rich.table import Table

METRICS_FILENAME = "metrics.jsonl"
TENSORBOARD_DIRNAME = "tb"
_WANDB_RUN_ID_FILENAME = "wandb_run_id"
_RESERVED_KEYS = ("step", "wall_time")


class RunLogger:
    """Writes every ``log`` call to metrics.jsonl, TensorBoard and (optionally) W&B.

    ``resume_step``: resuming from a checkpoint taken at agent step S. Lines with step > S
    (logged after that checkpoint; they will be logged again) are dropped from metrics.jsonl
    and TensorBoard is told to purge its events past S. ``wall_time`` then continues from the
    last kept line so that time axes stay monotone. Without ``resume_step`` an existing
    metrics.jsonl is appended to.

    W&B is used only if ``wandb`` is True and the package is importable (else one warning
    line); ``WANDB_MODE`` (e.g. ``offline``) is honoured by wandb itself. ``config`` is passed
    to ``wandb.init``.
    """

    def __init__(
        self,
        run_dir: str | Path,
        *,
        tensorboard: bool = True,
        wandb: bool = False,
        wandb_project: str | None = None,
        resume_step: int | None = None,
        run_name: str | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.run_dir / METRICS_FILENAME

        wall_time_offset = 0.0
        if resume_step is not None:
            kept = _truncate_metrics_file(self.metrics_path, resume_step)
            if kept:
                wall_time_offset = float(kept[-1].get("wall_time") or 0.0)
        else:
            _drop_torn_last_line(self.metrics_path)
        self._start_time = time.monotonic() - wall_time_offset
        self._metrics_file = self.metrics_path.open("a", encoding="utf-8")

        self._tb_writer = None
        # log_gif may be called from another thread (the evaluation GIF writer).
        self._tb_lock = threading.Lock()
        if tensorboard:
            from tensorboardX import SummaryWriter

            self._tb_writer = SummaryWriter(
                logdir=str(self.run_dir / TENSORBOARD_DIRNAME),
                # purge_step drops events with global_step >= purge_step; keep step S itself.
                purge_step=None if resume_step is None else resume_step + 1,
                # Event files are named by the second they were created in; a writer created
                # in the same second would overwrite the previous file. Readers load the files
                # in name order, which the nanosecond suffix keeps chronological.
                filename_suffix=f".{time.time_ns()}",
            )

        self._wandb_run = None
        if wandb:
            self._wandb_run = _init_wandb(self.run_dir, wandb_project, run_name, config)

    def log(self, step: int, metrics: Mapping[str, Any], **extra: Any) -> None:
        """Logs ``metrics`` (name -> scalar) at agent step ``step``.

        Values may be Python, numpy or jax scalars (or size-1 arrays). ``extra`` fields (e.g.
        ``update=n``) go into the JSON line only, not into TensorBoard/W&B. Non-finite values
        are written as null to JSON and skipped in TensorBoard/W&B.
        """
        step = int(step)
        scalars = {name: _to_python_scalar(name, value) for name, value in metrics.items()}
        extras = {key: _to_json_value(value) for key, value in extra.items()}
        reserved_clashes = (scalars.keys() | extras.keys()) & set(_RESERVED_KEYS)
        if reserved_clashes or scalars.keys() & extras.keys():
            raise ValueError(
                f"names used twice or reserved: {reserved_clashes | (scalars.keys() & extras.keys())}"
            )

        record: dict[str, Any] = {
            "step": step,
            "wall_time": round(time.monotonic() - self._start_time, 3),
            **extras,
        }
        record.update({name: _finite_or_none(value) for name, value in scalars.items()})
        self._metrics_file.write(json.dumps(record, allow_nan=False) + "\n")
        # Flushed per line: after a crash the file must hold everything logged so far.
        self._metrics_file.flush()

        plottable = {name: value for name, value in scalars.items() if math.isfinite(value)}
        with self._tb_lock:
            if self._tb_writer is not None:
                for name, value in plottable.items():
                    self._tb_writer.add_scalar(name, value, global_step=step)
        if self._wandb_run is not None:
            self._wandb_run.log(plottable, step=step)

    def log_gif(self, step: int, tag: str, gif: bytes, height: int, width: int) -> None:
        """An animated GIF (its encoded bytes, ``height`` x ``width`` px) as the TensorBoard
        image ``tag`` at agent step ``step`` (the images tab plays it); metrics.jsonl holds
        scalars only. Safe to call from another thread than ``log``'s."""
        from tensorboardX.proto.summary_pb2 import Summary

        image = Summary.Image(height=int(height), width=int(width), colorspace=3,
                              encoded_image_string=bytes(gif))
        summary = Summary(value=[Summary.Value(tag=tag, image=image)])
        with self._tb_lock:
            if self._tb_writer is not None:
                self._tb_writer._get_file_writer().add_summary(summary, global_step=int(step))

    def close(self) -> None:
        self._metrics_file.close()
        with self._tb_lock:
            if self._tb_writer is not None:
                self._tb_writer.close()
                self._tb_writer = None
        if self._wandb_run is not None:
            self._wandb_run.finish()
            self._wandb_run = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _truncate_metrics_file(path: Path, resume_step: int) -> list[dict]:
    """Keeps the lines with step <= resume_step (and drops a torn last line); returns them."""
    if not path.exists():
        return []
    kept = [record for record in read_metrics(path) if record["step"] <= resume_step]
    tmp_path = path.with_name(path.name + ".tmp")
    with tmp_path.open("w", encoding="utf-8") as tmp_file:
        for record in kept:
            tmp_file.write(json.dumps(record, allow_nan=False) + "\n")
    # Atomic replace: a crash here leaves either the old or the truncated file, never half.
    os.replace(tmp_path, path)
    return kept


def _drop_torn_last_line(path: Path) -> None:
    """Cuts a last line left unfinished by a crash, so appended lines start on their own."""
    if not path.exists():
        return
    content = path.read_bytes()
    if content and not content.endswith(b"\n"):
        with path.open("r+b") as handle:
            handle.truncate(content.rfind(b"\n") + 1)


def _init_wandb(
    run_dir: Path, project: str | None, run_name: str | None, config: Mapping[str, Any] | None
) -> Any:
    try:
        import wandb
    except ImportError:
        print(
            "warning: W&B logging requested but wandb is not installed; continuing without it",
            file=sys.stderr,
        )
        return None
    id_path = run_dir / _WANDB_RUN_ID_FILENAME
    if id_path.exists():
        run_id = id_path.read_text().strip()
    else:
        # Our own id (W&B accepts any short lowercase alphanumeric one): wandb's id helper
        # has moved between releases.
        run_id = secrets.token_hex(8)
        id_path.write_text(run_id + "\n")
    return wandb.init(
        project=project,
        name=run_name,
        id=run_id,
        resume="allow",
        dir=str(run_dir),
        config=dict(config) if config is not None else None,
    )


def _to_python_scalar(name: str, value: Any) -> float | int | bool:
    array = np.asarray(value)
    if array.size != 1:
        raise TypeError(f"metric {name!r} must be a scalar, got shape {array.shape}")
    scalar = array.reshape(()).item()
    if not isinstance(scalar, (bool, int, float)):
        raise TypeError(f"metric {name!r} must be numeric, got {type(scalar).__name__}")
    return scalar


def _to_json_value(value: Any) -> Any:
    """Extras may be strings or scalars of any array library; scalars become Python numbers."""
    if isinstance(value, (str, type(None))):
        return value
    return _finite_or_none(_to_python_scalar("extra", value))


def _finite_or_none(value: float | bool) -> float | int | bool | None:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def read_metrics(path: str | Path) -> list[dict]:
    """Reads metrics.jsonl (``path`` is the file or the run directory).

    A torn last line (the process died mid-write) is ignored; a bad line elsewhere raises.
    """
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILENAME
    lines = path.read_text(encoding="utf-8").splitlines()
    records = []
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if index == len(lines) - 1:
                break
            raise
    return records


def read_tensorboard_scalars(tb_dir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """All scalar series in the event files of ``tb_dir``: tag -> [(step, value)], step order.

    Uses TensorBoard's EventAccumulator, which applies purges written on resume.
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0})
    accumulator.Reload()
    return {
        tag: [(event.step, event.value) for event in accumulator.Scalars(tag)]
        for tag in accumulator.Tags()["scalars"]
    }


def read_tensorboard_images(tb_dir: str | Path) -> dict[str, list[tuple[int, bytes, int, int]]]:
    """All images in the event files of ``tb_dir``: tag -> [(step, encoded bytes, height,
    width)], step order (purges on resume applied)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(tb_dir), size_guidance={"images": 0})
    accumulator.Reload()
    return {
        tag: [(event.step, event.encoded_image_string, event.height, event.width)
              for event in accumulator.Images(tag)]
        for tag in accumulator.Tags()["images"]
    }


class Progress:
    """Console progress: agent steps done/total, SPS, ETA and a few key metrics.

    A live rich bar when ``enabled`` (default: when the console is a terminal); otherwise one
    compact plain line every ``print_every_s`` seconds and a final one on exit. SPS is
    measured over the last ``sps_window_s`` seconds, so compile time at start-up and pauses
    fade out of it. ``key_metrics`` are metric names shown by their last path component.
    """

    def __init__(
        self,
        total_steps: int,
        *,
        key_metrics: Sequence[str] = ("overview/reward",),
        enabled: bool | None = None,
        print_every_s: float = 30.0,
        sps_window_s: float = 30.0,
        console: Console | None = None,
        description: str = "training",
    ) -> None:
        self.total_steps = int(total_steps)
        self.key_metrics = tuple(key_metrics)
        self.console = console if console is not None else Console()
        self.enabled = self.console.is_terminal if enabled is None else enabled
        self.print_every_s = print_every_s
        self.sps_window_s = sps_window_s
        self.description = description
        self._samples: collections.deque[tuple[float, int]] = collections.deque()
        self._latest_metrics: dict[str, float] = {}
        self._last_print_time: float | None = None
        self._rich_progress: RichProgress | None = None
        self._task_id = None

    def __enter__(self) -> Self:
        if self.enabled:
            self._rich_progress = RichProgress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"),
                console=self.console,
            )
            self._rich_progress.start()
            self._task_id = self._rich_progress.add_task(
                self.description, total=self.total_steps, status=""
            )
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._rich_progress is not None:
            self._rich_progress.stop()
            self._rich_progress = None
        elif self._samples:
            self._print_line()

    def update(self, step: int, metrics: Mapping[str, Any] | None = None) -> None:
        now = time.monotonic()
        step = int(step)
        self._samples.append((now, step))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.sps_window_s:
            self._samples.popleft()
        for name in self.key_metrics:
            if metrics is not None and name in metrics:
                self._latest_metrics[name] = float(np.asarray(metrics[name]))

        if self._rich_progress is not None:
            self._rich_progress.update(self._task_id, completed=step, status=self._status())
        elif self._last_print_time is None or now - self._last_print_time >= self.print_every_s:
            self._print_line()

    def steps_per_second(self) -> float | None:
        if len(self._samples) < 2:
            return None
        (start_time, start_step), (end_time, end_step) = self._samples[0], self._samples[-1]
        if end_time <= start_time:
            return None
        return (end_step - start_step) / (end_time - start_time)

    def _status(self) -> str:
        sps = self.steps_per_second()
        step = self._samples[-1][1]
        parts = [f"{human_number(sps)} SPS" if sps is not None else "-- SPS"]
        if sps:
            parts.append(f"ETA {_duration(max(self.total_steps - step, 0) / sps)}")
        for name, value in self._latest_metrics.items():
            parts.append(f"{name.rsplit('/', 1)[-1]} {value:.4g}")
        return " | ".join(parts)

    def _print_line(self) -> None:
        self._last_print_time = time.monotonic()
        step = self._samples[-1][1]
        percent = 100.0 * step / self.total_steps if self.total_steps else 100.0
        line = (
            f"{self.description} {human_number(step)}/{human_number(self.total_steps)} ({percent:.1f}%)"
            f" | {self._status()}"
        )
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)


def human_number(value: float) -> str:
    """``2048`` -> ``2.05k``: the progress line's counts (and the evaluation GIFs' captions)."""
    for threshold, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= threshold:
            return f"{value / threshold:.2f}{suffix}"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, remainder = divmod(seconds, 3600)
    minutes, seconds = divmod(remainder, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


def print_banner(console: Console | None, *, title: str, rows: Mapping[str, Any]) -> None:
    """Prints a start banner: a rich table on a terminal, aligned plain text otherwise (log
    files). ``console=None`` uses a default rich Console on stdout."""
    console = console if console is not None else Console()
    if console.is_terminal:
        table = Table(title=title, show_header=False, title_justify="left")
        table.add_column(style="bold cyan")
        table.add_column()
        for key, value in rows.items():
            table.add_row(str(key), str(value))
        console.print(table)
        return
    width = max((len(str(key)) for key in rows), default=0)
    lines = [f"== {title} =="] + [f"  {key!s:<{width}} : {value}" for key, value in rows.items()]
    console.print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)
