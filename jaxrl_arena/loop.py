"""The host loop: compile, call chunks, log, checkpoint, resume. No training math lives here."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from envs.base import MultiAgentEnv
from jaxrl_arena import autosize
from jaxrl_arena import config as config_lib
from jaxrl_arena.checkpoint import Checkpointer, GracefulShutdown, run_metadata
from jaxrl_arena.config import Config, ConfigError
from jaxrl_arena.evaluation import Evaluator, make_evaluator
from jaxrl_arena.logging import Progress, RunLogger, print_banner
from jaxrl_arena.networks import count_params
from jaxrl_arena.train import TrainProgram, make_env, make_train

# Keys that may change between a run and its resumption without changing what is computed.
RESUMABLE_CHANGES = ("run.total_timesteps", "run.updates_per_chunk", "run.name", "run.dir",
                     "run.compile_cache", "run.init_from", "run.init_from_allow")
RESUMABLE_SECTIONS = ("logging.", "checkpoint.", "eval.")

# Metrics that are means over finished episodes: absent (not zero) when none finished.
EPISODE_METRIC_PREFIXES = ("overview/reward", "overview/episode_length", "env_agent/",
                           "task_reward/", "loss/explained_variance")


class TrainingStopped(RuntimeError):
    """The run cannot continue (e.g. too many non-finite updates in a row)."""


@dataclasses.dataclass
class RunResult:
    run_dir: Path
    updates: int
    agent_steps: int
    last_metrics: dict[str, float]
    stopped_by_signal: bool = False
    resumed_from: int | None = None
    compile_seconds: float = 0.0
    state: Any = None


def run_name(cfg: Config, experiment: str, recipe: str) -> str:
    if cfg.run.name != "auto":
        return cfg.run.name
    return f"{experiment}_{recipe}_{cfg.env.name}_seed{cfg.run.seed}".replace("/", "-")


def run_dir(cfg: Config, experiment: str, recipe: str) -> Path:
    return Path("runs") / run_name(cfg, experiment, recipe) if cfg.run.dir == "auto" else Path(cfg.run.dir)


def enable_compilation_cache(cfg: Config, directory: Path) -> str:
    """JAX's persistent compilation cache (``run.compile_cache``; "auto": the cache this process
    already has (``JAX_COMPILATION_CACHE_DIR``), else ``.jax_cache`` beside the run dirs; "off":
    none): a rerun or resume of the same config skips the compile."""
    setting = cfg.run.compile_cache
    if setting == "off":
        jax.config.update("jax_compilation_cache_dir", None)
        return ""
    if setting == "auto" and jax.config.jax_compilation_cache_dir:
        return str(jax.config.jax_compilation_cache_dir)
    path = directory.resolve().parent / ".jax_cache" if setting == "auto" else Path(setting)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    return str(path)


def check_resumable(saved: dict[str, Any], cfg: Config, directory: Path) -> None:
    """Refuse (one line) to resume a run saved with a config that computes something else;
    ``saved`` is read through ``config.migrate``, so runs saved before a key moved resume."""
    saved_cfg = config_lib.from_dict(saved)
    changed = {
        k: v for k, v in config_lib.diff(saved_cfg, cfg).items()
        if k not in RESUMABLE_CHANGES and not k.startswith(RESUMABLE_SECTIONS)
    }
    if changed:
        first = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in list(changed.items())[:3])
        raise ConfigError(
            f"{directory} holds a run with a different config ({first}); pass --fresh to start "
            "over or set run.dir to a new directory"
        )
    before, after = saved_cfg.run.total_timesteps, cfg.run.total_timesteps
    schedules = [name for name, kind in (("learning-rate", cfg.ppo.lr_schedule),
                                         ("entropy", cfg.ppo.ent_schedule)) if kind != "constant"]
    if before != after and schedules:
        print(f"run.total_timesteps {before:,} -> {after:,} on resume: the {' and '.join(schedules)} "
              f"schedule now spans the new total, so its slope changes from this update on",
              flush=True)


def host_metrics(program: TrainProgram, metrics: dict[str, np.ndarray], k: int
                 ) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Update ``k`` of a chunk's ``[R, K, ...]`` metrics -> aggregated and per-run scalars."""
    task_names = program.curriculum.task_names
    per_run: list[dict[str, float]] = [{} for _ in program.runs]
    for name, values in metrics.items():
        values = np.asarray(values)[:, k]
        for r in range(len(program.runs)):
            v = values[r]
            if v.ndim == 1:  # per-task vector
                prefix, _, leaf = name.partition("/")
                for t, task in enumerate(task_names):
                    per_run[r][f"{prefix}/{task}/{leaf}"] = float(v[t])
            else:
                per_run[r][name] = float(v)
    aggregated: dict[str, float] = {}
    for name in per_run[0]:
        vals = np.array([run[name] for run in per_run], np.float64)
        finite = vals[np.isfinite(vals)]
        if finite.size:
            aggregated[name] = float(finite.mean())
        elif not name.startswith(EPISODE_METRIC_PREFIXES):
            aggregated[name] = float("nan")  # a real non-finite value: logged as null
    cleaned = {}
    for spec, run in zip(program.runs, per_run):
        cleaned[spec.label] = {
            n: v for n, v in run.items() if math.isfinite(v) or not n.startswith(EPISODE_METRIC_PREFIXES)
        }
    return aggregated, cleaned


