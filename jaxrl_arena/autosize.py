"""``ppo.num_envs=auto``: the largest power of two whose compiled chunk fits in memory.

XLA's memory analysis of the compiled train chunk gives its bytes (arguments + outputs +
temporaries − donated aliases). Bytes grow linearly with the env count, so two small compiles
give the bytes per env and the fixed part; the largest power of two under
``ppo.auto_memory_fraction`` of device memory is then compiled once more to confirm (halved
until it fits). On CPU, where more envs mostly cost time rather than memory, the choice is
capped at 1024 agent rows (envs × agents) per device.
"""

from __future__ import annotations

import dataclasses

import jax

from jaxrl_arena import config as config_lib
from jaxrl_arena.config import Config

CPU_MAX_AGENT_ROWS_PER_DEVICE = 1024


def device_memory_bytes(device) -> int | None:
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"])
    return None


def compiled_bytes(cfg: Config, env, devices, num_envs: int, ab=None) -> int:
    """Bytes per device of the compiled chunk at ``num_envs``."""
    from jaxrl_arena.train import make_train

    batch = num_envs * cfg.ppo.num_steps * env.num_agents
    trial = config_lib.replace(cfg, "ppo.num_envs", num_envs)
    if cfg.ppo.minibatch_size > batch:  # a trial smaller than one minibatch: use num_minibatches
        trial = config_lib.replace(trial, "ppo.minibatch_size", 0)
    trial = config_lib.replace(trial, "run.total_timesteps", max(cfg.run.total_timesteps, batch))
    program = make_train(trial, env=env, ab=ab, devices=devices)
    state = jax.eval_shape(program.init)
    length = min(trial.run.updates_per_chunk, program.num_updates)
    stats = program.chunk_for(length).lower(state).compile().memory_analysis()
    return int(stats.argument_size_in_bytes + stats.output_size_in_bytes
               + stats.temp_size_in_bytes - stats.alias_size_in_bytes)


def resolve_num_envs(cfg: Config, env, devices, ab=None) -> tuple[Config, str]:
    """Returns the config with ``ppo.num_envs`` resolved and a one-line report ('' if fixed)."""
    if cfg.ppo.num_envs != "auto":
        return cfg, ""
    d = len(devices)
    per_device_cap = cfg.ppo.auto_max_envs // d
    budget = None
    mem = device_memory_bytes(devices[0])
    if mem is not None:
        budget = cfg.ppo.auto_memory_fraction * mem
    if devices[0].platform == "cpu":
        per_device_cap = min(per_device_cap, max(1, CPU_MAX_AGENT_ROWS_PER_DEVICE // env.num_agents))
    if budget is None:
        # No device memory figure (CPU): more envs cost time, not memory; take the cap
        # without compiling trial programs.
        n = 1
        while n * 2 <= per_device_cap:
            n *= 2
        n *= d
        report = f"auto: {n} envs (CPU cap of {CPU_MAX_AGENT_ROWS_PER_DEVICE} agent rows per device)"
        print(f"ppo.num_envs=auto -> {n}: {report[6:]}")
        return dataclasses.replace(cfg, ppo=dataclasses.replace(cfg.ppo, num_envs=n)), report
    # The smallest env count the minibatch split allows.
    base = d if cfg.ppo.minibatch_size > 0 else d * max(1, cfg.ppo.num_minibatches)
    n1 = base
    b1 = compiled_bytes(cfg, env, devices, n1, ab)
    b2 = compiled_bytes(cfg, env, devices, 2 * n1, ab)
    per_env = max(1.0, (b2 - b1) / n1 * d)  # bytes per env on its device
    fixed = b1 - per_env * n1 / d
    per_device = 1
    while per_device * 2 <= per_device_cap and (
        budget is None or fixed + per_env * per_device * 2 <= budget
    ):
        per_device *= 2
    n = max(base, per_device * d)
    if budget is not None:
        while n > base and compiled_bytes(cfg, env, devices, n, ab) > budget:
            n //= 2
    where = f"budget {budget / 2**30:.1f} GiB/device" if budget else "CPU cap"
    report = f"auto: {n} envs ({per_env / 1024:.1f} KiB per env, {where})"
    print(f"ppo.num_envs=auto -> {n}: {per_env / 1024:.1f} KiB per env measured from the "
          f"compiled chunk, fixed {fixed / 2**20:.1f} MiB, {where}")
    return dataclasses.replace(cfg, ppo=dataclasses.replace(cfg.ppo, num_envs=n)), report
