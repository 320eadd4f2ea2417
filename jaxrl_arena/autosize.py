"""A config resolved against its env and devices, chiefly ``ppo.num_envs=auto`` sizing.

``ppo.num_envs=auto`` is the largest power of two whose compiled chunk fits in memory.

XLA's memory analysis of the compiled train chunk gives its bytes (arguments + outputs +
temporaries − donated aliases). Bytes grow linearly with the env count: one trial compile at
1024 envs per device, less the parameters and optimizer state (known from shapes), gives the
bytes per env, and the largest power of two under ``ppo.auto_memory_fraction`` of device memory
is chosen (the fraction leaves the margin for the estimate). The choice is remembered per device
kind and config beside the compilation cache. On CPU, where more envs mostly cost time rather
than memory, the choice is capped at 1024 agent rows (envs × agents) per device, no compile.
Everywhere the count is also capped so that the run lasts at least ``AUTO_MIN_UPDATES`` updates
(a short run on a large GPU must still learn, not spend its budget in one giant batch); when
that cap is below the trial size, no trial is compiled.

:func:`resolve` is the one place a run's config is resolved (num_envs, then the keys
``jaxrl_arena.config.resolve_static`` decides) and validated; ``make_train`` only validates
its result.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import jax

from jaxrl_arena import config as config_lib
from jaxrl_arena.config import Config
from jaxrl_arena.rollout import tree_bytes

CPU_MAX_AGENT_ROWS_PER_DEVICE = 1024
AUTO_MIN_UPDATES = 10


def _power_of_two_at_most(n: int) -> int:
    p = 1
    while p * 2 <= n:
        p *= 2
    return p


def _whole_minibatches(n: int, cfg: Config, num_agents: int) -> int:
    """``n`` doubled until the batch splits into whole ``ppo.minibatch_size`` minibatches."""
    mb = cfg.ppo.minibatch_size
    for _ in range(32):
        if mb <= 0 or (n * cfg.ppo.num_steps * num_agents) % mb == 0:
            return n
        n *= 2
    return n   # no power of two fits: validation reports the batch


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
    stats = program.chunk_for(program.chunk_len).lower(state).compile().memory_analysis()
    return int(stats.argument_size_in_bytes + stats.output_size_in_bytes
               + stats.temp_size_in_bytes - stats.alias_size_in_bytes)


TRIAL_ENVS_PER_DEVICE = 1024  # the trial program's size: large enough that per-env bytes dominate


def _decision_key(cfg: Config, devices, ab) -> str:
    """What the choice depends on: the device kind and count and the config (seed, run naming
    and the count itself aside)."""
    d = config_lib.to_dict(cfg)
    d["run"] = {k: v for k, v in d["run"].items() if k in ("num_seeds",)}
    d["ppo"] = {k: v for k, v in d["ppo"].items() if k != "num_envs"}
    d["logging"] = d["checkpoint"] = None
    blob = json.dumps([devices[0].device_kind, len(devices), d, ab or []], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def resolve_num_envs(cfg: Config, env, devices, ab=None,
                     cache_file: Path | None = None) -> tuple[Config, str]:
    """Returns the config with ``ppo.num_envs`` resolved and a one-line report ('' if fixed).

    One trial compile at most: the trial's compiled bytes minus the parameters and optimizer
    state give the bytes per env. The choice is remembered in ``cache_file`` (per device kind,
    device count and config), so reruns and resumes compile no trial."""
    if cfg.ppo.num_envs != "auto":
        return cfg, ""
    d = len(devices)
    per_device_cap = cfg.ppo.auto_max_envs // d
    steps_per_env = cfg.ppo.num_steps * env.num_agents
    run_cap = max(1, cfg.run.total_timesteps // (AUTO_MIN_UPDATES * steps_per_env) // d)
    base = d if cfg.ppo.minibatch_size > 0 else d * max(1, cfg.ppo.num_minibatches)
    if run_cap < min(per_device_cap, TRIAL_ENVS_PER_DEVICE):
        n = _whole_minibatches(max(base, _power_of_two_at_most(run_cap) * d), cfg, env.num_agents)
        report = (f"auto: {n} envs (capped so that run.total_timesteps="
                  f"{cfg.run.total_timesteps:,} gives at least {AUTO_MIN_UPDATES} updates"
                  f"{'' if n <= run_cap * d else ', or the fewest whole minibatches allow'})")
        print(f"ppo.num_envs=auto -> {n}: {report[6:]}")
        return dataclasses.replace(cfg, ppo=dataclasses.replace(cfg.ppo, num_envs=n)), report
    budget = None
    mem = device_memory_bytes(devices[0])
    if mem is not None:
        budget = cfg.ppo.auto_memory_fraction * mem
    if devices[0].platform == "cpu":
        per_device_cap = min(per_device_cap, max(1, CPU_MAX_AGENT_ROWS_PER_DEVICE // env.num_agents))
    if budget is None:
        # No device memory figure (CPU): more envs cost time, not memory; take the cap
        # without compiling trial programs.
        n = _power_of_two_at_most(per_device_cap) * d
        report = f"auto: {n} envs (CPU cap of {CPU_MAX_AGENT_ROWS_PER_DEVICE} agent rows per device)"
        print(f"ppo.num_envs=auto -> {n}: {report[6:]}")
        return dataclasses.replace(cfg, ppo=dataclasses.replace(cfg.ppo, num_envs=n)), report
    key = _decision_key(cfg, devices, ab)
    cached = {}
    if cache_file is not None and cache_file.exists():
        try:
            cached = json.loads(cache_file.read_text())
        except (OSError, ValueError):
            cached = {}
    if key in cached:
        n, report = int(cached[key]["num_envs"]), cached[key]["report"] + " (remembered)"
        n, report = _cap_to_run(n, run_cap * d, base, report, cfg, env.num_agents)
        print(f"ppo.num_envs=auto -> {n}: {report[6:]}")
        return dataclasses.replace(cfg, ppo=dataclasses.replace(cfg.ppo, num_envs=n)), report
    # The smallest env count the minibatch split allows, doubled up to the trial size.
    n1 = base
    while n1 * 2 // d <= min(per_device_cap, TRIAL_ENVS_PER_DEVICE):
        n1 *= 2
    print(f"ppo.num_envs=auto: compiling a trial program at {n1} envs to measure the device "
          "memory per env ...", flush=True)
    b1 = compiled_bytes(cfg, env, devices, n1, ab)
    fixed = _fixed_bytes(cfg, env, devices, ab)
    per_env = max(1.0, (b1 - fixed) / (n1 / d))  # bytes per env on its device
    per_device = 1
    while per_device * 2 <= per_device_cap and fixed + per_env * per_device * 2 <= budget:
        per_device *= 2
    n = max(base, per_device * d)
    where = f"budget {budget / 2**30:.1f} GiB/device"
    report = f"auto: {n} envs ({per_env / 1024:.1f} KiB per env, {where})"
    print(f"ppo.num_envs=auto -> {n}: {per_env / 1024:.1f} KiB per env measured from a trial "
          f"compile at {n1} envs, fixed {fixed / 2**20:.1f} MiB, {where}")
    if cache_file is not None:   # the memory decision; the run-length cap applies on top
        cached[key] = {"num_envs": n, "report": report}
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            cache_file.write_text(json.dumps(cached, indent=1))
        except OSError:
            pass   # remembering is an optimisation only
    n, report = _cap_to_run(n, run_cap * d, base, report, cfg, env.num_agents)
    return dataclasses.replace(cfg, ppo=dataclasses.replace(cfg.ppo, num_envs=n)), report


def resolve(cfg: Config, env, devices, ab=None, cache_file: Path | None = None
            ) -> tuple[Config, str]:
    """``cfg`` resolved for ``env`` on ``devices`` and validated, and the one-line report of
    ``ppo.num_envs`` ('' when it was fixed). The reset strategy is decided first, so the trial
    programs of num_envs=auto run the strategy the run will."""
    devices = list(devices)
    cfg = config_lib.resolve_reset_strategy(cfg, env.cheap_reset)
    cfg, report = resolve_num_envs(cfg, env, devices, ab=ab, cache_file=cache_file)
    cfg = config_lib.resolve_static(cfg, num_agents=env.num_agents, cheap_reset=env.cheap_reset,
                                    num_devices=len(devices))
    return cfg, report


def _cap_to_run(n: int, run_cap: int, base: int, report: str, cfg: Config,
                num_agents: int) -> tuple[int, str]:
    """At most ``run_cap`` envs (a power of two, not below ``base``, whole minibatches):
    ``AUTO_MIN_UPDATES``."""
    capped = _whole_minibatches(max(base, _power_of_two_at_most(run_cap)), cfg, num_agents)
    if capped >= n:
        return n, report
    return capped, (f"auto: {capped} envs (memory allows {n}; capped so that the run has at "
                    f"least {AUTO_MIN_UPDATES} updates)")


def _fixed_bytes(cfg: Config, env, devices, ab) -> int:
    """Bytes that do not grow with the env count: parameters, Adam's two moments and the
    gradients (per run), from shapes only (no compile)."""
    from jaxrl_arena.train import make_train

    n = len(devices) * max(1, cfg.ppo.num_minibatches)
    trial = config_lib.replace(cfg, "ppo.num_envs", n)
    trial = config_lib.replace(trial, "ppo.minibatch_size", 0)
    trial = config_lib.replace(trial, "run.total_timesteps",
                               max(cfg.run.total_timesteps, n * cfg.ppo.num_steps * env.num_agents))
    program = make_train(trial, env=env, ab=ab, devices=devices)
    state = jax.eval_shape(program.init)
    return 2 * tree_bytes(state.params) + tree_bytes(state.opt_state)