def set_aside_previous_logs(directory: Path) -> Path | None:
    """A run starting from update 0 in a dir that already holds logs (checkpoints disabled or
    deleted) moves them to ``previous/<time>/`` instead of appending a second step axis
    from 0 to them (or deleting them)."""
    old = [directory / name for name in ("metrics.jsonl", "tb") if (directory / name).exists()]
    if not old:
        return None
    target = directory / "previous" / time.strftime("%Y%m%d-%H%M%S")
    target.mkdir(parents=True, exist_ok=True)
    for path in old:
        shutil.move(str(path), str(target / path.name))
    print(f"note: {directory} held logs of an earlier run without a checkpoint to resume; "
          f"moved them to {target}", file=sys.stderr)
    return target


def run_evaluation(evaluator: Evaluator, state, program: TrainProgram
                   ) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Evaluate every run's current policy: (mean over runs, per run label)."""
    values = evaluator(state.params)
    aggregated = {name: float(np.mean(v)) for name, v in values.items()}
    per_run = {spec.label: {name: float(v[r]) for name, v in values.items()}
               for r, spec in enumerate(program.runs)}
    return aggregated, per_run


def train(cfg: Config, *, experiment: str = "gymnax", recipe: str = "default", fresh: bool = False,
          ab: list[str] | None = None, env: MultiAgentEnv | None = None,
          stop_after_updates: int | None = None, console=None) -> RunResult:
    """Run (or resume) training for ``cfg``; returns a summary. Raises ConfigError early.

    SIGTERM/SIGINT are caught from the start (a signal during the compile must not kill the
    process before it can say so): between chunks the loop saves a checkpoint and returns."""
    with GracefulShutdown() as shutdown:
        return _train(cfg, shutdown, experiment=experiment, recipe=recipe, fresh=fresh, ab=ab,
                      env=env, stop_after_updates=stop_after_updates, console=console)


