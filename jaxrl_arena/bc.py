"""Behaviour cloning (BC): a PPO recipe's policy trained on the (observation, action) pairs of
human N++ replays, as a run directory that PPO starts from (``run.init_from``).

    cfg = bc_config(["bc.epochs=50"])          # the recipe bc.recipe (npp_grid) + bc.* keys
    result = train_bc(cfg)                     # runs/bc_npp_grid_seed0/
    export_run(result.run_dir, result.run_dir / "policy")   # policy_artifact: the artefact

* **Data** (``envs/npp/bc_data.py``): the replays of ``bc.replays`` re-simulated exactly, one
  pair per block of ``frame_skip`` frames, labelled with the human's input at the block start;
  split into training and validation *by replay file*; malformed or unwon replays are reported
  one line each and skipped; pairs cached per replay (``bc.cache``).
* **Network**: the one ``train.make_train`` builds for the recipe (``make_bc``: the same
  config and env through ``networks.policy_for_env``), so the run's parameters load into PPO
  strictly, name for name. The value head is in the tree too (untrained: a fresh
  initialisation), so no name needs ``run.init_from_allow``.
* **Normalisation** (``policy.obs_norm``): the per-feature mean and std of the training set's
  network inputs are written into the policy's ``obs_norm`` parameters before the first step
  (``networks.ObsNorm``); the gradient stops at them, so they leave training as they came in and
  travel with the parameters into checkpoints, artefacts and PPO.
* **Loss**: cross-entropy of the human's action. Valid actions: PPO samples every one of the 6
  N++ actions in every state (its rollouts apply no action mask; the reference's mask is
  HEAD-only, npp.md §7.4), so all 6 are valid for the cloned policy and the softmax is over all
  of them; ``cross_entropy`` takes a mask for policies that have one. ``bc.class_weights``:
  "balanced" weights each action by ``n / (6 n_action)`` over the training set (the loss is the
  weighted mean), "none" weights every pair alike.
* **Steps**: one compiled program per epoch (a shuffle, then ``lax.scan`` over minibatches of
  ``bc.batch_size``; the remainder that fills no minibatch is left out, a different one each
  epoch), Adam at ``bc.lr``.
* **Logs** (``jaxrl_arena.logging``: metrics.jsonl, TensorBoard): per epoch ``bc/train_loss``,
  ``bc/train_accuracy`` (the whole training set after the epoch), ``bc/val_loss``,
  ``bc/val_accuracy`` (the validation replays; null without any), ``bc/minibatch_loss`` (the
  objective, averaged over the epoch's steps); a row for epoch 0 scores the initial network.
  ``step`` counts the pairs trained on.
* **Run directory**: ``config.json`` (the config, and under ``_resolved`` ``trainer: "bc"`` and
  the replays used and skipped), ``checkpoints/`` (``BCState``, via ``checkpoint.Checkpointer``
  at ``checkpoint.*``'s cadence counted in epochs, at the end and on SIGTERM; a rerun resumes),
  ``metrics.jsonl``, ``tb/``. ``policy_artifact.restore_run_params`` reads it as it reads a PPO
  run, so ``--init-from``, ``export_policy.py`` and ``--render-episode`` take a BC run.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from envs.base import MultiAgentEnv
from envs.npp.bc_data import Dataset, build_dataset, replay_files
from envs.npp.golden import npp_golden_dir
from jaxrl_arena import config as config_lib
from jaxrl_arena.checkpoint import Checkpointer, GracefulShutdown, run_metadata
from jaxrl_arena.config import Config, ConfigError
from jaxrl_arena.logging import RunLogger
from jaxrl_arena.networks import Policy, count_params, policy_for_env
from jaxrl_arena.registry import make as make_env

TRAINER = "bc"  # config.json's ``_resolved.trainer`` of a BC run
EXPERIMENT = "npp_bc"
# Pairs per compiled scoring call (padded): one program per dataset, whatever its size.
SCORE_CHUNK = 256
# Keys that may change between a BC run and its resumption without changing what it computes.
RESUMABLE_CHANGES = ("bc.epochs", "bc.cache", "run.name", "run.dir", "run.compile_cache")
RESUMABLE_SECTIONS = ("logging.", "checkpoint.", "eval.")


@struct.dataclass
class BCState:
    """Everything a BC run needs to continue: checkpointed whole."""

    params: Any
    opt_state: Any
    epoch: jax.Array  # int32: epochs done
    key: jax.Array  # uint32[2]: shuffles of the epochs to come


@dataclasses.dataclass
class BCProgram:
    """What a BC run trains: the recipe's env and the network PPO builds for it (the part of a
    ``train.TrainProgram`` that readers of a restored run use: ``env``, ``policy``)."""

    config: Config
    env: MultiAgentEnv
    policy: Policy
    optimizer: optax.GradientTransformation


@dataclasses.dataclass
class DeviceData:
    """A dataset on the device, padded for ``make_scorer``, with what the steps need."""

    train_obs: jax.Array
    train_actions: jax.Array
    val_obs: jax.Array
    val_actions: jax.Array
    n_train: int
    n_val: int
    weights: jax.Array  # float32[nA]: the loss weight of each action (bc.class_weights)
    batch: int  # pairs per minibatch

    @property
    def pairs_per_epoch(self) -> int:
        return (self.n_train // self.batch) * self.batch


@dataclasses.dataclass
class BCResult:
    run_dir: Path
    epochs: int  # epochs done
    last_metrics: dict[str, float]
    params: Any
    dataset: Dataset
    stopped_by_signal: bool = False
    resumed_from: int | None = None


# ----------------------------------------------------------------------------- config
def bc_config(overrides: Sequence[str] = (), recipe: str | None = None) -> Config:
    """A BC run's config: the PPO recipe ``recipe`` (default: ``bc.recipe`` as the overrides
    set it) with ``overrides`` applied, ``bc.recipe`` naming that recipe."""
    name = recipe or config_lib.apply_overrides(Config(), list(overrides)).bc.recipe
    cfg = config_lib.apply_overrides(config_lib.get_recipe(name), list(overrides))
    if cfg.bc.recipe != name and cfg.bc.recipe != Config().bc.recipe:
        raise ConfigError(f"bc.recipe={cfg.bc.recipe!r} and --recipe {name!r} name two recipes; "
                          "give one of them")
    return config_lib.replace(cfg, "bc.recipe", name)


def check_config(cfg: Config) -> None:
    """One-line errors for what BC cannot train."""
    b = cfg.bc
    if cfg.env.name != "npp":
        raise ConfigError(f"BC clones human N++ replays: bc.recipe={b.recipe!r} trains env.name="
                          f"{cfg.env.name!r}, not npp")
    if cfg.policy.kind == "lstm":
        raise ConfigError("BC trains feed-forward policies (policy.kind mlp or cnn); an lstm "
                          "policy would need whole replays as sequences")
    for key, value, ok, rule in (("bc.epochs", b.epochs, b.epochs >= 0, ">= 0"),
                                 ("bc.batch_size", b.batch_size, b.batch_size >= 1, ">= 1"),
                                 ("bc.lr", b.lr, b.lr > 0, "> 0"),
                                 ("bc.val_fraction", b.val_fraction, 0 <= b.val_fraction < 1,
                                  "in [0, 1)")):
        if not ok:
            raise ConfigError(f"{key}={value} must be {rule}")
    if not cfg.checkpoint.enabled:
        raise ConfigError("checkpoint.enabled=false: a BC run's result is its checkpoint "
                          "(what --init-from and export_policy.py read); leave it on")


def run_dir(cfg: Config) -> Path:
    if cfg.run.dir != "auto":
        return Path(cfg.run.dir)
    name = cfg.run.name if cfg.run.name != "auto" else f"bc_{cfg.bc.recipe}_seed{cfg.run.seed}"
    return Path("runs") / name


def replays_dir(cfg: Config) -> Path:
    return Path(cfg.bc.replays) if cfg.bc.replays else npp_golden_dir() / "replays"


def cache_dir(cfg: Config, directory: Path) -> Path | None:
    setting = cfg.bc.cache
    if setting == "off":
        return None
    return directory.resolve().parent / ".bc_cache" if setting == "auto" else Path(setting)


def make_bc(cfg: Config, env: MultiAgentEnv | None = None) -> BCProgram:
    """The env and policy of ``cfg``'s BC run: the policy exactly as ``train.make_train``
    builds it for the same config (so the parameters transfer to PPO name for name)."""
    check_config(cfg)
    env = env or make_env(cfg)
    return BCProgram(cfg, env, policy_for_env(cfg.policy, env), optax.adam(cfg.bc.lr))


# ----------------------------------------------------------------------------- losses
def cross_entropy(logits: jax.Array, actions: jax.Array, valid: jax.Array | None = None):
    """``-log p(action)`` per row under the softmax over the valid actions (``valid``:
    bool[B, nA]; None: every action). A label outside its row's valid actions costs inf."""
    chex.assert_rank(logits, 2)
    chex.assert_shape(actions, logits.shape[:1])
    if valid is not None:
        chex.assert_equal_shape([logits, valid])
        logits = jnp.where(valid, logits, -jnp.inf)
    logp = jax.nn.log_softmax(logits.astype(jnp.float32))
    return -jnp.take_along_axis(logp, actions[:, None].astype(jnp.int32), axis=1)[:, 0]


