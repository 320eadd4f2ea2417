"""Checkpointing of training state, run metadata, and graceful shutdown on signals.

Layout of a checkpoint directory (Orbax ``CheckpointManager``, one sub-directory per step)::

    <directory>/<step>/state/       the state pytree (OCDBT / zarr via TensorStore)
    <directory>/<step>/metadata/    the run metadata (JSON)
    <directory>/<step>/checksums/   CRC32, dtype and shape of every state leaf (JSON)
    <directory>/_unrestorable/      checkpoints that failed to restore, moved aside

Orbax writes a step into ``<step>.orbax-checkpoint-tmp*`` and renames it to ``<step>`` only
once every file is written, so a crash or SIGKILL mid-save leaves only a tmp directory that
is ignored when listing steps and removed by the next ``Checkpointer`` on that directory
(in the background; Orbax waits for that before its first save).

Orbax does not detect silently corrupted array bytes (a flipped byte restores "fine"), hence
the checksums item: ``restore`` verifies every leaf bitwise against it.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import platform
import shutil
import signal
import subprocess
import time
import warnings
import zlib
from pathlib import Path
from typing import Any, Self

import jax
import numpy as np
import orbax.checkpoint as ocp

_STATE_ITEM = "state"
_METADATA_ITEM = "metadata"
_CHECKSUMS_ITEM = "checksums"
_UNRESTORABLE_DIR = "_unrestorable"

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


class Checkpointer:
    """Saves and restores ``(state, metadata)`` at integer steps, keeping the last ``keep``.

    ``save`` is blocking and atomic (see the module docstring). ``restore`` returns leaves of
    the same kind as the corresponding ``target`` leaf:

    * ``jax.Array`` or ``jax.ShapeDtypeStruct`` -> ``jax.Array`` placed with the target's
      sharding (the target's device for single-device arrays; default device if the
      ``ShapeDtypeStruct`` has no sharding);
    * ``np.ndarray`` -> ``np.ndarray``; numpy scalar (``np.float32(1.0)``) -> numpy scalar;
    * Python ``int``/``float``/``bool`` -> the same Python type.
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
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep,
            # Blocking saves: the caller may exit (e.g. on SIGTERM) right after save returns.
            enable_async_checkpointing=False,
            # Removes tmp directories left behind by a crash mid-save.
            cleanup_tmp_directories=True,
            create=True,
        )
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=options,
            item_names=(_STATE_ITEM, _METADATA_ITEM, _CHECKSUMS_ITEM),
        )
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
        Saving a step below the latest raises, since the keep-last-K policy would then delete
        the wrong checkpoints; resume from the latest or use a fresh directory.
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
        if not saved:
            raise RuntimeError(f"Orbax declined to save step {step} in {self.directory}")
        self._last_save_time = time.monotonic()

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def restore(self, target: Any) -> tuple[Any, dict, int] | None:
        """Restores the latest restorable checkpoint into the structure of ``target``.

        Returns ``(state, metadata, step)``, or None if the directory holds no checkpoint.
        A checkpoint that fails to load or to verify against its checksums is skipped in
        favour of the previous one, with one ``CheckpointRestoreWarning`` line; skipped
        checkpoints are moved to ``<directory>/_unrestorable/`` so that training resumed from
        the older step can save its steps again. If no checkpoint restores (typically a
        ``target`` whose structure, shapes or dtypes differ from the saved state), raises
        ``RuntimeError`` listing each step's error and moves nothing.
        """
        steps = sorted(self._manager.all_steps(), reverse=True)
        if not steps:
            return None
        restore_target = jax.tree.map(_as_restore_target_leaf, target)
        failures: list[tuple[int, str]] = []
        for step in steps:
            try:
                state, metadata = self._restore_step(step, restore_target)
            except Exception as error:  # noqa: BLE001 - any failure means "try an older step"
                failures.append((step, _one_line(error)))
                continue
            if failures:
                self._set_aside_unrestorable([failed_step for failed_step, _ in failures])
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
        raise RuntimeError(f"No checkpoint in {self.directory} could be restored. {details}")

    def close(self) -> None:
        self._manager.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _restore_step(self, step: int, restore_target: Any) -> tuple[Any, dict]:
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

    def _set_aside_unrestorable(self, steps: list[int]) -> None:
        aside_root = self.directory / _UNRESTORABLE_DIR
        aside_root.mkdir(exist_ok=True)
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S")
        for step in steps:
            # Orbax names step directories plainly by number (no prefix, no padding).
            (self.directory / str(step)).rename(aside_root / f"{step}-{stamp}")
        self._manager.reload()


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