def _train(cfg: Config, shutdown: GracefulShutdown, *, experiment: str, recipe: str, fresh: bool,
           ab: list[str] | None, env: MultiAgentEnv | None, stop_after_updates: int | None,
           console) -> RunResult:
    devices = jax.devices()
    env = env or make_env(cfg)
    cache = enable_compilation_cache(cfg, run_dir(cfg, experiment, recipe))
    # Resolved here only, so make_train, the trial programs and config.json see one config.
    cfg, autosize_report = autosize.resolve(
        cfg, env, devices, ab=ab, cache_file=Path(cache) / "num_envs_auto.json" if cache else None)
    directory = run_dir(cfg, experiment, recipe)
    ckpt_dir = directory / "checkpoints"
    if fresh and directory.exists():
        for stale in (ckpt_dir, directory / "tb", directory / "metrics.jsonl",
                      directory / "config.json"):
            if stale.is_dir():
                shutil.rmtree(stale)
            elif stale.exists():
                stale.unlink()

    program = make_train(cfg, env=env, ab=ab, devices=devices)
    checkpointer = None
    if cfg.checkpoint.enabled:
        checkpointer = Checkpointer(ckpt_dir, keep=cfg.checkpoint.keep,
                                    every_updates=cfg.checkpoint.every_updates,
                                    every_seconds=cfg.checkpoint.every_seconds)
    state = program.init()
    resumed_from = None
    if checkpointer is not None and checkpointer.latest_step() is not None:
        restored = checkpointer.restore(state)
        if restored is not None:
            saved_state, metadata, step = restored
            check_resumable(metadata["config"], cfg, directory)
            shardings = jax.tree.map(lambda x: x.sharding, state)
            state = jax.device_put(saved_state, shardings)
            resumed_from = step
    if cfg.run.init_from and resumed_from is None:
        from jaxrl_arena.policy_artifact import init_params_from

        state = state.replace(params=init_params_from(state.params, cfg.run.init_from,
                                                      cfg.run.init_from_allow, env=env))
    elif cfg.run.init_from:
        print(f"run.init_from ignored: resuming {directory} from its own checkpoint", flush=True)
    update = int(np.asarray(state.update)[0])
    per_update = program.agent_steps_per_update
    directory.mkdir(parents=True, exist_ok=True)
    if resumed_from is None:
        set_aside_previous_logs(directory)
    config_dict = config_lib.to_dict(cfg)
    (directory / "config.json").write_text(json.dumps(
        {**config_dict, "_resolved": {"experiment": experiment, "recipe": recipe, "ab": ab or [],
                                      "runs": [r.label for r in program.runs],
                                      "devices": len(devices),
                                      "num_updates": program.num_updates,
                                      "agent_steps_per_update": per_update}},
        indent=2))

    chunk_len = program.chunk_len
    T, N, A = cfg.ppo.num_steps, program.num_envs, env.num_agents
    obs_space = env.observation_space(env.default_params)
    banner = {
        "run dir": str(directory),
        "devices": f"{len(devices)} × {devices[0].device_kind} ({devices[0].platform})",
        "env": f"{env.name}: {A} agent(s), obs {obs_space.shape} {np.dtype(obs_space.dtype).name}, "
               f"{env.action_space(env.default_params).n} actions",
        "envs": f"{N} ({N // len(devices)} per device)" + (f"; {autosize_report}" if autosize_report else ""),
        "batch": f"T={T} × envs={N} × agents={A} = {T * N * A} agent-steps/update; "
                 f"{cfg.ppo.update_epochs} epochs × {cfg.ppo.num_minibatches} minibatches",
        "policy": f"{cfg.policy.kind}, {count_params(jax.tree.map(lambda x: x[0], state.params)):,} params",
        "runs": f"{len(program.runs)} vmapped" + (f" ({', '.join(r.label for r in program.runs)})" if len(program.runs) > 1 else ""),
        "updates": f"{program.num_updates} ({program.num_updates * per_update:,} agent-steps), "
                   f"{chunk_len} per compiled chunk",
        "compile cache": cache or "off (run.compile_cache)",
    }
    if resumed_from is not None:
        banner["resumed"] = f"from update {update} ({update * per_update:,} agent-steps)"
    print_banner(console, title=f"jaxrl_arena · {experiment} · {recipe}", rows=banner)
    # Compile ahead of time (SPS excludes it), saying so first: it is the long silent part.
    print(f"compiling the train chunk ({chunk_len} updates of {per_update:,} agent-steps; "
          f"the first compile of a config takes longest, cache hits a few seconds) ...", flush=True)
    t0 = time.perf_counter()
    executables = {chunk_len: program.chunk_for(chunk_len).lower(state).compile()}
    compile_seconds = time.perf_counter() - t0
    print(f"compiled in {compile_seconds:.1f} s", flush=True)

    logger = RunLogger(directory, tensorboard=cfg.logging.tensorboard, wandb=cfg.logging.wandb,
                       wandb_project=cfg.logging.wandb_project,
                       resume_step=update * per_update if resumed_from is not None else None,
                       run_name=directory.name, config=config_dict)
    metadata = run_metadata(config_dict)
    evaluator = make_evaluator(cfg, env, program.policy)
    last: dict[str, float] = {}
    stopped_by_signal = False
    target_updates = program.num_updates
    if stop_after_updates is not None:
        target_updates = min(target_updates, stop_after_updates)
    try:
        with Progress(
            program.num_updates * per_update,
            enabled=None if cfg.logging.progress else False,  # None: a live bar on terminals
            key_metrics=("overview/reward", "overview/episode_length", "loss/entropy"),
            console=console, description=directory.name,
        ) as progress:
            progress.update(update * per_update)
            while update < target_updates and not shutdown.requested:
                length = min(chunk_len, target_updates - update)
                if length not in executables:
                    executables[length] = program.chunk_for(length).lower(state).compile()
                t_chunk = time.perf_counter()
                state, metrics = executables[length](state)
                metrics = jax.device_get(metrics)
                seconds = time.perf_counter() - t_chunk
                sps = length * per_update / max(seconds, 1e-9)
                end = update + length
                evaluation = None
                if evaluator is not None and (
                    end // cfg.eval.every_updates > update // cfg.eval.every_updates
                    or end >= target_updates
                ):
                    t_eval = time.perf_counter()
                    evaluation = run_evaluation(evaluator, state, program)
                    evaluation[0]["eval/seconds"] = time.perf_counter() - t_eval
                for k in range(length):
                    u = update + k + 1
                    aggregated, per_run = host_metrics(program, metrics, k)
                    aggregated["overview/sps"] = sps
                    aggregated["overview/updates"] = u
                    if evaluation is not None and u == end:
                        aggregated.update(evaluation[0])
                        for label, values in per_run.items():
                            values.update(evaluation[1][label])
                    last = aggregated
                    if (u % cfg.logging.log_every == 0 or u == target_updates
                            or (evaluation is not None and u == end)):
                        row = dict(aggregated)
                        if len(per_run) > 1 and cfg.logging.per_run_metrics:
                            for label, values in per_run.items():
                                row.update({f"runs/{label}/{n}": v for n, v in values.items()})
                        logger.log(u * per_update, row, update=u)
                    if aggregated.get("train/consecutive_skips", 0) >= cfg.ppo.max_consecutive_skips:
                        raise TrainingStopped(
                            f"{cfg.ppo.max_consecutive_skips} consecutive updates had a non-finite "
                            f"loss or gradient (update {u}); stopping. The last good checkpoint "
                            f"in {ckpt_dir} is intact"
                        )
                update += length
                progress.update(update * per_update, last)
                done = update >= target_updates
                if checkpointer is not None and (
                    done or shutdown.requested or checkpointer.should_save(update)
                ):
                    checkpointer.save(update, state, {**metadata, "update": update,
                                                      "agent_steps": update * per_update})
            if shutdown.requested:   # after a chunk, or before the first (during the compile)
                stopped_by_signal = True
                if checkpointer is not None and checkpointer.latest_step() != update:
                    checkpointer.save(update, state, {**metadata, "update": update,
                                                      "agent_steps": update * per_update})
                if checkpointer is not None:
                    print(f"received {shutdown.signal_name}: saved checkpoint at update {update} "
                          f"in {ckpt_dir}; rerun the same command to resume", file=sys.stderr)
                else:
                    print(f"received {shutdown.signal_name}: stopped at update {update}; "
                          "checkpoint.enabled=false, so nothing was saved", file=sys.stderr)
    finally:
        logger.close()
        if checkpointer is not None:
            checkpointer.close()
    return RunResult(directory, update, update * per_update, last, stopped_by_signal,
                     resumed_from, compile_seconds, state)
