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


@pytest.fixture(scope="session")
def golden() -> Path:
    """The golden data: the repository copy (tests/data/golden) or ``$JAXRL_GOLDEN_DIR``."""
    from envs.golden_data import golden_dir

    try:
        return golden_dir()
    except FileNotFoundError as e:
        pytest.fail(str(e))


def _enable_compilation_cache() -> None:
    """Persistent XLA cache: tests build the same programs many times (one per run/resume);
    after the first compile the rest are cache hits. Set JAXRL_TEST_JAX_CACHE='' to disable."""
    import jax

    path = os.environ.get("JAXRL_TEST_JAX_CACHE", "/tmp/jaxrl_arena_test_jax_cache")
    if path:
        jax.config.update("jax_compilation_cache_dir", path)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


_enable_compilation_cache()
