"""Long learning checks (pytest -m slow): PPO solves CartPole-v1 within 500k env steps."""

import subprocess
import sys

import pytest

from conftest import REPO


@pytest.mark.slow
def test_cartpole_reaches_475_within_500k_steps():
    proc = subprocess.run([sys.executable, str(REPO / "experiments" / "bench_ppo.py"), "learn",
                           "--seeds", "4"], capture_output=True, text=True, timeout=1800)
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
