"""The host loop: compile, call chunks, log, checkpoint, resume. No training math lives here.

What a run survives (docs/RELIABILITY.md): one process per run dir (``run_lock``); a
checkpoint is known-good only when every update since the previous save was finite, and a
divergence either stops the run (a rerun resumes from the last known-good checkpoint) or rolls
back to it with a smaller learning rate (``run.on_diverge``); a failed save is retried once and
then skipped, a full disk stops the run. Errors the user must act on are ``ConfigError`` (the
CLI exits 2) or ``TrainingStopped`` (exit 3), each one line.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import jax
import numpy as np

from envs.base import MultiAgentEnv
from jaxrl_arena import autosize, eval_gifs
from jaxrl_arena import config as config_lib
from jaxrl_arena.checkpoint import (
    DIVERGED_DIR,
    KNOWN_GOOD_KEY,
    Checkpointer,
    GracefulShutdown,
    NoRestorableCheckpoint,
    StorageError,
    describe_os_error,
    run_metadata,
)
from jaxrl_arena.config import Config, ConfigError
from jaxrl_arena.config.validation import check_values
from jaxrl_arena.evaluation import Evaluator, make_evaluator
from jaxrl_arena.logging import Progress, RunLogger, print_banner
from jaxrl_arena.networks import count_params
from jaxrl_arena.run_lock import RunLock
from jaxrl_arena.train import TrainProgram, expand_runs, make_env, make_train

# Keys that may change between a run and its resumption without changing what is computed.
RESUMABLE_CHANGES = ("run.total_timesteps", "run.updates_per_chunk", "run.name", "run.dir",
                     "run.compile_cache", "run.init_from", "run.init_from_allow",
                     "run.on_diverge", "run.rollback_lr_factor", "run.max_rollbacks")
RESUMABLE_SECTIONS = ("logging.", "checkpoint.", "eval.")

# Metrics that are means over finished episodes: absent (not zero) when none finished.
EPISODE_METRIC_PREFIXES = ("overview/reward", "overview/episode_length", "env_agent/",
                           "task_reward/", "loss/explained_variance")
# Learner losses that must be finite for an update to count as finite (with no skipped step).
LEARNER_LOSSES = ("loss/policy_loss", "loss/value_loss", "loss/entropy")


class TrainingStopped(RuntimeError):
    """The run cannot continue as it is (non-finite updates, a full disk, no restorable
    checkpoint); one line saying what to do. The CLI prints it and exits 3."""


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
    old = [directory / name for name in ("metrics.jsonl", "tb", eval_gifs.GIF_DIRNAME)
           if (directory / name).exists()]
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


def updates_were_finite(metrics: dict[str, np.ndarray]) -> bool:
    """Whether every update of a chunk's ``[R, K]`` metrics took all its optimizer steps
    (none skipped as non-finite) with finite learner losses, in every run."""
    if np.asarray(metrics["train/skipped_updates"]).any():
        return False
    return all(np.isfinite(np.asarray(metrics[name])).all()
               for name in LEARNER_LOSSES if name in metrics)


def params_are_finite(params) -> bool:
    return all(np.isfinite(np.asarray(leaf, np.float32)).all()
               for leaf in jax.tree.leaves(jax.device_get(params)))


class SuccessTally:
    """Wins over episodes started, per run, for envs with a ``success`` stat (a win):
    ``overview/success_rate``. Each env always has one episode running, so the episodes started
    so far are the finished ones plus ``num_envs``: an episode still running (or cut by the end
    of the run) counts as not won, like a truncated one. The per-update ``env_agent/success`` is
    over finished episodes only, so where only wins end an episode within the run it reads 1.0
    whatever the policy does. The counts travel in the checkpoint metadata."""

    def __init__(self, num_runs: int, num_envs: int, saved: dict | None = None) -> None:
        self.num_envs = num_envs
        saved = saved or {}
        self.wins = np.asarray(saved.get("wins", np.zeros(num_runs)), np.float64)
        self.finished = np.asarray(saved.get("finished", np.zeros(num_runs)), np.float64)
        if self.wins.shape != (num_runs,) or self.finished.shape != (num_runs,):
            self.wins, self.finished = np.zeros(num_runs), np.zeros(num_runs)

    def add(self, metrics: dict[str, np.ndarray], k: int) -> np.ndarray | None:
        """Counts update ``k`` of a chunk; the success rate per run, or None without wins."""
        if "env_agent/success" not in metrics:
            return None
        episodes = np.asarray(metrics["overview/episodes"], np.float64)[:, k]
        success = np.asarray(metrics["env_agent/success"], np.float64)[:, k]
        self.wins += np.where(episodes > 0, np.nan_to_num(success) * episodes, 0.0)
        self.finished += episodes
        return self.wins / (self.finished + self.num_envs)

    def to_metadata(self) -> dict:
        return {"wins": self.wins.tolist(), "finished": self.finished.tolist()}


class CheckpointSaver:
    """The run's saves: a checkpoint is known-good when every update since the previous save
    was finite and so are the parameters; a save that fails is retried once and then skipped
    (the previous checkpoints stay, the run goes on); a full disk stops the run."""

    def __init__(self, checkpointer: Checkpointer) -> None:
        self.checkpointer = checkpointer
        self.finite_since_last_save = True

    def observe(self, metrics: dict[str, np.ndarray]) -> None:
        self.finite_since_last_save &= updates_were_finite(metrics)

    def save(self, update: int, state, metadata: dict) -> bool:
        good = self.finite_since_last_save and params_are_finite(state.params)
        metadata = {**metadata, KNOWN_GOOD_KEY: good}
        for attempt in ("first", "retry"):
            try:
                self.checkpointer.save(update, state, metadata)
            except StorageError as error:
                latest = self.checkpointer.latest_step()
                kept = f"update {latest}" if latest is not None else "none"
                if error.disk_full:
                    raise TrainingStopped(
                        f"{error}: the disk is full; stopped at update {update} with its metrics "
                        f"written; latest checkpoint: {kept} (free space, then rerun to resume)"
                    ) from None
                if attempt == "first":
                    print(f"warning: {error}; retrying once", file=sys.stderr, flush=True)
                    continue
                print(f"warning: {error} again; kept the previous checkpoints (latest: {kept}) "
                      "and continuing", file=sys.stderr, flush=True)
                return False
            self.finite_since_last_save = True
            return True
        return False

    def latest_known_good(self) -> int | None:
        steps = self.checkpointer.known_good_steps()
        return steps[-1] if steps else None


def restore_announced(checkpointer: Checkpointer, target, **kwargs):
    """``checkpointer.restore`` with its fallback warnings as one line each and no restorable
    checkpoint as a one-line ``TrainingStopped``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            restored = checkpointer.restore(target, **kwargs)
        except NoRestorableCheckpoint as error:
            raise TrainingStopped(f"{error} Pass --fresh to start over, or set run.dir to a new "
                                  "directory") from None
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr, flush=True)
    return restored


