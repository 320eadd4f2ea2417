"""Checkpointing of training state, run metadata, and graceful shutdown on signals.

Layout of a checkpoint directory (Orbax ``CheckpointManager``, one sub-directory per step)::

    <directory>/<step>/state/       the state pytree (OCDBT / zarr via TensorStore)
    <directory>/<step>/metadata/    the run metadata (JSON)
    <directory>/<step>/checksums/   CRC32, dtype and shape of every state leaf (JSON)
    <directory>/_unrestorable/      checkpoints that failed to restore, moved aside
    <directory>/_diverged/          checkpoints saved after a divergence, moved aside
    <directory>/diverged.json       the run stopped for non-finite updates (update, time)

Orbax writes a step into ``<step>.orbax-checkpoint-tmp*`` and renames it to ``<step>`` only
once every file is written, so a crash or SIGKILL mid-save leaves only a tmp directory that
is ignored when listing steps and removed by the next ``Checkpointer`` on that directory
(in the background; Orbax waits for that before its first save). A save that fails (an OS or
storage error) removes its tmp directory itself and raises ``StorageError``.

Orbax does not detect silently corrupted array bytes (a flipped byte restores "fine"), hence
the checksums item: ``restore`` verifies every leaf bitwise against it.

Known-good checkpoints: metadata ``{"known_good": False}`` marks a checkpoint saved while
training was not finite. Rotation keeps the newest ``keep`` checkpoints plus the newest
known-good one, so a divergence never rotates the last good state out.

What Orbax, TensorStore and asyncio log or print while saving or restoring (a failing restore
of a large state printed thousands of lines) is captured in ``Checkpointer.library_output``
instead of reaching the console; errors come back as one-line exceptions.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import errno
import gc
import importlib.metadata
import json
import logging
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import jax
import numpy as np
import orbax.checkpoint as ocp

_STATE_ITEM = "state"
_METADATA_ITEM = "metadata"
_CHECKSUMS_ITEM = "checksums"
_UNRESTORABLE_DIR = "_unrestorable"
DIVERGED_DIR = "_diverged"
_DIVERGED_MARKER = "diverged.json"
KNOWN_GOOD_KEY = "known_good"

# Loggers of the storage stack whose records are captured during checkpoint I/O.
_LIBRARY_LOGGERS = ("absl", "asyncio", "orbax", "tensorstore", "etils")
# Markers of a full disk in errors that carry no errno (TensorStore's status strings).
_DISK_FULL_TEXT = ("RESOURCE_EXHAUSTED", "No space left on device", "ENOSPC")

# Packages whose versions are recorded with every run; absent ones are recorded as None.
_VERSIONED_PACKAGES = (
    "jax",
    "jaxlib",
    "flax",
    "optax",
    "orbax-checkpoint",
    "numpy",
    "chex",
    "gymnax",
    "tensorboardX",
    "wandb",
)


class CheckpointRestoreWarning(UserWarning):
    """The latest checkpoint(s) could not be restored and an older one was used instead."""


class NoRestorableCheckpoint(RuntimeError):
    """Checkpoints exist but none restores (corrupt, or saved with another state layout)."""


class StorageError(RuntimeError):
    """An OS or storage error while writing or reading checkpoints, as one line: what, where,
    and the errno when there is one (``disk_full`` for ENOSPC)."""

    def __init__(self, action: str, path: Path, error: BaseException) -> None:
        self.action, self.path = action, path
        self.errno, reason = storage_cause(error)
        super().__init__(f"{action} in {path} failed: {reason}")

    @property
    def disk_full(self) -> bool:
        return self.errno == errno.ENOSPC


def describe_os_error(error: OSError) -> str:
    """``[errno 28 ENOSPC] No space left on device`` (the path is said by the caller)."""
    if error.errno is None:
        return f"{type(error).__name__}: {error}"
    name = errno.errorcode.get(error.errno, "?")
    return f"[errno {error.errno} {name}] {error.strerror or os.strerror(error.errno)}"


def storage_cause(error: BaseException) -> tuple[int | None, str]:
    """``(errno, one line)`` of the OS error behind ``error`` (searched through causes and
    exception groups; TensorStore's RESOURCE_EXHAUSTED counts as ENOSPC), else ``(None, the
    error's first line)``."""
    pending, seen = [error], set()
    while pending:
        current = pending.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno is not None:
            return current.errno, describe_os_error(current)
        pending += [current.__cause__, current.__context__,
                    *getattr(current, "exceptions", ())]
    text = _one_line(error)
    if any(marker in str(error) for marker in _DISK_FULL_TEXT):
        return errno.ENOSPC, f"[errno {errno.ENOSPC} ENOSPC] {text}"
    return None, text


class Checkpointer:
    """Saves and restores ``(state, metadata)`` at integer steps, keeping the last ``keep``
    (and the newest known-good one, see the module docstring).

    ``save`` is blocking and atomic (see the module docstring). ``restore`` returns leaves of
    the same kind as the corresponding ``target`` leaf:

    * ``jax.Array`` or ``jax.ShapeDtypeStruct`` -> ``jax.Array`` placed with the target's
      sharding (the target's device for single-device arrays; default device if the
      ``ShapeDtypeStruct`` has no sharding);
    * ``np.ndarray`` -> ``np.ndarray``; numpy scalar (``np.float32(1.0)``) -> numpy scalar;
    * Python ``int``/``float``/``bool`` -> the same Python type.

    OS and storage errors raise ``StorageError`` (one line); the previous checkpoints are
    left as they were.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        keep: int = 3,
        every_updates: int = 0,
        every_seconds: float = 0.0,
    ) -> None:
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        if every_updates < 0 or every_seconds < 0:
            raise ValueError("every_updates and every_seconds must be >= 0 (0 disables)")
        self.directory = Path(directory).absolute()
        self.keep = keep
        self.every_updates = every_updates
        self.every_seconds = every_seconds
        self.library_output: collections.deque[str] = collections.deque(maxlen=1000)
        self._known_good: dict[int, bool] = {}
        options = ocp.CheckpointManagerOptions(
            # Rotation is ours (_rotate): it keeps the newest known-good step beyond ``keep``.
            max_to_keep=None,
            # Blocking saves: the caller may exit (e.g. on SIGTERM) right after save returns.
            enable_async_checkpointing=False,
            # Removes tmp directories left behind by a crash mid-save.
            cleanup_tmp_directories=True,
            create=True,
        )
        try:
            with self._library_output_captured():
                self._manager = ocp.CheckpointManager(
                    self.directory,
                    options=options,
                    item_names=(_STATE_ITEM, _METADATA_ITEM, _CHECKSUMS_ITEM),
                )
        except Exception as error:  # noqa: BLE001 - reported as one line with its errno
            raise StorageError("opening checkpoints", self.directory, error) from None
        # Time-based saving counts from construction, i.e. from the (re)start of training.
        self._last_save_time = time.monotonic()

    def should_save(self, update: int, now: float | None = None) -> bool:
        """Whether ``update`` is due for a checkpoint.

        Due every ``every_updates`` updates (update > 0), or once ``every_seconds`` have
        passed since the last save (or construction). ``now`` is a ``time.monotonic()``
        reading; defaults to the current one.
        """
        if self.every_updates > 0 and update > 0 and update % self.every_updates == 0:
            return True
        if self.every_seconds > 0:
            now = time.monotonic() if now is None else now
            return now - self._last_save_time >= self.every_seconds
        return False

    def save(self, step: int, state: Any, metadata: dict) -> None:
        """Writes ``state`` and ``metadata`` (JSON-able) as checkpoint ``step``; blocks until done.

        Saving the step that is already the latest is a no-op: a given update counter always
        corresponds to the same state (e.g. a periodic save followed by the final save).
        Saving a step below the latest raises, since the rotation would then delete the wrong
        checkpoints; resume from the latest or use a fresh directory. An OS or storage error
        raises ``StorageError`` and leaves the previous checkpoints as they were.
        """
        step = int(step)
        latest = self.latest_step()
        if latest is not None and step < latest:
            raise ValueError(
                f"cannot save step {step}: {self.directory} already holds newer step {latest}"
            )
        if step == latest:
            return
        savable_state = jax.tree.map(_as_savable_leaf, state)
        try:
            with self._library_output_captured():
                saved = self._manager.save(
                    step,
                    args=ocp.args.Composite(
                        **{
                            _STATE_ITEM: ocp.args.StandardSave(savable_state),
                            _METADATA_ITEM: ocp.args.JsonSave(metadata),
                            _CHECKSUMS_ITEM: ocp.args.JsonSave(_leaf_checksums(savable_state)),
                        }
                    ),
                )
                self._manager.wait_until_finished()
        except Exception as error:  # noqa: BLE001 - reported as one line with its errno
            self._discard_partial_save(step)
            raise StorageError(f"saving checkpoint {step}", self.directory, error) from None
        if not saved:
            raise RuntimeError(f"Orbax declined to save step {step} in {self.directory}")
        self._known_good[step] = bool(metadata.get(KNOWN_GOOD_KEY, True))
        self._last_save_time = time.monotonic()
        self._rotate()

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def is_known_good(self, step: int) -> bool:
        """Whether checkpoint ``step`` was saved while training was finite (metadata without
        the mark, e.g. from before it existed, counts as good; unreadable metadata does not)."""
        if step not in self._known_good:
            try:
                self._known_good[step] = bool(self.metadata(step).get(KNOWN_GOOD_KEY, True))
            except Exception:  # noqa: BLE001 - an unreadable checkpoint is not known to be good
                self._known_good[step] = False
        return self._known_good[step]

    def known_good_steps(self) -> list[int]:
        return [step for step in self.all_steps() if self.is_known_good(step)]

    def metadata(self, step: int) -> dict:
        """The metadata item of checkpoint ``step`` alone (no state is read)."""
        with self._library_output_captured():
            restored = self._manager.restore(
                step, args=ocp.args.Composite(**{_METADATA_ITEM: ocp.args.JsonRestore()}))
        return restored[_METADATA_ITEM]

    def restore(self, target: Any, *, known_good_only: bool = False
                ) -> tuple[Any, dict, int] | None:
        """Restores the latest restorable checkpoint (``known_good_only``: the latest
        known-good one) into the structure of ``target``.

        Returns ``(state, metadata, step)``, or None if the directory holds no such checkpoint.
        A checkpoint that fails to load or to verify against its checksums is skipped in
        favour of the previous one, with one ``CheckpointRestoreWarning`` line; skipped
        checkpoints are moved to ``<directory>/_unrestorable/`` so that training resumed from
        the older step can save its steps again. If no checkpoint restores (corrupt ones, or
        a ``target`` whose structure, shapes or dtypes differ from the saved state), raises
        ``NoRestorableCheckpoint`` listing each step's error and moves nothing.
        """
        steps = sorted(self.known_good_steps() if known_good_only else self._manager.all_steps(),
                       reverse=True)
        if not steps:
            return None
        restore_target = jax.tree.map(_as_restore_target_leaf, target)
        failures: list[tuple[int, str]] = []
        for step in steps:
            try:
                state, metadata = self._restore_step(step, restore_target)
            except Exception as error:  # noqa: BLE001 - any failure means "try an older step"
                failures.append((step, storage_cause(error)[1]))
                continue
            if failures:
                self.set_aside([failed_step for failed_step, _ in failures], _UNRESTORABLE_DIR)
                failed = ", ".join(f"step {s} ({reason})" for s, reason in failures)
                warnings.warn(
                    f"Could not restore checkpoint {failed}; fell back to step {step} in "
                    f"{self.directory} (unrestorable ones moved to {_UNRESTORABLE_DIR}/).",
                    CheckpointRestoreWarning,
                    stacklevel=2,
                )
            restored = jax.tree.map(_like_target_leaf, state, target)
            return restored, metadata, step
        details = "; ".join(f"step {s}: {reason}" for s, reason in failures)
        raise NoRestorableCheckpoint(f"No checkpoint in {self.directory} could be restored. {details}")

    def set_aside(self, steps: list[int], folder: str) -> None:
        """Moves checkpoints ``steps`` to ``<directory>/<folder>/<step>-<UTC time>``: out of the
        step list (their steps can be saved again) but kept for inspection."""
        if not steps:
            return
        aside_root = self.directory / folder
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S")
        try:
            aside_root.mkdir(exist_ok=True)
            for step in steps:
                # Orbax names step directories plainly by number (no prefix, no padding).
                (self.directory / str(step)).rename(aside_root / f"{step}-{stamp}")
                self._known_good.pop(step, None)
        except OSError as error:
            raise StorageError(f"moving checkpoints {steps} to {folder}/", self.directory,
                               error) from None
        finally:
            self._manager.reload()

    def record_divergence(self, update: int) -> None:
        """Notes that the run stopped at ``update`` for non-finite updates: the next restart
        resumes from the newest known-good checkpoint (``divergence``, ``clear_divergence``)."""
        marker = {"update": int(update),
                  "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
        try:
            (self.directory / _DIVERGED_MARKER).write_text(json.dumps(marker))
        except OSError as error:
            raise StorageError("recording the divergence", self.directory, error) from None

    def divergence(self) -> dict | None:
        """``{"update": ..., "time": ...}`` if the run last stopped for non-finite updates."""
        path = self.directory / _DIVERGED_MARKER
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return {"update": None, "time": None}

    def clear_divergence(self) -> None:
        (self.directory / _DIVERGED_MARKER).unlink(missing_ok=True)

    def close(self) -> None:
        with self._library_output_captured():
            self._manager.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _restore_step(self, step: int, restore_target: Any) -> tuple[Any, dict]:
        with self._library_output_captured():
            restored = self._manager.restore(
                step,
                args=ocp.args.Composite(
                    **{
                        _STATE_ITEM: ocp.args.StandardRestore(restore_target),
                        _METADATA_ITEM: ocp.args.JsonRestore(),
                        _CHECKSUMS_ITEM: ocp.args.JsonRestore(),
                    }
                ),
            )
        state = restored[_STATE_ITEM]
        _verify_checksums(state, restored[_CHECKSUMS_ITEM])
        return state, restored[_METADATA_ITEM]

    def _rotate(self) -> None:
        """Deletes all but the newest ``keep`` steps and the newest known-good step."""
        steps = self.all_steps()
        kept = set(steps[-self.keep:])
        good = [step for step in steps if step not in kept and self.is_known_good(step)]
        if good and not any(self.is_known_good(step) for step in kept):
            kept.add(good[-1])
        for step in steps:
            if step not in kept:
                try:
                    with self._library_output_captured():
                        self._manager.delete(step)
                except Exception as error:  # noqa: BLE001 - reported as one line with its errno
                    raise StorageError(f"removing old checkpoint {step}", self.directory,
                                       error) from None
                self._known_good.pop(step, None)

    def _discard_partial_save(self, step: int) -> None:
        # A failed save may leave its tmp directory (and, rarely, a finalized but unverified
        # step): neither may be taken for a checkpoint.
        for partial in self.directory.glob(f"{step}.orbax-checkpoint-tmp*"):
            shutil.rmtree(partial, ignore_errors=True)
        with contextlib.suppress(Exception), self._library_output_captured():
            self._manager.reload()

    @contextlib.contextmanager
    def _library_output_captured(self) -> Iterator[None]:
        """Records of the storage libraries' loggers, their Python warnings, and what they
        write to the process's stderr (TensorStore's C++ logging) go to ``library_output``."""
        captured = self.library_output
        handler = _ListHandler(captured)
        saved_loggers = []
        for name in _LIBRARY_LOGGERS:
            lib_logger = logging.getLogger(name)
            saved_loggers.append((lib_logger, lib_logger.handlers[:], lib_logger.propagate))
            lib_logger.handlers[:] = [handler]
            lib_logger.propagate = False
        with _stderr_fd_captured(captured), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                yield
            except BaseException:
                # asyncio reports exceptions of abandoned tasks when they are collected.
                gc.collect()
                raise
            finally:
                for lib_logger, handlers, propagate in saved_loggers:
                    lib_logger.handlers[:] = handlers
                    lib_logger.propagate = propagate
        captured.extend(f"warning: {w.message}" for w in caught)


class _ListHandler(logging.Handler):
    def __init__(self, sink: collections.deque) -> None:
        super().__init__()
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.sink.append(f"{record.name}: {record.getMessage()}")


@contextlib.contextmanager
def _stderr_fd_captured(sink: collections.deque) -> Iterator[None]:
    """File descriptor 2 into a temporary file for the duration (C++ libraries write there
    directly); its lines are appended to ``sink``. A no-op where fd 2 cannot be redirected."""
    with tempfile.TemporaryFile() as spool:
        try:
            sys.stderr.flush()
            saved_fd = os.dup(2)
        except (OSError, ValueError, AttributeError):
            saved_fd = None
        if saved_fd is None:
            yield
            return
        os.dup2(spool.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(OSError, ValueError, AttributeError):
                sys.stderr.flush()
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
            spool.seek(0)
            text = spool.read(1 << 20).decode("utf-8", "replace")
            sink.extend(line for line in text.splitlines() if line.strip())


def _as_savable_leaf(leaf: Any) -> Any:
    # Orbax's StandardSave rejects numpy scalars; a 0-d array holds the same bytes.
    if isinstance(leaf, np.generic):
        return np.asarray(leaf)
    return leaf


def _as_restore_target_leaf(leaf: Any) -> Any:
    if isinstance(leaf, jax.Array):
        return jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=leaf.sharding)
    if isinstance(leaf, np.generic):
        return np.asarray(leaf)
    return leaf


def _like_target_leaf(restored: Any, target: Any) -> Any:
    if isinstance(target, np.generic):
        return np.asarray(restored)[()]
    return restored


def _leaf_checksums(state: Any) -> dict[str, dict]:
    return {
        jax.tree_util.keystr(path): _checksum(leaf)
        for path, leaf in jax.tree_util.tree_leaves_with_path(state)
    }


def _checksum(leaf: Any) -> dict:
    array = np.ascontiguousarray(np.asarray(leaf))
    return {
        # reshape before view: a 0-d array cannot be viewed with a different itemsize.
        "crc32": zlib.crc32(array.reshape(-1).view(np.uint8)),
        # dtype.name, not dtype.str: extension dtypes (bfloat16, float8_*) all have str "<V?".
        "dtype": array.dtype.name,
        "shape": list(array.shape),
    }


def _verify_checksums(state: Any, expected: dict[str, dict]) -> None:
    actual = _leaf_checksums(state)
    if actual.keys() != expected.keys():
        raise ValueError(
            "restored leaves differ from the saved ones: "
            f"missing {sorted(expected.keys() - actual.keys())}, "
            f"unexpected {sorted(actual.keys() - expected.keys())}"
        )
    for key, saved in expected.items():
        restored = actual[key]
        if restored["dtype"] != saved["dtype"] or restored["shape"] != saved["shape"]:
            raise ValueError(
                f"leaf {key} was saved as {saved['dtype']}{saved['shape']} but the target "
                f"asks for {restored['dtype']}{restored['shape']}"
            )
        if restored["crc32"] != saved["crc32"]:
            raise ValueError(f"leaf {key} fails its CRC32 check (corrupted data)")


def _one_line(error: BaseException, limit: int = 200) -> str:
    # TensorStore errors embed multi-line specs; the first line carries the cause.
    lines = str(error).strip().splitlines()
    text = f"{type(error).__name__}: {lines[0] if lines else ''}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def run_metadata(config_dict: dict, *, repo_dir: str | Path | None = None) -> dict:
    """Metadata stored with every checkpoint: config, package versions, git state, UTC time.

    ``git`` describes the repository containing ``repo_dir`` (default: this package's source
    directory) as ``{"commit": short hash, "dirty": bool}``; dirty means modified tracked
    files (untracked files are ignored). None when it is not in a git repository with commits
    or git is unavailable.
    """
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for package in _VERSIONED_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "config": config_dict,
        "versions": versions,
        "git": _git_state(Path(repo_dir) if repo_dir is not None else Path(__file__).parent),
        "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def _git_state(repo_dir: Path) -> dict | None:
    git = shutil.which("git")
    if git is None:
        return None

    def run_git(*args: str) -> str | None:
        try:
            completed = subprocess.run(
                # --no-optional-locks: never take index.lock, others may be using the checkout.
                [git, "--no-optional-locks", "-C", str(repo_dir), *args],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return completed.stdout if completed.returncode == 0 else None

    commit = run_git("rev-parse", "--short", "HEAD")
    if commit is None:
        return None
    status = run_git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit.strip(), "dirty": bool(status and status.strip())}


class GracefulShutdown:
    """Context manager turning SIGTERM/SIGINT into a flag the host loop polls.

    The handlers only record the request (``requested``, ``signal_name``) so that a compiled
    chunk in flight is never interrupted; the loop checks the flag between chunks, saves a
    checkpoint and exits 0. A second SIGINT while a request is pending raises
    ``KeyboardInterrupt`` so that Ctrl-C twice still kills a stuck run. The previous handlers
    are restored on exit. Must be entered from the main thread (a Python signal rule).
    """

    _SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.requested = False
        self.signal_name: str | None = None
        self._previous_handlers: dict[int, Any] = {}

    def __enter__(self) -> Self:
        for signum in self._SIGNALS:
            self._previous_handlers[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous_handlers.items():
            # None means the previous handler was not installed from Python.
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        self._previous_handlers.clear()

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        self.signal_name = signal.Signals(signum).name
