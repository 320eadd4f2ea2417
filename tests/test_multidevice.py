"""Several seeds on several devices with the default network: ``init()`` finishes.

jaxlib's CPU LAPACK kernels (jax 0.10) split a batched decomposition over XLA's intra-op
thread pool and block until the pieces are done. Vmapped over seeds, the policy's orthogonal
initialisers are one batched QR per layer; with one device program per pool thread (2 devices
on 2 cores), every pool thread waits for pieces no thread is free to run. 8 x 8 layers stay
below the kernel's split size, so the small networks of the other tests never met it. The
child process is pinned to 2 CPUs (the pool is sized from the affinity) so that bigger
machines reproduce it too; a hang is a timeout here, not a stuck suite.
"""

import os
import subprocess
import sys

import pytest
from conftest import REPO

HANG_SECONDS = 150  # the init compiles in ~15 s on 2 busy cores

INIT_TWO_SEEDS_ON_TWO_DEVICES = """
import os
os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:2])
import jax
from jaxrl_arena import config as C
from jaxrl_arena.train import make_train

cfg = C.apply_overrides(C.get_recipe("cartpole"), [  # the default 64 x 64 MLP
    "run.num_seeds=2", "ppo.num_envs=4", "ppo.num_steps=8", "run.total_timesteps=64"])
program = make_train(cfg, devices=jax.devices()[:2])
state = jax.block_until_ready(program.init())
print("initialised", len(program.mesh.devices), "devices x", len(program.runs), "runs")
"""


def test_two_seeds_on_two_devices_initialise_without_hanging():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
           "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}
    try:
        proc = subprocess.run([sys.executable, "-c", INIT_TWO_SEEDS_ON_TWO_DEVICES], env=env,
                              cwd=REPO, capture_output=True, text=True, timeout=HANG_SECONDS,
                              check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"make_train(...).init() of 2 seeds on 2 devices hung ({HANG_SECONDS} s)")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "initialised 2 devices x 2 runs" in proc.stdout