def resume_point(checkpointer: Checkpointer, target, cfg: Config, directory: Path):
    """``(state, metadata, step)`` to resume from, or None for a run dir without checkpoints.
    After a stop for non-finite updates: the newest known-good checkpoint, the later ones set
    aside (said on stderr); none known-good is a one-line ``TrainingStopped``."""
    latest = checkpointer.latest_step()
    if latest is None:
        return None
    try:  # before reading any state: a different config is the more useful message
        saved_config = checkpointer.metadata(latest)["config"]
    except Exception:  # noqa: BLE001 - unreadable: the restore falls back and checks
        saved_config = None
    if saved_config is not None:
        check_resumable(saved_config, cfg, directory)
    divergence = checkpointer.divergence()
    stopped_at = (divergence or {}).get("update")
    if divergence is not None and not checkpointer.known_good_steps():
        raise TrainingStopped(
            f"{checkpointer.directory} holds no known-good checkpoint: the run stopped at update "
            f"{stopped_at} for non-finite updates before one was saved; pass --fresh to start "
            "over (with a smaller ppo.lr)")
    restored = restore_announced(checkpointer, target, known_good_only=divergence is not None)
    if restored is None:
        return None
    check_resumable(restored[1]["config"], cfg, directory)
    if divergence is not None:
        step = restored[2]
        later = [s for s in checkpointer.all_steps() if s > step]
        checkpointer.set_aside(later, DIVERGED_DIR)
        checkpointer.clear_divergence()
        print(f"resuming from the last known-good checkpoint, update {step}: the run stopped at "
              f"update {stopped_at} for non-finite updates"
              + (f"; its {len(later)} later checkpoint(s) moved to {DIVERGED_DIR}/" if later else ""),
              file=sys.stderr, flush=True)
    return restored


