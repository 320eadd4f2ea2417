"""Per-tick conformance: every recorded ninja and entity field of every golden trajectory
(32 random-input runs with auto-reset, 10 human replays) within 1e-9 in float64."""

import json
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from envs.npp.golden import npp_golden_dir, simulate, x64_scope
from tools import npp_trajectory as traj_cli

REPO_ROOT = Path(__file__).resolve().parents[1]  # where `python -m tools.*` runs from

TRAJ = npp_golden_dir() / "trajectories"
FILES = sorted(p.name for p in TRAJ.glob("*.npz"))


@pytest.fixture(autouse=True)
def _x64():
    with x64_scope():
        yield


def test_all_trajectory_files_present():
    assert len(FILES) == 42


@pytest.mark.parametrize("name", FILES)
def test_trajectory_matches_every_field(name):
    z, out = traj_cli.simulate_file(str(TRAJ / name))
    first, max_err = traj_cli.compare(z, out, tol=1e-9)
    assert first is None, f"first divergence: tick {first[0]} field {first[1]} expected {first[2]} got {first[3]}"
    assert max_err <= 1e-9
    # the recorded terminal events (wins/deaths, each followed by a reset in random runs) recur
    st = out["state"]
    ours = [[int(t), "win" if st[t] == 8 else "dead"] for t in np.nonzero((st == 6) | (st == 8))[0]]
    assert ours == json.loads(bytes(z["meta_json"]).decode())["terminal_events"]


def test_specialised_level_matches():
    """A level that traces only its own entity types (no doors, no movers) is just as exact."""
    z = np.load(TRAJ / "maps__minefield__seed0.npz")
    out = simulate(z["map_bytes"].tobytes(), z["hor"], z["jump"], z["reset_after"][1:] != 0, entity_types=None)
    first, _ = traj_cli.compare(z, out, tol=1e-9)
    assert first is None, first


def test_compare_detects_a_divergence():
    z, out = traj_cli.simulate_file(str(TRAJ / FILES[0]))
    out = dict(out)
    out["vx"] = out["vx"].copy()
    out["vx"][17] += 1e-6
    first, _ = traj_cli.compare(z, out, tol=1e-9)
    assert first is not None and first[0] == 17 and first[1] == "vx"


def test_float32_mode_tracks_float64_early():
    """float32 (the training dtype) runs the same code; it drifts only slowly from float64."""
    name = "maps__simple-walk__seed0.npz"
    z, out32 = traj_cli.simulate_file(str(TRAJ / name), dtype=jnp.float32)
    assert out32["x"].dtype == np.float32
    err = np.abs(out32["x"][:200].astype(np.float64) - z["x"][:200])
    assert err.max() < 1e-2


def test_cli_subprocess_bit_exact():
    """``python -m tools.npp_trajectory`` disables XLA's FMA contraction and is bit-exact here."""
    files = [str(TRAJ / "replay__shared__20251023_153100_train_very_simple_100029.npz"),
             str(TRAJ / "maps__switch-simple__seed0.npz")]
    r = subprocess.run([sys.executable, "-m", "tools.npp_trajectory", "--tol", "0", *files], cwd=REPO_ROOT,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("max abs err 0)") == 2