def class_weights(actions: np.ndarray, num_actions: int, kind: str) -> np.ndarray:
    """float32[nA]: 1 each ("none"), or ``n / (nA * n_a)`` ("balanced"; 0 for an action the
    training set never shows, which no pair then carries)."""
    if kind == "none":
        return np.ones(num_actions, np.float32)
    counts = np.bincount(np.asarray(actions), minlength=num_actions).astype(np.float64)
    w = np.where(counts > 0, counts.sum() / (num_actions * np.maximum(counts, 1)), 0.0)
    return w.astype(np.float32)


# ----------------------------------------------------------------------------- state
def init_state(program: BCProgram, obs_example, key) -> BCState:
    """Fresh parameters, optimizer state and shuffle key (``obs_example``: a batch of one)."""
    k_params, k_run = jax.random.split(key)
    params = program.policy.init(k_params, obs_example)
    return BCState(params, program.optimizer.init(params), jnp.zeros((), jnp.int32), k_run)


def state_template(program: BCProgram) -> BCState:
    """The shapes and dtypes of a BC run's checkpointed state (the target of a restore)."""
    space = program.env.observation_space(program.env.default_params)
    one = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    obs = jax.ShapeDtypeStruct((1, *space.shape), space.dtype)
    shapes = jax.eval_shape(lambda o: init_state(program, o, jax.random.PRNGKey(0)), obs)
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=one), shapes)