def train(cfg: Config, *, experiment: str = "gymnax", recipe: str = "default", fresh: bool = False,
          ab: list[str] | None = None, env: MultiAgentEnv | None = None,
          stop_after_updates: int | None = None, console=None,
          directory: Path | None = None) -> RunResult:
    """Run (or resume) training for ``cfg``; returns a summary. Raises ConfigError early and
    TrainingStopped when the run cannot go on; both are one line. ``directory``: the run dir
    instead of ``run.dir``'s (an A/B program's, ``jaxrl_arena.ab``: its saved config then
    differs from its siblings' in the A/B keys only).

    SIGTERM/SIGINT are caught from the start (a signal during the compile must not kill the
    process before it can say so): between chunks the loop saves a checkpoint and returns.
    The run dir's lock is held from before anything is written there to the end."""
    check_values(cfg)
    directory = Path(directory) if directory is not None else run_dir(cfg, experiment, recipe)
    with GracefulShutdown() as shutdown, RunLock(directory):
        try:
            return _train(cfg, shutdown, experiment=experiment, recipe=recipe, fresh=fresh, ab=ab,
                          env=env, stop_after_updates=stop_after_updates, console=console,
                          directory=directory)
        except StorageError as error:
            raise TrainingStopped(f"{error}; the run stopped there") from None
        except OSError as error:  # files other than checkpoints (config.json, logs)
            where = f": {error.filename}" if error.filename else ""
            raise TrainingStopped(f"{describe_os_error(error)}{where}; the run stopped "
                                  "there") from None


