import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_arena.checkpoint import (
    Checkpointer,
    CheckpointRestoreWarning,
    GracefulShutdown,
    run_metadata,
)

REPO_ROOT = Path(__file__).resolve().parents[1]


@flax.struct.dataclass
class EnvState:
    positions: jax.Array
    done: np.ndarray
    episode: jax.Array


def make_state(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    params = rng.standard_normal((4, 3)).astype(np.float32)
    params[0, 0] = np.nan  # bitwise comparison must also cover NaN payloads
    device = jax.devices()[0]
    return {
        "params": {"dense": {"kernel": jnp.asarray(params), "bias": jnp.zeros(3, jnp.float32)}},
        "opt_state": (jnp.asarray(rng.integers(-5, 5, 6), jnp.int32), jnp.int32(seed + 7)),
        "env": EnvState(
            positions=jax.device_put(jnp.asarray(rng.random((2, 2)), jnp.float32), device),
            done=np.array([True, False, seed % 2 == 0]),
            episode=jnp.asarray(rng.integers(0, 255, 5), jnp.uint8),
        ),
        "rng_key": jnp.array([seed, 2**32 - 1 - seed], dtype=jnp.uint32),
        "numpy_counter": np.int64(1000 + seed),
        "numpy_scalar": np.asarray(np.float32(0.5 + seed)),
        "python_update": 10 + seed,
    }


def zeros_like_state(state):
    """A restore target with the right structure and dtypes but none of the values."""

    def zero(leaf):
        if isinstance(leaf, jax.Array):
            return jax.device_put(jnp.zeros_like(leaf), leaf.sharding)
        if isinstance(leaf, np.generic):
            return leaf.dtype.type(0)
        if isinstance(leaf, np.ndarray):
            return np.zeros_like(leaf)
        return type(leaf)(0)

    return jax.tree.map(zero, state)


def assert_bitwise_equal(restored, expected):
    restored_leaves, restored_def = jax.tree_util.tree_flatten_with_path(restored)
    expected_leaves, expected_def = jax.tree_util.tree_flatten_with_path(expected)
    assert restored_def == expected_def
    for (path, got), (_, want) in zip(restored_leaves, expected_leaves):
        key = jax.tree_util.keystr(path)
        assert type(got) is type(want) or (
            isinstance(got, jax.Array) and isinstance(want, jax.Array)
        ), key
        got_array, want_array = np.asarray(got), np.asarray(want)
        assert got_array.dtype == want_array.dtype, key
        assert got_array.shape == want_array.shape, key
        assert got_array.tobytes() == want_array.tobytes(), key


def largest_file(directory: Path) -> Path:
    return max((p for p in directory.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


def test_roundtrip_is_bitwise_with_metadata(tmp_path):
    state = make_state(seed=1)
    metadata = run_metadata({"env": "cartpole", "lr": 3e-4, "layers": [64, 64]}, repo_dir=tmp_path)
    with Checkpointer(tmp_path / "ckpt") as checkpointer:
        assert checkpointer.restore(zeros_like_state(state)) is None
        assert checkpointer.latest_step() is None
        checkpointer.save(5, state, metadata)

    with Checkpointer(tmp_path / "ckpt") as checkpointer:
        restored, restored_metadata, step = checkpointer.restore(zeros_like_state(state))

    assert step == 5
    assert_bitwise_equal(restored, state)
    assert (
        restored["params"]["dense"]["kernel"].sharding
        == state["params"]["dense"]["kernel"].sharding
    )
    assert isinstance(restored["env"], EnvState)
    assert restored_metadata == json.loads(json.dumps(metadata))
    assert restored_metadata["git"] is None  # tmp_path is not a git repository
    assert restored_metadata["versions"]["jax"] == jax.__version__
    assert set(restored_metadata) == {"config", "versions", "git", "time"}


def test_restore_into_abstract_target(tmp_path):
    state = {
        "w": jnp.arange(6, dtype=jnp.float32).reshape(2, 3),
        "key": jnp.array([1, 2], jnp.uint32),
    }
    with Checkpointer(tmp_path) as checkpointer:
        checkpointer.save(1, state, {})
        restored, _, _ = checkpointer.restore(jax.eval_shape(lambda: state))
    assert_bitwise_equal(restored, state)


def test_keeps_last_k_and_ignores_repeated_step(tmp_path):
    state = make_state()
    with Checkpointer(tmp_path, keep=2) as checkpointer:
        for step in (10, 20, 30, 40):
            checkpointer.save(step, make_state(step), {"step": step})
        checkpointer.save(40, state, {"step": "ignored"})  # same step again: no-op
        assert checkpointer.all_steps() == [30, 40]
        assert checkpointer.latest_step() == 40
        with pytest.raises(ValueError, match="newer step 40"):
            checkpointer.save(35, state, {})
        restored, metadata, step = checkpointer.restore(zeros_like_state(state))
    assert (step, metadata) == (40, {"step": 40})
    assert_bitwise_equal(restored, make_state(40))


def test_should_save_by_update_count(tmp_path):
    with Checkpointer(tmp_path, every_updates=5) as checkpointer:
        due = [update for update in range(16) if checkpointer.should_save(update)]
    assert due == [5, 10, 15]


def test_should_save_by_time(tmp_path):
    with Checkpointer(tmp_path, every_seconds=60.0) as checkpointer:
        assert not checkpointer.should_save(1, now=time.monotonic() + 30)
        assert checkpointer.should_save(1, now=time.monotonic() + 61)
        checkpointer.save(1, {"x": np.zeros(1)}, {})
        assert not checkpointer.should_save(2, now=time.monotonic() + 30)
        assert checkpointer.should_save(2, now=time.monotonic() + 61)


def test_never_due_when_disabled(tmp_path):
    with Checkpointer(tmp_path) as checkpointer:
        assert not any(checkpointer.should_save(u, now=time.monotonic() + 1e6) for u in range(50))


def _truncate_largest_state_file(step_dir: Path) -> None:
    target = largest_file(step_dir / "state")
    with target.open("r+b") as handle:
        handle.truncate(target.stat().st_size // 2)


def _delete_largest_state_file(step_dir: Path) -> None:
    largest_file(step_dir / "state").unlink()


def _flip_bytes_in_largest_state_file(step_dir: Path) -> None:
    # Orbax does not notice this one; the checksums item does.
    target = largest_file(step_dir / "state")
    with target.open("r+b") as handle:
        handle.seek(target.stat().st_size // 2)
        original = handle.read(8)
        handle.seek(target.stat().st_size // 2)
        handle.write(bytes(b ^ 0xFF for b in original))


def _truncate_metadata(step_dir: Path) -> None:
    for path in (step_dir / "metadata").rglob("*"):
        if path.is_file() and path.stat().st_size > 2:
            with path.open("r+b") as handle:
                handle.truncate(2)


@pytest.mark.parametrize(
    "corrupt",
    [
        _truncate_largest_state_file,
        _delete_largest_state_file,
        _flip_bytes_in_largest_state_file,
        _truncate_metadata,
    ],
)
def test_corrupt_latest_falls_back_to_previous(tmp_path, corrupt):
    def big_state(seed):
        rng = np.random.default_rng(seed)
        return {
            "w": rng.standard_normal(50_000).astype(np.float32),
            "key": np.array([seed, 1], np.uint32),
        }

    with Checkpointer(tmp_path, keep=3) as checkpointer:
        for step in (1, 2, 3):
            checkpointer.save(step, big_state(step), {"step": step})
    corrupt(tmp_path / "3")

    with Checkpointer(tmp_path, keep=3) as checkpointer:
        with pytest.warns(CheckpointRestoreWarning) as caught:
            restored, metadata, step = checkpointer.restore(big_state(0))
        assert len(caught) == 1
        message = str(caught[0].message)
        assert "\n" not in message
        assert "step 3" in message and "fell back to step 2" in message
        assert step == 2 and metadata == {"step": 2}
        assert_bitwise_equal(restored, big_state(2))

        # The unrestorable checkpoint is set aside, so the resumed run can save step 3 again.
        assert checkpointer.all_steps() == [1, 2]
        assert [p.name.split("-")[0] for p in (tmp_path / "_unrestorable").iterdir()] == ["3"]
        checkpointer.save(3, big_state(33), {"step": 3})
        restored, _, step = checkpointer.restore(big_state(0))
    assert step == 3
    assert_bitwise_equal(restored, big_state(33))


def test_raises_and_moves_nothing_when_no_checkpoint_restores(tmp_path):
    with Checkpointer(tmp_path) as checkpointer:
        checkpointer.save(1, {"w": np.zeros(3, np.float32)}, {})
        checkpointer.save(2, {"w": np.ones(3, np.float32)}, {})
        # A target whose dtype differs from the saved one is a caller error, not corruption.
        with pytest.raises(RuntimeError, match="step 2: .*float32.*step 1"):
            checkpointer.restore({"w": np.zeros(3, np.float16)})
        assert checkpointer.all_steps() == [1, 2]


_SAVE_THEN_DIE_MID_SAVE = """
import sys
import numpy as np
from jaxrl_arena.checkpoint import Checkpointer

big = np.random.default_rng(0).random(48_000_000, dtype=np.float32)
checkpointer = Checkpointer(sys.argv[1])
checkpointer.save(1, {"w": np.arange(8, dtype=np.float32)}, {"step": 1})
print("saved step 1", flush=True)
checkpointer.save(2, {"w": big}, {"step": 2})  # the parent kills us during this save
print("saved step 2", flush=True)
"""


def test_sigkill_during_save_leaves_previous_checkpoint_restorable(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), JAX_PLATFORMS="cpu")
    child = subprocess.Popen(
        [sys.executable, "-c", _SAVE_THEN_DIE_MID_SAVE, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    try:
        assert child.stdout.readline().strip() == "saved step 1"
        deadline = time.monotonic() + 60
        while not any(p.name.startswith("2.") for p in tmp_path.iterdir()):
            assert time.monotonic() < deadline, "step 2 save never started"
            time.sleep(0.001)
        child.kill()
    finally:
        child.kill()
        child.wait()
    if (tmp_path / "2").exists():
        pytest.skip("the save finished before SIGKILL landed; nothing was interrupted")
    assert any(p.name.startswith("2.") for p in tmp_path.iterdir())  # the torn tmp dir

    with Checkpointer(tmp_path) as checkpointer:
        assert checkpointer.all_steps() == [1]
        restored, metadata, step = checkpointer.restore({"w": np.zeros(8, np.float32)})
        assert (step, metadata) == (1, {"step": 1})
        assert_bitwise_equal(restored, {"w": np.arange(8, dtype=np.float32)})
        checkpointer.save(2, {"w": np.ones(8, np.float32)}, {"step": 2})
        assert checkpointer.all_steps() == [1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1", "2"]  # torn tmp dir cleaned up


def test_graceful_shutdown_sets_flag_and_restores_handlers():
    def previous_handler(signum, frame):
        raise AssertionError("the previous handler must not run inside the context")

    original = signal.signal(signal.SIGTERM, previous_handler)
    original_int = signal.getsignal(signal.SIGINT)
    try:
        with GracefulShutdown() as shutdown:
            assert not shutdown.requested
            os.kill(os.getpid(), signal.SIGTERM)
            deadline = time.monotonic() + 5
            while not shutdown.requested and time.monotonic() < deadline:
                time.sleep(0.001)
            assert shutdown.requested
            assert shutdown.signal_name == "SIGTERM"
        assert signal.getsignal(signal.SIGTERM) is previous_handler
        assert signal.getsignal(signal.SIGINT) is original_int
    finally:
        signal.signal(signal.SIGTERM, original)


def test_second_sigint_forces_keyboard_interrupt():
    with pytest.raises(KeyboardInterrupt), GracefulShutdown() as shutdown:
        signal.raise_signal(signal.SIGINT)
        assert shutdown.requested and shutdown.signal_name == "SIGINT"
        signal.raise_signal(signal.SIGINT)
        time.sleep(1)  # the handler raises here at the latest