def restore_bc_run(directory, cfg: Config) -> tuple[BCProgram, Any, int]:
    """``(program, params, epochs done)`` of a BC run directory's latest checkpoint."""
    program = make_bc(cfg)
    with Checkpointer(Path(directory) / "checkpoints") as checkpoints:
        restored = checkpoints.restore(state_template(program))
    if restored is None:
        raise FileNotFoundError(f"{directory}: no checkpoint to load")
    state, _, step = restored
    return program, state.params, int(step)


# ----------------------------------------------------------------------------- compiled steps
def make_epoch(program: BCProgram, num_pairs: int, batch_size: int) -> Callable:
    """``epoch(state, obs, actions, weights) -> (state, mean objective)``: one shuffle of the
    first ``num_pairs`` rows, then one Adam step per minibatch, in one compiled program."""
    policy, optimizer = program.policy, program.optimizer
    num_batches = num_pairs // batch_size

    def objective(params, obs, actions, weights):
        _, logits, _ = policy.apply(params, obs, (), None)
        w = weights[actions]
        return jnp.sum(w * cross_entropy(logits, actions)) / jnp.maximum(jnp.sum(w), 1e-12)

    def epoch(state: BCState, obs, actions, weights):
        key, k_perm = jax.random.split(state.key)
        order = jax.random.permutation(k_perm, num_pairs)[: num_batches * batch_size]

        def step(carry, rows):
            params, opt_state = carry
            loss, grads = jax.value_and_grad(objective)(params, obs[rows], actions[rows], weights)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        (params, opt_state), losses = jax.lax.scan(
            step, (state.params, state.opt_state), order.reshape(num_batches, batch_size))
        return BCState(params, opt_state, state.epoch + 1, key), jnp.mean(losses)

    return jax.jit(epoch, donate_argnums=0)