def _train(cfg: Config, shutdown: GracefulShutdown, *, experiment: str, recipe: str, fresh: bool,
           ab: list[str] | None, env: MultiAgentEnv | None, stop_after_updates: int | None,
           console, directory: Path) -> RunResult:
    devices = jax.devices()
    env = env or make_env(cfg)
    eval_gifs.check_config(cfg)
    cache = enable_compilation_cache(cfg, run_dir(cfg, experiment, recipe))
    # Resolved here only, so make_train, the trial programs and config.json see one config.
    cfg, autosize_report = autosize.resolve(
        cfg, env, devices, ab=ab, cache_file=Path(cache) / "num_envs_auto.json" if cache else None)
    for spec in expand_runs(cfg, ab):  # --ab values are set by the user too
        check_values(spec.config)
    ckpt_dir = directory / "checkpoints"
    if fresh and directory.exists():
        for stale in (ckpt_dir, directory / "tb", directory / "metrics.jsonl",
                      directory / "config.json", directory / eval_gifs.GIF_DIRNAME):
            if stale.is_dir():
                shutil.rmtree(stale)
            elif stale.exists():
                stale.unlink()

    program = make_train(cfg, env=env, ab=ab, devices=devices)
    checkpointer = saver = None
    if cfg.checkpoint.enabled:
        checkpointer = Checkpointer(ckpt_dir, keep=cfg.checkpoint.keep,
                                    every_updates=cfg.checkpoint.every_updates,
                                    every_seconds=cfg.checkpoint.every_seconds)
        saver = CheckpointSaver(checkpointer)

    def start_state():
        state = program.init()
        if cfg.run.init_from:
            from jaxrl_arena.policy_artifact import init_params_from

            state = state.replace(params=init_params_from(state.params, cfg.run.init_from,
                                                          cfg.run.init_from_allow, env=env))
        return state

    state = program.init()
    shardings = jax.tree.map(lambda x: x.sharding, state)
    resumed_from = None
    saved_tally = None
    restored = resume_point(checkpointer, state, cfg, directory) if checkpointer else None
    if restored is not None:
        saved_state, saved_metadata, resumed_from = restored
        state = jax.device_put(saved_state, shardings)
        saved_tally = saved_metadata.get("success_tally")
        if cfg.run.init_from:
            print(f"run.init_from ignored: resuming {directory} from its own checkpoint", flush=True)
    elif cfg.run.init_from:
        state = start_state()
    update = int(np.asarray(state.update)[0])
    per_update = program.agent_steps_per_update
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
    plan = config_lib.describe(recipe) if recipe in config_lib.RECIPES else ""
    banner = {
        **({"plan": plan} if plan else {}),
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

    def open_logger(resume_step: int | None) -> RunLogger:
        return RunLogger(directory, tensorboard=cfg.logging.tensorboard, wandb=cfg.logging.wandb,
                         wandb_project=cfg.logging.wandb_project, resume_step=resume_step,
                         run_name=directory.name, config=config_dict)

    logger = open_logger(update * per_update if resumed_from is not None else None)
    metadata = run_metadata(config_dict)
    tally = SuccessTally(len(program.runs), N, saved_tally)
    evaluator = make_evaluator(cfg, env, program.policy)
    gifs = eval_gifs.make_gif_recorder(cfg, evaluator, directory)
    if gifs is not None:
        gifs.compile_in_background(state.params)
    last: dict[str, float] = {}
    stopped_by_signal = False
    rollbacks = 0
    target_updates = program.num_updates
    if stop_after_updates is not None:
        target_updates = min(target_updates, stop_after_updates)

    def save(at_update: int) -> bool:
        return saver.save(at_update, state, {**metadata, "update": at_update,
                                             "agent_steps": at_update * per_update,
                                             "success_tally": tally.to_metadata()})

    def rolled_back(at_update: int, diverged: np.ndarray):
        """The state to continue from after a divergence at ``at_update``: the newest
        known-good checkpoint (or the start), the diverged runs' learning rate scaled down."""
        lr = np.asarray(jax.device_get(state.hp.lr), np.float32)
        lr = np.where(diverged, lr * np.float32(cfg.run.rollback_lr_factor), lr)
        good = None
        if checkpointer is not None and checkpointer.known_good_steps():
            good = restore_announced(checkpointer, state, known_good_only=True)
        if good is not None:
            back, back_metadata, step = good
            back = jax.device_put(back, shardings)
            back_tally = back_metadata.get("success_tally")
        else:
            back, step, back_tally = start_state(), 0, None
        if checkpointer is not None:
            checkpointer.set_aside([s for s in checkpointer.all_steps() if s > step], DIVERGED_DIR)
        back = back.replace(hp=back.hp._replace(lr=jax.device_put(lr, back.hp.lr.sharding)))
        where = f"the known-good checkpoint at update {step}" if good else "the start (update 0)"
        print(f"update {at_update}: {cfg.ppo.max_consecutive_skips} consecutive non-finite "
              f"updates; rolled back to {where} with ppo.lr x{cfg.run.rollback_lr_factor:g} "
              f"(now {', '.join(f'{v:.3g}' for v in lr)}; rollback {rollbacks} of "
              f"{cfg.run.max_rollbacks})", file=sys.stderr, flush=True)
        return back, step, back_tally

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
                if saver is not None:
                    saver.observe(metrics)
                evaluation = None
                if evaluator is not None and (
                    end // cfg.eval.every_updates > update // cfg.eval.every_updates
                    or end >= target_updates
                ):
                    t_eval = time.perf_counter()
                    evaluation = run_evaluation(evaluator, state, program)
                    evaluation[0]["eval/seconds"] = time.perf_counter() - t_eval
                    if gifs is not None and gifs.due(update, end, end >= target_updates):
                        evaluation[0]["eval/gif_seconds"] = gifs.record(
                            state.params, end * per_update, logger)
                diverged_at = None
                for k in range(length):
                    u = update + k + 1
                    aggregated, per_run = host_metrics(program, metrics, k)
                    aggregated["overview/sps"] = sps
                    aggregated["overview/updates"] = u
                    success_rate = tally.add(metrics, k)
                    if success_rate is not None:
                        aggregated["overview/success_rate"] = float(success_rate.mean())
                        for r, values in enumerate(per_run.values()):
                            values["overview/success_rate"] = float(success_rate[r])
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
                        try:
                            logger.log(u * per_update, row, update=u)
                        except OSError as error:
                            raise TrainingStopped(
                                f"writing metrics to {directory} failed: "
                                f"{describe_os_error(error)}; stopped at update {u}") from None
                    consecutive = np.asarray(metrics["train/consecutive_skips"])[:, k]
                    if consecutive.max() >= cfg.ppo.max_consecutive_skips:
                        diverged_at = (u, consecutive >= cfg.ppo.max_consecutive_skips)
                        break
                if diverged_at is not None:
                    u, diverged = diverged_at
                    if cfg.run.on_diverge == "rollback" and rollbacks < cfg.run.max_rollbacks:
                        rollbacks += 1
                        state, update, back_tally = rolled_back(u, diverged)
                        tally = SuccessTally(len(program.runs), N, back_tally)
                        if gifs is not None:
                            gifs.flush()   # they log to the logger closed here
                        logger.close()
                        logger = open_logger(update * per_update)
                        if saver is not None:
                            saver.finite_since_last_save = True
                        progress.update(update * per_update)
                        continue
                    known_good = saver.latest_known_good() if saver is not None else None
                    raise TrainingStopped(divergence_message(cfg, u, rollbacks, known_good,
                                                             ckpt_dir, checkpointer))
                update += length
                progress.update(update * per_update, last)
                done = update >= target_updates
                due = saver is not None and (
                    done or shutdown.requested or checkpointer.should_save(update))
                if due and not save(update) and done:
                    raise TrainingStopped(
                        f"the final checkpoint (update {update}) could not be saved; latest "
                        f"checkpoint: update {checkpointer.latest_step()} in {ckpt_dir}")
            if shutdown.requested:   # after a chunk, or before the first (during the compile)
                stopped_by_signal = True
                saved = checkpointer is not None and (checkpointer.latest_step() == update
                                                      or save(update))
                if saved:
                    print(f"received {shutdown.signal_name}: saved checkpoint at update {update} "
                          f"in {ckpt_dir}; rerun the same command to resume", file=sys.stderr)
                elif checkpointer is not None:
                    print(f"received {shutdown.signal_name}: stopped at update {update}; its "
                          f"checkpoint could not be saved (latest: update "
                          f"{checkpointer.latest_step()}); rerun to resume from there",
                          file=sys.stderr)
                else:
                    print(f"received {shutdown.signal_name}: stopped at update {update}; "
                          "checkpoint.enabled=false, so nothing was saved", file=sys.stderr)
    finally:
        try:
            if gifs is not None:
                gifs.close()   # GIFs still being written: finished, never left half written
        finally:
            try:
                logger.close()
            finally:
                if checkpointer is not None:
                    checkpointer.close()
    return RunResult(directory, update, update * per_update, last, stopped_by_signal,
                     resumed_from, compile_seconds, state)


def divergence_message(cfg: Config, update: int, rollbacks: int, known_good: int | None,
                       ckpt_dir: Path, checkpointer: Checkpointer | None) -> str:
    """The one line of a stop for non-finite updates; records the stop for the rerun."""
    text = (f"{cfg.ppo.max_consecutive_skips} consecutive updates had a non-finite loss or "
            f"gradient (update {update}"
            + (f", after {rollbacks} rollback(s) with a smaller ppo.lr" if rollbacks else "")
            + "); stopping. ")
    if checkpointer is None:
        return text + "checkpoint.enabled=false: nothing to resume from"
    checkpointer.record_divergence(update)
    if known_good is None:
        return text + (f"No known-good checkpoint was saved in {ckpt_dir}: pass --fresh to start "
                       "over with a smaller ppo.lr")
    return text + (f"The last known-good checkpoint is update {known_good} in {ckpt_dir}: rerun "
                   "to resume from it (a smaller ppo.lr or run.on_diverge=rollback may help)")
