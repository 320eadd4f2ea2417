"""Shared test setup: several fake CPU devices, the golden-data path, small jit caches."""

import os
import sys
from pathlib import Path

# Four host devices so sharding tests can compare 1 vs 4 devices. Must precede jax import.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pytest  # noqa: E402


def golden_dir() -> Path:
    """``$JAXRL_GOLDEN_DIR`` or the ``shared/golden`` folder beside the repository."""
    return Path(os.environ.get("JAXRL_GOLDEN_DIR", REPO.parent / "shared" / "golden"))


@pytest.fixture(scope="session")
def golden() -> Path:
    path = golden_dir()
    if not path.exists():
        pytest.fail(f"golden data not found at {path}; set JAXRL_GOLDEN_DIR")
    return path
