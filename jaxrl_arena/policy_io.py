"""A run's trained policy, restored from its latest checkpoint, as a sampling function.

``load_run_policy(cfg, experiment, recipe)`` finds the run dir (``loop.run_dir``), rebuilds
the run exactly as saved (its ``config.json``, resolved ``num_envs`` and ``--ab`` variants
included) to restore its state, and returns the first run's (seed's) policy as
``act(key, obs[A, ...], carry) -> (int32[A], carry)`` with its initial recurrent carry
(``()`` for feed-forward policies). Used by the experiments' ``--render-episode``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jaxrl_arena.config import Config, ConfigError


@dataclasses.dataclass
class RunPolicy:
    config: Config  # the run's saved config (what the policy was trained under)
    act: Callable  # act(key, obs[A, ...], carry) -> (int32[A] sampled actions, carry)
    initial_carry: Any  # the policy's zero carry for the env's A agents
    env: Any  # the run's env (built from ``config``)
    directory: Path
    update: int  # the checkpoint's update counter

    @property
    def description(self) -> str:
        return f"policy of {self.directory} at update {self.update}"


def load_run_policy(cfg: Config, experiment: str, recipe: str) -> RunPolicy | None:
    """The latest checkpoint's policy of the run ``cfg`` names, or None when the run dir
    holds no checkpoint (or no ``config.json``)."""
    import jax
    import jax.numpy as jnp

    from jaxrl_arena import config as config_lib
    from jaxrl_arena.checkpoint import Checkpointer
    from jaxrl_arena.loop import run_dir
    from jaxrl_arena.train import make_train

    directory = run_dir(cfg, experiment, recipe)
    if not (directory / "checkpoints").is_dir() or not (directory / "config.json").exists():
        return None
    with Checkpointer(directory / "checkpoints") as checkpoints:
        if checkpoints.latest_step() is None:
            return None
        # Rebuild the run exactly as saved (resolved num_envs, A/B variants) to restore it.
        saved = json.loads((directory / "config.json").read_text())
        resolved = saved.pop("_resolved", None) or {}
        run_cfg = config_lib.from_dict(saved)  # older layouts translated (config.migrate)
        if run_cfg.env.name != cfg.env.name:
            raise ConfigError(f"{directory} holds a run of env {run_cfg.env.name!r}, not "
                              f"{cfg.env.name!r}; point run.dir at a run of {cfg.env.name!r}")
        device = jax.devices()[0]
        # The state's global shapes match the saved run's device count where per-device
        # leaves exist (the "pooled" reset pool): build the program over as many devices as
        # the run had when they are here, else over one.
        saved_devices = int(resolved.get("devices") or 1)
        devices = jax.devices()[:saved_devices] if len(jax.devices()) >= saved_devices else [device]
        program = make_train(run_cfg, ab=resolved.get("ab") or None, devices=devices)
        # Restore onto one device whatever the topology it was saved from (e.g. 8 GPUs).
        one = jax.sharding.SingleDeviceSharding(device)
        target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=one),
                              jax.eval_shape(program.init))
        state, _, step = checkpoints.restore(target)
    params = jax.tree.map(lambda x: x[0], state.params)  # the first run (seed)
    policy = program.policy
    A = program.env.num_agents

    def act(key, obs, carry):
        carry, logits, _ = policy.apply(params, obs, carry, jnp.zeros(A, bool))
        return jax.random.categorical(key, logits).astype(jnp.int32), carry

    return RunPolicy(run_cfg, act, policy.initial_carry(A), program.env, directory, int(step))