def make_scorer(policy: Policy) -> Callable:
    """``score(params, obs, actions, n) -> (loss, accuracy)`` over the first ``n`` rows of
    ``obs`` (padded to a multiple of ``SCORE_CHUNK``): plain cross-entropy and argmax hits."""

    @jax.jit
    def chunk(params, obs, actions, start, n):
        o = jax.lax.dynamic_slice_in_dim(obs, start, SCORE_CHUNK)
        a = jax.lax.dynamic_slice_in_dim(actions, start, SCORE_CHUNK)
        valid = start + jnp.arange(SCORE_CHUNK) < n
        _, logits, _ = policy.apply(params, o, (), None)
        ce = cross_entropy(logits, a)
        hits = valid & (jnp.argmax(logits, -1) == a)
        return jnp.sum(jnp.where(valid, ce, 0.0)), jnp.sum(hits)

    def score(params, obs, actions, n: int) -> tuple[float, float]:
        if n == 0:
            return float("nan"), float("nan")
        parts = [chunk(params, obs, actions, jnp.int32(s), jnp.int32(n))
                 for s in range(0, n, SCORE_CHUNK)]
        loss, hits = (float(sum(jax.device_get(x))) for x in zip(*parts))
        return loss / n, hits / n

    return score


def padded(x: np.ndarray) -> jax.Array:
    """``x`` on the device, padded with zero rows to a multiple of ``SCORE_CHUNK``."""
    rows = max(SCORE_CHUNK, -(-len(x) // SCORE_CHUNK) * SCORE_CHUNK)
    out = np.zeros((rows, *x.shape[1:]), x.dtype)
    out[: len(x)] = x
    return jnp.asarray(out)


def input_statistics(policy: Policy, obs: jax.Array, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std (float64 sums) of the network inputs of the first ``n`` rows of ``obs``,
    per feature (``policy.obs_norm_shape``)."""
    features = jax.jit(lambda o, s: policy.network_input(
        jax.lax.dynamic_slice_in_dim(o, s, SCORE_CHUNK)))
    total = total_sq = 0.0
    for s in range(0, n, SCORE_CHUNK):
        x = np.asarray(features(obs, jnp.int32(s)), np.float64)[: n - s].reshape(
            min(SCORE_CHUNK, n - s), -1)
        total = total + x.sum(0)
        total_sq = total_sq + np.square(x).sum(0)
    mean = total / n
    std = np.sqrt(np.maximum(total_sq / n - np.square(mean), 0.0))
    shape = policy.obs_norm_shape()
    return mean.reshape(shape), std.reshape(shape)


# ----------------------------------------------------------------------------- the run
def plan(cfg: Config, program: BCProgram | None = None) -> dict[str, str]:
    """What a BC run of ``cfg`` will do, as banner rows (nothing is simulated or compiled)."""
    program = program or make_bc(cfg)
    space = program.env.observation_space(program.env.default_params)
    params = jax.eval_shape(program.policy.init, jax.random.PRNGKey(0),
                            jax.ShapeDtypeStruct((1, *space.shape), space.dtype))
    b = cfg.bc
    directory = run_dir(cfg)
    cache = cache_dir(cfg, directory)
    n_actions = program.policy.num_actions
    return {
        "run dir": str(directory),
        "replays": f"{replays_dir(cfg)} ({b.val_fraction:.0%} of the files held out for "
                   "validation)",
        "network": f"recipe {b.recipe}: {cfg.policy.kind}, {count_params(params):,} params, "
                   f"obs {cfg.env.obs_kind} {tuple(space.shape)}, input normalisation "
                   f"{'on (statistics of the training set)' if cfg.policy.obs_norm else 'off'}",
        "actions": f"{n_actions}, all valid in every state (PPO samples them unmasked); "
                   f"class weights {b.class_weights}",
        "training": f"{b.epochs} epochs, minibatches of {b.batch_size}, Adam lr {b.lr:g}",
        "pair cache": str(cache) if cache else "off (bc.cache)",
    }


def _check_resumable(directory: Path, cfg: Config, dataset: Dataset) -> None:
    saved = json.loads((directory / "config.json").read_text())
    resolved = saved.pop("_resolved", {}) or {}
    changed = {k: v for k, v in config_lib.diff(config_lib.from_dict(saved), cfg).items()
               if k not in RESUMABLE_CHANGES and not k.startswith(RESUMABLE_SECTIONS)}
    if changed:
        first = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in list(changed.items())[:3])
        raise ConfigError(f"{directory} holds a BC run with a different config ({first}); pass "
                          "--fresh to start over or set run.dir to a new directory")
    if (resolved.get("train_files"), resolved.get("val_files")) != (dataset.train_files,
                                                                    dataset.val_files):
        raise ConfigError(f"{directory} was trained on other replays than {replays_dir(cfg)} "
                          "holds now; pass --fresh to start over")


def _remove_previous(directory: Path) -> None:
    for stale in (directory / "checkpoints", directory / "tb", directory / "metrics.jsonl",
                  directory / "config.json"):
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.exists():
            stale.unlink()


def train_bc(cfg: Config, *, fresh: bool = False, print_fn: Callable[[str], None] = print
             ) -> BCResult:
    """Run (or resume) the BC run of ``cfg``: dataset, training, logs, checkpoints. SIGTERM or
    SIGINT between epochs saves a checkpoint and returns (a rerun resumes)."""
    with GracefulShutdown() as shutdown:
        return _train_bc(cfg, shutdown, fresh=fresh, print_fn=print_fn)


def _train_bc(cfg: Config, shutdown: GracefulShutdown, *, fresh: bool,
              print_fn: Callable[[str], None]) -> BCResult:
    program = make_bc(cfg)
    b, policy = cfg.bc, program.policy
    directory = run_dir(cfg)
    if fresh and directory.exists():
        _remove_previous(directory)
    try:
        files = replay_files(replays_dir(cfg))
    except ValueError as err:
        raise ConfigError(f"bc.replays: {err}") from None
    print_fn(f"dataset: {len(files)} replay files from {replays_dir(cfg)}")
    data = build_dataset(program.env, files, val_fraction=b.val_fraction, seed=cfg.run.seed,
                         cache_dir=cache_dir(cfg, directory), report=print_fn)
    n_train, n_val = len(data.train_actions), len(data.val_actions)
    if n_train == 0:
        raise ConfigError(f"no usable replay among the {len(files)} files of {replays_dir(cfg)} "
                          f"({len(data.skipped)} skipped)")
    print_fn(f"dataset: {n_train:,} training pairs from {len(data.train_files)} replays, "
             f"{n_val:,} validation pairs from {len(data.val_files)}, {len(data.skipped)} "
             f"skipped; {data.changed_in_block:,} pairs' blocks change input after their first "
             "frame (label noise of the frame skip)")

    batch = min(b.batch_size, n_train)
    if batch < b.batch_size:
        print_fn(f"bc.batch_size={b.batch_size} exceeds the {n_train} training pairs: "
                 f"minibatches of {batch}")
    dev = DeviceData(padded(data.train_obs), padded(data.train_actions), padded(data.val_obs),
                     padded(data.val_actions), n_train, n_val,
                     jnp.asarray(class_weights(data.train_actions, policy.num_actions,
                                               b.class_weights)), batch)

    checkpointer = Checkpointer(directory / "checkpoints", keep=cfg.checkpoint.keep,
                                every_updates=cfg.checkpoint.every_updates,
                                every_seconds=cfg.checkpoint.every_seconds)
    resumed_from = None
    try:
        if checkpointer.latest_step() is not None:
            _check_resumable(directory, cfg, data)
            state, _, resumed_from = checkpointer.restore(state_template(program))
            print_fn(f"resumed {directory} after epoch {resumed_from}")
        else:
            state = jax.jit(lambda o, k: init_state(program, o, k))(
                dev.train_obs[:1], jax.random.PRNGKey(cfg.run.seed))
            if cfg.policy.obs_norm:   # once, from the training set: a resumed run keeps its own
                mean, std = input_statistics(policy, dev.train_obs, n_train)
                state = state.replace(params=policy.set_obs_norm(state.params, mean, std))
        return _epochs(cfg, program, state, data, dev, directory, checkpointer, shutdown,
                       print_fn, resumed_from)
    finally:
        checkpointer.close()


def _epochs(cfg: Config, program: BCProgram, state: BCState, data: Dataset, dev: DeviceData,
            directory: Path, checkpointer: Checkpointer, shutdown: GracefulShutdown,
            print_fn: Callable[[str], None], resumed_from: int | None) -> BCResult:
    """Epochs until ``bc.epochs`` (or a signal), with the run's config, logs and checkpoints."""
    pairs_per_epoch = dev.pairs_per_epoch
    directory.mkdir(parents=True, exist_ok=True)
    config_dict = config_lib.to_dict(cfg)
    (directory / "config.json").write_text(json.dumps({**config_dict, "_resolved": {
        "trainer": TRAINER, "experiment": EXPERIMENT, "recipe": cfg.bc.recipe, "devices": 1,
        "replays": str(replays_dir(cfg)), "train_files": data.train_files,
        "val_files": data.val_files, "skipped": data.skipped,
        "train_pairs": dev.n_train, "val_pairs": dev.n_val}}, indent=2))
    epoch = int(state.epoch)
    logger = RunLogger(directory, tensorboard=cfg.logging.tensorboard, wandb=cfg.logging.wandb,
                       wandb_project=cfg.logging.wandb_project,
                       resume_step=epoch * pairs_per_epoch if resumed_from is not None else None,
                       run_name=directory.name, config=config_dict)
    metadata = run_metadata(config_dict)
    run_epoch = make_epoch(program, dev.n_train, dev.batch)
    score = make_scorer(program.policy)

    def scores(params, minibatch_loss=float("nan")) -> dict[str, float]:
        train_loss, train_acc = score(params, dev.train_obs, dev.train_actions, dev.n_train)
        val_loss, val_acc = score(params, dev.val_obs, dev.val_actions, dev.n_val)
        return {"bc/train_loss": train_loss, "bc/train_accuracy": train_acc,
                "bc/val_loss": val_loss, "bc/val_accuracy": val_acc,
                "bc/minibatch_loss": minibatch_loss}

    def save(e: int) -> None:
        checkpointer.save(e, state, {**metadata, "update": e, "agent_steps": e * pairs_per_epoch})

    last: dict[str, float] = {}
    try:
        if resumed_from is None:
            last = scores(state.params)
            logger.log(0, last, epoch=0)
            print_fn(_epoch_line(0, cfg.bc.epochs, last, 0.0))
        while epoch < cfg.bc.epochs and not shutdown.requested:
            t0 = time.perf_counter()
            state, minibatch_loss = run_epoch(state, dev.train_obs, dev.train_actions,
                                              dev.weights)
            epoch += 1
            last = scores(state.params, float(minibatch_loss))
            logger.log(epoch * pairs_per_epoch, last, epoch=epoch)
            print_fn(_epoch_line(epoch, cfg.bc.epochs, last, time.perf_counter() - t0))
            if epoch == cfg.bc.epochs or checkpointer.should_save(epoch):
                save(epoch)
        if checkpointer.latest_step() != epoch:   # stopped by a signal, or 0 epochs asked
            save(epoch)
    finally:
        logger.close()
    if shutdown.requested:
        print_fn(f"received {shutdown.signal_name}: saved the checkpoint of epoch {epoch} in "
                 f"{directory / 'checkpoints'}; rerun the same command to resume")
    return BCResult(directory, epoch, last, jax.device_get(state.params), data,
                    shutdown.requested, resumed_from)


def _epoch_line(epoch: int, epochs: int, m: dict[str, float], seconds: float) -> str:
    val = (f"val loss {m['bc/val_loss']:.4f}, val accuracy {m['bc/val_accuracy']:.3f}"
           if np.isfinite(m["bc/val_loss"]) else "no validation replays")
    head = "initial network" if epoch == 0 else f"epoch {epoch}/{epochs}"
    return (f"{head}: train loss {m['bc/train_loss']:.4f} (accuracy "
            f"{m['bc/train_accuracy']:.3f}), {val}" + (f" [{seconds:.1f} s]" if epoch else ""))


def ppo_command(cfg: Config, source: Path) -> str:
    """The ``experiments/npp.py`` command that trains PPO from ``source`` (this run or its
    artefact): the recipe plus every network or observation key this run changed from it."""
    changed = config_lib.diff(config_lib.get_recipe(cfg.bc.recipe), cfg)

    def text(v) -> str:
        if isinstance(v, bool):
            return str(v).lower()
        if isinstance(v, tuple):
            return ",".join(map(str, v))
        return str(v)

    keys = [f"{k}={text(v)}" for k, (_, v) in changed.items()
            if k.startswith(("policy.", "env.", "npp."))]
    override = f" --config-override {' '.join(keys)}" if keys else ""
    return f"python experiments/npp.py --recipe {cfg.bc.recipe} --init-from {source}{override}"
