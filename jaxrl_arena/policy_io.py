"""A run's trained policy, restored from its latest checkpoint, as a sampling function.

``load_run_policy(cfg, experiment, recipe)`` finds the run dir (``loop.run_dir``), rebuilds
the run exactly as saved (its ``config.json``, resolved ``num_envs`` and ``--ab`` variants
included) to restore its state, and returns the first run's (seed's) policy as
``act(key, obs[A, ...], carry) -> (int32[A], carry)`` with its initial recurrent carry
(``()`` for feed-forward policies). Used by the experiments' ``--render-episode``.
"""

from __future__ import annotations

import dataclasses
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

    from jaxrl_arena.checkpoint import Checkpointer
    from jaxrl_arena.loop import run_dir
    from jaxrl_arena.policy_artifact import restore_run_params

    directory = run_dir(cfg, experiment, recipe)
    if not (directory / "checkpoints").is_dir() or not (directory / "config.json").exists():
        return None
    with Checkpointer(directory / "checkpoints") as checkpoints:
        if checkpoints.latest_step() is None:
            return None
    run_cfg, program, params, step = restore_run_params(directory)
    if run_cfg.env.name != cfg.env.name:
        raise ConfigError(f"{directory} holds a run of env {run_cfg.env.name!r}, not "
                          f"{cfg.env.name!r}; point run.dir at a run of {cfg.env.name!r}")
    policy = program.policy
    A = program.env.num_agents

    def act(key, obs, carry):
        carry, logits, _ = policy.apply(params, obs, carry, jnp.zeros(A, bool))
        return jax.random.categorical(key, logits).astype(jnp.int32), carry

    return RunPolicy(run_cfg, act, policy.initial_carry(A), program.env, directory, step)
