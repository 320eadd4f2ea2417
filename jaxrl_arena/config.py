"""Typed configuration: a tree of frozen dataclasses, named recipes and ``key=value`` overrides.

Every field has a type annotation; overrides are parsed to that type (ints with ``_``, floats,
bools, tuples, enums as ``Literal``, ``auto`` where the field allows it). Mistakes raise
:class:`ConfigError` with a single line naming the bad key or value and what is allowed; the
CLI prints it and exits with status 2 before anything compiles.

Section marks (§) cite docs/specs/ (arena.md, npp.md).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import types
import typing
from typing import Any, Callable, Literal, Union

Auto = Literal["auto"]


class ConfigError(ValueError):
    """A one-line, user-facing configuration error."""


@dataclasses.dataclass(frozen=True)
class RunConfig:
    name: str = "auto"  # "auto": <experiment>_<recipe>_seed<seed>
    seed: int = 0
    total_timesteps: int = 500_000  # agent-steps (= env steps for one agent)
    dir: str = "auto"  # "auto": runs/<name>
    num_seeds: int = 1  # whole training runs vmapped in one jit
    updates_per_chunk: int = 10  # K: updates scanned inside one compiled call (at most)
    # JAX's persistent compilation cache: "auto" = <run dirs' parent>/.jax_cache, "off", or a path
    compile_cache: str = "auto"


@dataclasses.dataclass(frozen=True)
class EnvConfig:
    name: str = "CartPole-v1"
    # Auto-reset strategy (see jaxrl_arena/rollout.py): "optimistic" computes `reset_pool`
    # fresh resets per step and hands them to the envs that finished; "every_step" resets all
    # envs every step and selects (exact, but pays a full reset per env per step).
    # "pooled" keeps the pool across steps and regenerates only `reset_refresh` entries per
    # step (for envs whose reset is far dearer than a step: N++ level generation).
    # "auto": every_step for envs whose reset is cheap (`cheap_reset`), else optimistic.
    reset_strategy: Literal["auto", "optimistic", "every_step", "pooled"] = "auto"
    reset_pool: int | Auto = "auto"  # resets computed per step; auto = min(N, max(8, N // 16))
    reset_refresh: int | Auto = "auto"  # pooled: entries regenerated per step; auto = P // 16
    max_steps: int = 0  # episode limit override; 0 keeps the env's own
    # Project envs (arena): shapes are constructor arguments, the task is data.
    num_agents: int = 0  # 0 keeps the env's default (arena: 24)
    # arena: "dense" [27,11,11] box or "tokens" [200,3]; npp: "state", "state_local", "grid"
    obs_kind: Literal["dense", "tokens", "state", "state_local", "grid"] = "dense"
    # Writing resets into the finished envs: "select" over every env, "scatter" of the finished
    # rows only (a loop whose predicate goes to the host on GPUs), "auto" by the rows' size.
    reset_write: Literal["auto", "select", "scatter"] = "auto"
    # V(final observation) for truncated episodes: "dense" runs the policy on every env's final
    # observation each step, "chunked" only on the truncated ones (a loop, a host round trip per
    # step on GPUs), "cond" only at steps where one truncates (a branch: a round trip too);
    # "auto": dense for recurrent policies and small batches, chunked above (rollout.py).
    truncation_bootstrap: Literal["auto", "dense", "chunked", "cond"] = "auto"
    desync_episodes: bool = True  # arena: each env's first episode ends at a random horizon
    combat: bool = True  # arena: attacks cost 1 laser (on) or 100 (off)
    easy_altar: bool = True  # arena: altar takes 1 battery (easy) or the standard recipe
    shaped_rewards: bool = True  # arena: shaped item rewards or hearts only
    stage: str = ""  # npp: train on this generator stage only ("" = every stage as a task)


@dataclasses.dataclass(frozen=True)
class PolicyConfig:
    kind: Literal["mlp", "cnn", "lstm"] = "mlp"
    hidden_sizes: tuple[int, ...] = (64, 64)
    activation: Literal["tanh", "relu"] = "tanh"
    cnn_channels: tuple[int, ...] = (64, 64)
    cnn_kernels: tuple[int, ...] = (5, 3)
    cnn_strides: tuple[int, ...] = (3, 1)
    # Biases in the conv layers. Without them the bias add over every conv activation and the
    # bias gradient's reduction over them are gone: XLA fuses neither into its matrix products
    # (H100, learner of the 2x2-patch (32, 64) torso: 496 -> 417 ms per 1M-sample update).
    cnn_bias: bool = True
    lstm_size: int = 128
    lstm_layers: int = 2
    actor_hidden: int = 512
    critic_hidden: int = 1024
    # Fixed input scaling (uint8 boxes): obs * scale before the torso. "env" uses the
    # environment's per-channel norms when it provides them.
    obs_scale: Literal["none", "env"] = "env"
    # Arithmetic of the layers (parameters, optimizer and losses stay float32): "bfloat16"
    # runs convolutions and matrix products at the tensor cores' bf16 rate.
    compute_dtype: Literal["float32", "bfloat16"] = "float32"


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    num_envs: int | Auto = 64
    num_steps: int = 128  # rollout length T
    num_minibatches: int = 4
    # Agent-steps per minibatch; when > 0 it sets num_minibatches = batch // minibatch_size
    # (so the minibatch stays fixed when num_envs changes, e.g. with num_envs=auto).
    minibatch_size: int = 0
    update_epochs: int = 4
    lr: float = 2.5e-4
    lr_schedule: Literal["constant", "linear", "cosine"] = "constant"
    lr_final_fraction: float = 0.0  # lr at the end of the run, as a fraction of lr
    adam_eps: float = 1e-5
    adam_b1: float = 0.9
    adam_b2: float = 0.999
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_coef: float = 0.2
    clip_vloss: bool = True
    vf_clip_coef: float = 0.2
    ent_coef: float = 0.01
    ent_schedule: Literal["constant", "linear"] = "constant"
    ent_final_fraction: float = 1.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    norm_adv: bool = True
    bptt_horizon: int = 0  # recurrent sequence length; 0 = num_steps
    grad_accum_steps: int = 1  # micro-batches per minibatch (explicit gradient accumulation)
    max_consecutive_skips: int = 10  # non-finite updates in a row before the run stops
    auto_memory_fraction: float = 0.6  # num_envs=auto: share of device memory to fill
    auto_max_envs: int = 1 << 17


@dataclasses.dataclass(frozen=True)
class CurriculumConfig:
    """Which task each env plays next (jaxrl_arena/curriculum/). ``None`` = the kind's
    default (the spec's numbers; see ``jaxrl_arena.curriculum.base.LP_KNOBS`` etc.)."""

    kind: Literal["uniform", "learning_progress", "arena_lp", "arena_uniform", "staged"] = "uniform"
    # Learning progress (arena.md §12.2 with the §12.4 corrections)
    ema_timescale: float | None = None  # 0.001
    progress_smoothing: float | None = None  # 0.05
    num_active_tasks: int | None = None  # 16 (accepted; EMAs advance per task)
    rand_task_rate: float | None = None  # 0.25, mixed into episode sampling
    sample_threshold: int | None = None  # 10 outcomes per EMA step
    memory: int | None = None  # 25 outcomes per task
    min_outcomes: int | None = None  # = sample_threshold: below it a task is explored
    explore_rate: float | None = None  # 0.2
    explore_boost: float | None = None  # 2.0
    score_min: float | None = None  # score map: clip((return - min) / (max - min), 0, 1)
    score_max: float | None = None  # 1.0 for named tasks, 20.0 for arena_lp (ARENA_SCORE_MAX)
    seed: int | None = None  # 0
    # Pool of live tasks over a generated space (arena_lp)
    pool_size: int | None = None  # 256
    evict_per_update: int | None = None  # 1
    evict_min_outcomes: int | None = None  # 2 * memory
    # Staged thresholds (npp.md §10)
    window: int | None = None  # 50
    check_every: int | None = None  # 10
    early_threshold: float | None = None  # 0.90
    early_min_episodes: int | None = None  # 50
    regression_min_episodes: int | None = None  # 200
    success_score: float | None = None  # 0.5


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Held-out evaluation (jaxrl_arena/evaluation.py): the same fixed episodes every time."""

    every_updates: int = 0  # evaluate every n-th update (at chunk ends) and at the end; 0: off
    episodes: int = 32  # per evaluation task (N++: held-out levels per stage)
    max_steps: int = 0  # agent steps before an unfinished episode is scored; 0: the env's limit
    deterministic: bool = False  # argmax actions instead of sampling the policy
    seed: int = 12345  # reset keys of the evaluation episodes (fixed across evaluations)


@dataclasses.dataclass(frozen=True)
class LoggingConfig:
    log_every: int = 1  # log every n-th update
    tensorboard: bool = True
    wandb: bool = False
    wandb_project: str = "jaxrl_arena"
    progress: bool = True
    per_run_metrics: bool = True  # with several seeds/variants, also log each run's scalars


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
    enabled: bool = True
    every_updates: int = 0  # 0: not by count
    every_seconds: float = 600.0  # 0: not by time
    keep: int = 3


@dataclasses.dataclass(frozen=True)
class Config:
    run: RunConfig = RunConfig()
    env: EnvConfig = EnvConfig()
    policy: PolicyConfig = PolicyConfig()
    ppo: PPOConfig = PPOConfig()
    curriculum: CurriculumConfig = CurriculumConfig()
    eval: EvalConfig = EvalConfig()
    logging: LoggingConfig = LoggingConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()


# ----------------------------------------------------------------------------- key paths
def _fields(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def all_keys(cfg: Any = Config) -> list[str]:
    """Every dotted leaf key of the config tree."""
    cls = cfg if isinstance(cfg, type) else type(cfg)
    keys = []
    for name, tp in _fields(cls).items():
        if dataclasses.is_dataclass(tp):
            keys += [f"{name}.{k}" for k in all_keys(tp)]
        else:
            keys.append(name)
    return keys


def get(cfg: Any, key: str) -> Any:
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


def _field_type(key: str) -> Any:
    cls: Any = Config
    parts = key.split(".")
    for part in parts[:-1]:
        cls = _fields(cls)[part]
    return _fields(cls)[parts[-1]]


def replace(cfg: Any, key: str, value: Any) -> Any:
    """Functional update of one dotted key."""
    head, _, rest = key.partition(".")
    if not rest:
        return dataclasses.replace(cfg, **{head: value})
    return dataclasses.replace(cfg, **{head: replace(getattr(cfg, head), rest, value)})


# ----------------------------------------------------------------------------- parsing
def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"a comma-separated tuple of {_type_name(typing.get_args(tp)[0])}"
    return {int: "an int", float: "a float", bool: "a bool (true/false)", str: "a string",
            type(None): "none"}.get(tp, str(tp))


def _parse_scalar(text: str, tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin is Literal:
        for allowed in typing.get_args(tp):
            if text == str(allowed):
                return allowed
        raise ValueError
    if origin in (Union, types.UnionType):
        for option in typing.get_args(tp):
            try:
                return _parse_scalar(text, option)
            except ValueError:
                continue
        raise ValueError
    if origin is tuple:
        (item_tp, *_) = typing.get_args(tp)
        body = text.strip().strip("()[]")
        if not body:
            return ()
        return tuple(_parse_scalar(item.strip(), item_tp) for item in body.split(",") if item.strip())
    if tp is type(None):
        if text.lower() in ("none", "null", "default"):
            return None
        raise ValueError
    if tp is bool:
        lowered = text.lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise ValueError
    if tp is int:
        value = float(text.replace("_", "")) if "e" in text.lower() else int(text.replace("_", ""))
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError
            value = int(value)
        return value
    if tp is float:
        value = float(text.replace("_", ""))
        return value
    if tp is str:
        return text
    raise ValueError


def parse_value(key: str, text: str) -> Any:
    tp = _field_type(key)
    try:
        return _parse_scalar(text, tp)
    except (ValueError, TypeError):
        raise ConfigError(
            f"bad value {text!r} for {key}: expected {_type_name(tp)}"
        ) from None


def check_key(key: str, keys: list[str] | None = None) -> None:
    keys = all_keys() if keys is None else keys
    if key in keys:
        return
    close = difflib.get_close_matches(key, keys, n=3, cutoff=0.5)
    if not close:
        # Also match on the last component ("lr" -> "ppo.lr").
        close = [k for k in keys if k.split(".")[-1] == key.split(".")[-1]][:3]
    hint = f"; did you mean {', '.join(close)}?" if close else f"; valid sections: {', '.join(f.name for f in dataclasses.fields(Config))}"
    raise ConfigError(f"unknown config key {key!r}{hint}")


def split_override(item: str) -> tuple[str, str]:
    if "=" not in item:
        raise ConfigError(f"bad override {item!r}: expected dotted.key=value")
    key, value = item.split("=", 1)
    return key.strip(), value.strip()


def apply_overrides(cfg: Config, items: list[str]) -> Config:
    keys = all_keys()
    for item in items:
        key, text = split_override(item)
        check_key(key, keys)
        cfg = replace(cfg, key, parse_value(key, text))
    return cfg


# ----------------------------------------------------------------------------- recipes
RECIPES: dict[str, Callable[[], Config]] = {}


def recipe(name: str):
    """Register ``fn() -> Config`` as the recipe ``name``."""

    def register(fn: Callable[[], Config]) -> Callable[[], Config]:
        RECIPES[name] = fn
        return fn

    return register


def get_recipe(name: str) -> Config:
    if name not in RECIPES:
        raise ConfigError(f"unknown recipe {name!r}; known recipes: {', '.join(sorted(RECIPES))}")
    return RECIPES[name]()


@recipe("gymnax_default")
def _gymnax_default() -> Config:
    return Config()


@recipe("cartpole")
def _cartpole() -> Config:
    """PureJaxRL's CartPole settings: reaches ~500 return within 500k steps."""
    return Config(
        run=RunConfig(total_timesteps=500_000, updates_per_chunk=10),
        env=EnvConfig(name="CartPole-v1"),
        policy=PolicyConfig(kind="mlp", hidden_sizes=(64, 64), activation="tanh"),
        ppo=PPOConfig(
            num_envs=4, num_steps=128, num_minibatches=4, update_epochs=4, lr=2.5e-4,
            lr_schedule="linear", gamma=0.99, gae_lambda=0.95, clip_coef=0.2, ent_coef=0.01,
            vf_coef=0.5, max_grad_norm=0.5,
        ),
    )


@recipe("arena_basic_easy_shaped")
def _arena_basic_easy_shaped() -> Config:
    """Era-B arena (easy altar, shaped rewards, combat on, 24 agents) with the LSTM "fast"
    policy over the dense [27, 11, 11] box and the Era-B PPO defaults (spec arena.md §13)."""
    return Config(
        run=RunConfig(total_timesteps=250_000, updates_per_chunk=5),
        env=EnvConfig(name="arena", num_agents=24, obs_kind="dense", desync_episodes=True,
                      combat=True, easy_altar=True, shaped_rewards=True),
        policy=PolicyConfig(kind="lstm", cnn_channels=(64, 64), cnn_kernels=(5, 3),
                            cnn_strides=(3, 1), hidden_sizes=(128, 128), lstm_size=128,
                            lstm_layers=2, actor_hidden=512, critic_hidden=1024, obs_scale="env"),
        ppo=PPOConfig(
            num_envs="auto", num_steps=64, bptt_horizon=64, minibatch_size=16_384,
            update_epochs=1, lr=0.001153637, adam_eps=3.186531e-07, gamma=0.977,
            gae_lambda=0.891477, clip_coef=0.264407, vf_coef=0.897619, vf_clip_coef=0.1,
            ent_coef=0.01, max_grad_norm=0.5,
        ),
        # The evaluation suites arena/basic and arena/combat (arena.md §12.1), 8 fixed maps each.
        eval=EvalConfig(every_updates=10, episodes=8),
        checkpoint=CheckpointConfig(every_seconds=300.0),
    )


@recipe("arena_ff")
def _arena_ff() -> Config:
    """The arena recipe with a feed-forward CNN policy (same torso and heads, no LSTM)."""
    cfg = _arena_basic_easy_shaped()
    return dataclasses.replace(cfg, policy=dataclasses.replace(cfg.policy, kind="cnn"))


@recipe("arena_lp")
def _arena_lp() -> Config:
    """The arena recipe over the 640,000-task bucketed space with learning progress."""
    cfg = _arena_basic_easy_shaped()
    return dataclasses.replace(cfg, curriculum=CurriculumConfig(kind="arena_lp"))


@recipe("arena_uniform")
def _arena_uniform() -> Config:
    """The arena recipe over the 640,000-task bucketed space, sampled uniformly (the
    baseline of arena_lp)."""
    cfg = _arena_basic_easy_shaped()
    return dataclasses.replace(cfg, curriculum=CurriculumConfig(kind="arena_uniform"))


@recipe("npp_simplest")
def _npp_simplest() -> Config:
    """N++ on generated `simplest` levels: MLP over the state + local-grid features, npp-rl's
    PPO settings (spec npp.md §12) with a larger env batch."""
    return Config(
        run=RunConfig(total_timesteps=2_000_000, updates_per_chunk=5),
        # Level generation costs ~10 env steps (CPU), so resets come from a persistent pool of
        # 256 ready levels of which 8 are regenerated per step (rollout.py, "pooled").
        env=EnvConfig(name="npp", obs_kind="state_local", stage="simplest", max_steps=20_000,
                      reset_strategy="pooled", reset_pool=256, reset_refresh=8),
        policy=PolicyConfig(kind="mlp", hidden_sizes=(256, 256, 128), activation="tanh"),
        # ent_coef 0.01 (npp-rl: 0.05): on the H100 A/B (docs/BENCHMARKS.md) both reach 100%
        # held-out success on `simplest`; 0.01 gets there first (100% at 5.2M vs 6.6M steps).
        ppo=PPOConfig(num_envs="auto", num_steps=128, num_minibatches=4, update_epochs=4,
                      lr=3e-4, gamma=0.99, gae_lambda=0.92, clip_coef=0.2, vf_clip_coef=1.0,
                      ent_coef=0.01, vf_coef=0.5, max_grad_norm=2.0),
        # Held-out levels of each trained stage (eval/success_rate/<stage>); an episode not won
        # within 1,000 steps (4,000 frames; generated levels need a few hundred) counts as a fail.
        eval=EvalConfig(every_updates=10, episodes=64, max_steps=1000),
    )


@recipe("npp_curriculum")
def _npp_curriculum() -> Config:
    """N++ through the staged curriculum (simplest → … → mine_heavy), spec npp.md §10."""
    cfg = _npp_simplest()
    return dataclasses.replace(
        cfg, env=dataclasses.replace(cfg.env, stage=""),
        curriculum=CurriculumConfig(kind="staged"))


@recipe("npp_grid")
def _npp_grid() -> Config:
    """N++ on generated `simplest` levels from the grid observation (uint8 [10, 25, 44]: local
    and global tile/entity planes, the state features), sized for throughput on one GPU (issue
    #6: >= 2M env-steps/s end to end): a bf16 CNN of one 4 x 4-patch convolution without bias
    (25 x 44 -> 6 x 11 x 64, as a matrix product) -> 256, up to 131,072 envs x T = 8 (1M
    env-steps per update), each rollout's pool replacements generated in one batch (pooled
    resets, auto sizes), 3 epochs x 4 minibatches. On the H100: 2.1M env-steps/s, and held-out
    `simplest` solved in about the seconds the (32, 64) 2 x 2-patch CNN with biases needed at
    32,768 x 32 and 1.0M env-steps/s (4 epochs here: 1.9M env-steps/s, same seconds; one seed
    each, docs/BENCHMARKS.md). Held-out evaluation every 20 updates (~10 s of training): 64
    episodes take ~5 s while the policy still fails them."""
    cfg = _npp_simplest()
    return dataclasses.replace(
        cfg,
        env=dataclasses.replace(cfg.env, obs_kind="grid", reset_pool="auto", reset_refresh="auto"),
        policy=PolicyConfig(kind="cnn", cnn_channels=(64,), cnn_kernels=(4,), cnn_strides=(4,), cnn_bias=False,
                            hidden_sizes=(256,), actor_hidden=128, critic_hidden=256,
                            compute_dtype="bfloat16"),
        ppo=dataclasses.replace(cfg.ppo, num_steps=8, update_epochs=3, auto_max_envs=131072),
        run=dataclasses.replace(cfg.run, total_timesteps=200_000_000, updates_per_chunk=10),
        eval=dataclasses.replace(cfg.eval, every_updates=20),
    )


def resolve_minibatches(cfg: Config, num_agents: int) -> Config:
    """Turn ``ppo.minibatch_size`` into ``ppo.num_minibatches`` (needs num_envs resolved)."""
    ppo = cfg.ppo
    if ppo.minibatch_size <= 0 or ppo.num_envs == "auto":
        return cfg
    batch = ppo.num_envs * num_agents * ppo.num_steps
    if batch % ppo.minibatch_size:
        raise ConfigError(
            f"batch {batch} (num_envs*agents*num_steps) is not divisible by "
            f"ppo.minibatch_size={ppo.minibatch_size}"
        )
    return replace(cfg, "ppo.num_minibatches", batch // ppo.minibatch_size)


def resolve_reset_strategy(cfg: Config, cheap_reset: bool) -> Config:
    """``env.reset_strategy=auto``: ``every_step`` for envs that declare a cheap reset,
    ``optimistic`` otherwise."""
    if cfg.env.reset_strategy != "auto":
        return cfg
    return replace(cfg, "env.reset_strategy", "every_step" if cheap_reset else "optimistic")


# ----------------------------------------------------------------------------- validation
def validate(cfg: Config, *, num_agents: int = 1, num_devices: int = 1) -> None:
    """Consistency checks that need no compilation (num_envs must be resolved)."""
    ppo = cfg.ppo
    positive = {
        "ppo.num_steps": ppo.num_steps,
        "ppo.num_minibatches": ppo.num_minibatches,
        "ppo.update_epochs": ppo.update_epochs,
        "ppo.grad_accum_steps": ppo.grad_accum_steps,
        "run.num_seeds": cfg.run.num_seeds,
        "run.updates_per_chunk": cfg.run.updates_per_chunk,
        "run.total_timesteps": cfg.run.total_timesteps,
        "checkpoint.keep": cfg.checkpoint.keep,
        "logging.log_every": cfg.logging.log_every,
        "eval.episodes": cfg.eval.episodes,
    }
    if ppo.num_envs != "auto":
        positive["ppo.num_envs"] = ppo.num_envs
    for key, value in positive.items():
        if value < 1:
            raise ConfigError(f"{key}={value} must be >= 1")
    for key in ("eval.every_updates", "eval.max_steps"):
        if get(cfg, key) < 0:
            raise ConfigError(f"{key}={get(cfg, key)} must be >= 0")
    for key in ("ppo.gamma", "ppo.gae_lambda"):
        value = get(cfg, key)
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"{key}={value} must be in [0, 1]")
    if ppo.lr <= 0:
        raise ConfigError(f"ppo.lr={ppo.lr} must be > 0")
    pol = cfg.policy
    if not len(pol.cnn_channels) == len(pol.cnn_kernels) == len(pol.cnn_strides):
        raise ConfigError(
            f"policy.cnn_channels={list(pol.cnn_channels)}, cnn_kernels={list(pol.cnn_kernels)} and "
            f"cnn_strides={list(pol.cnn_strides)} must have one entry per conv layer (equal lengths)"
        )
    if ppo.num_envs == "auto":
        return
    if ppo.num_envs % num_devices:
        raise ConfigError(
            f"ppo.num_envs={ppo.num_envs} is not divisible by the {num_devices} devices"
        )
    rows = ppo.num_envs * num_agents // num_devices  # agent rows per device
    if cfg.policy.kind == "lstm":
        horizon = ppo.bptt_horizon or ppo.num_steps
        if ppo.num_steps % horizon:
            raise ConfigError(
                f"ppo.num_steps={ppo.num_steps} is not divisible by ppo.bptt_horizon={horizon}"
            )
        sequences = rows * (ppo.num_steps // horizon)
        if sequences % ppo.num_minibatches:
            raise ConfigError(
                f"{sequences} sequences per device (num_envs*agents/devices*num_steps/bptt) "
                f"are not divisible by ppo.num_minibatches={ppo.num_minibatches}"
            )
        per_minibatch = sequences // ppo.num_minibatches
    else:
        batch = rows * ppo.num_steps
        if batch % ppo.num_minibatches:
            raise ConfigError(
                f"batch {batch} (num_envs*agents*num_steps per device) is not divisible by "
                f"ppo.num_minibatches={ppo.num_minibatches}"
            )
        per_minibatch = batch // ppo.num_minibatches
    if per_minibatch % ppo.grad_accum_steps:
        raise ConfigError(
            f"minibatch of {per_minibatch} is not divisible by "
            f"ppo.grad_accum_steps={ppo.grad_accum_steps}"
        )


# ----------------------------------------------------------------------------- (de)serialise
def to_dict(cfg: Any) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def from_dict(data: dict[str, Any], cls: Any = Config) -> Any:
    kwargs = {}
    for name, tp in _fields(cls).items():
        if name not in data:
            continue
        value = data[name]
        if dataclasses.is_dataclass(tp):
            value = from_dict(value, tp)
        elif typing.get_origin(tp) is tuple:
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def flat(cfg: Any) -> dict[str, Any]:
    return {key: get(cfg, key) for key in all_keys(cfg)}


def diff(a: Config, b: Config) -> dict[str, tuple[Any, Any]]:
    fa, fb = flat(a), flat(b)
    return {k: (fa[k], fb[k]) for k in fa if fa[k] != fb[k]}
