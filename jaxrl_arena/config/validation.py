"""Config checks (``check_values``: each value as set; ``validate``: with the env and devices)
and the keys an env and its devices decide (``resolve_*``).

The env decides ``env.reset_strategy=auto`` and, with the env count, the split of the batch
into ``ppo.minibatch_size`` minibatches. ``ppo.num_envs=auto`` needs compiled programs, so
:func:`jaxrl_arena.autosize.resolve` sizes it and then calls :func:`resolve_static`: a run's
config is resolved there once, and ``make_train`` only validates a resolved one (``pending``).
"""

from __future__ import annotations

import math

from jaxrl_arena.config.overrides import flat, get, replace
from jaxrl_arena.config.schema import ArenaConfig, Config, ConfigError, NppConfig

# Sections only the env of the same name reads: under another env a changed value would be
# ignored silently, so validate refuses it.
ENV_SECTIONS = {"arena": ArenaConfig(), "npp": NppConfig()}

# Each key's allowed values as the user sets them; checked before anything is derived from
# them (a batch size, a minibatch split), so an error names the key that was set.
AT_LEAST_ONE = ("ppo.num_steps", "ppo.num_minibatches", "ppo.update_epochs",
                "ppo.grad_accum_steps", "ppo.max_consecutive_skips", "ppo.auto_max_envs",
                "run.num_seeds", "run.updates_per_chunk", "run.total_timesteps",
                "checkpoint.keep", "logging.log_every", "eval.episodes", "npp.frame_skip")
AT_LEAST_ZERO = ("ppo.minibatch_size", "ppo.bptt_horizon", "eval.every_updates", "eval.max_steps",
                 "env.max_steps", "npp.max_frames", "checkpoint.every_updates",
                 "checkpoint.every_seconds", "run.max_rollbacks", "ppo.ent_coef", "ppo.vf_coef",
                 "ppo.lr_final_fraction", "ppo.ent_final_fraction",
                 "eval.gif_every", "eval.gif_steps")
ABOVE_ZERO = ("ppo.lr", "ppo.adam_eps", "ppo.max_grad_norm", "ppo.clip_coef", "ppo.vf_clip_coef")
UNIT_INTERVAL = ("ppo.gamma", "ppo.gae_lambda", "npp.reward_pbrs_gamma")  # [0, 1]
# Tuples whose every entry must lie in [0, 1] (rates, probabilities) or be >= 0 (counts).
UNIT_INTERVAL_TUPLES = ("curriculum.stage_thresholds", "curriculum.stage_regression",
                        "curriculum.mix_edges", "curriculum.mix_probs")
AT_LEAST_ZERO_TUPLES = ("curriculum.stage_min_episodes",)
BELOW_ONE = ("ppo.adam_b1", "ppo.adam_b2")  # [0, 1)
FRACTIONS = ("ppo.auto_memory_fraction",)  # (0, 1]
SHRINK_FACTORS = ("run.rollback_lr_factor",)  # (0, 1)


# Curriculum knobs and the kinds that read them: set under another kind, a knob would be
# ignored silently, so validate refuses it.
_LP = ("ema_timescale", "progress_smoothing", "rand_task_rate", "sample_threshold", "memory",
       "min_outcomes", "explore_rate", "explore_boost", "score_min", "score_max", "seed")
_STAGED = ("window", "check_every", "early_threshold", "early_min_episodes",
           "regression_min_episodes", "success_score", "stage_thresholds", "stage_min_episodes",
           "stage_regression", "mix_edges", "mix_probs")
CURRICULUM_KNOB_KINDS = {
    **{k: ("learning_progress", "arena_lp") for k in _LP},
    **{k: ("arena_lp",) for k in ("pool_size", "evict_per_update", "evict_min_outcomes")},
    **{k: ("staged",) for k in _STAGED},
}


def resolve_minibatches(cfg: Config, num_agents: int) -> Config:
    """Turn ``ppo.minibatch_size`` into ``ppo.num_minibatches`` (needs num_envs resolved)."""
    check_values(cfg)  # a bad size is reported as set, not as the batch derived from it
    ppo = cfg.ppo
    if ppo.minibatch_size <= 0 or ppo.num_envs == "auto":
        return cfg
    batch = ppo.num_envs * num_agents * ppo.num_steps
    if batch % ppo.minibatch_size:
        raise ConfigError(
            f"batch {batch} (num_envs*agents*num_steps) is not divisible by "
            f"ppo.minibatch_size={ppo.minibatch_size}"
        )
    if ppo.num_minibatches == batch // ppo.minibatch_size:
        return cfg
    return replace(cfg, "ppo.num_minibatches", batch // ppo.minibatch_size)


def resolve_reset_strategy(cfg: Config, cheap_reset: bool) -> Config:
    """``env.reset_strategy=auto``: ``every_step`` for envs that declare a cheap reset,
    ``optimistic`` otherwise."""
    if cfg.env.reset_strategy != "auto":
        return cfg
    return replace(cfg, "env.reset_strategy", "every_step" if cheap_reset else "optimistic")


def pending(cfg: Config, num_agents: int) -> list[str]:
    """The keys an env and its devices still have to decide: ``ppo.num_envs`` (auto),
    ``env.reset_strategy`` (auto), ``ppo.num_minibatches`` (set by ``ppo.minibatch_size``).
    Empty for a resolved config."""
    ppo = cfg.ppo
    keys = []
    if ppo.num_envs == "auto":
        keys.append("ppo.num_envs")
    if cfg.env.reset_strategy == "auto":
        keys.append("env.reset_strategy")
    if ppo.minibatch_size > 0 and (
            ppo.num_envs == "auto"
            or ppo.num_minibatches * ppo.minibatch_size != ppo.num_envs * num_agents * ppo.num_steps):
        keys.append("ppo.num_minibatches")
    return keys


def resolve_static(cfg: Config, *, num_agents: int, cheap_reset: bool, num_devices: int) -> Config:
    """The config with the keys that need no compiled program resolved (reset strategy,
    minibatches), validated; ``ppo.num_envs`` must already be a number."""
    if cfg.ppo.num_envs == "auto":
        raise ConfigError("ppo.num_envs=auto must be resolved first: "
                          "jaxrl_arena.autosize.resolve(cfg, env, devices)")
    cfg = resolve_reset_strategy(cfg, cheap_reset)
    cfg = resolve_minibatches(cfg, num_agents)
    validate(cfg, num_agents=num_agents, num_devices=num_devices)
    return cfg


def validate(cfg: Config, *, num_agents: int = 1, num_devices: int = 1) -> None:
    """Consistency checks that need no compilation (those of the minibatch split need
    ``ppo.num_envs`` resolved)."""
    for section, default in ENV_SECTIONS.items():
        if cfg.env.name != section:
            changed = [k for k, v in flat(getattr(cfg, section)).items() if v != get(default, k)]
            if changed:
                raise ConfigError(f"{section}.{changed[0]} applies to env.name={section} only, "
                                  f"not {cfg.env.name!r}")
    if cfg.curriculum.num_active_tasks is not None:
        raise ConfigError(
            f"curriculum.num_active_tasks={cfg.curriculum.num_active_tasks} has no effect: "
            "learning progress refreshes every task as soon as it has new outcomes, and the "
            "arena_lp pool's size is curriculum.pool_size")
    kind = cfg.curriculum.kind
    for knob, kinds in CURRICULUM_KNOB_KINDS.items():
        value = getattr(cfg.curriculum, knob)
        if value is not None and kind not in kinds:
            raise ConfigError(f"curriculum.{knob} applies to curriculum.kind="
                              f"{' or '.join(kinds)} only, not {kind!r}")
    check_values(cfg)
    ppo = cfg.ppo
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
    if ppo.advantage == "era_b" and ppo.num_steps % (ppo.bptt_horizon or ppo.num_steps):
        raise ConfigError(f"ppo.advantage=era_b cuts the rollout into segments of "
                          f"ppo.bptt_horizon={ppo.bptt_horizon} steps: ppo.num_steps="
                          f"{ppo.num_steps} is not divisible by it")
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


def check_values(cfg: Config) -> None:
    """Refuse (one line naming the key as set) sizes that are not positive, and numbers that
    are not finite or outside their range; needs nothing resolved."""
    num_envs = cfg.ppo.num_envs
    if num_envs != "auto" and (isinstance(num_envs, bool) or not isinstance(num_envs, int)
                               or num_envs < 1):
        raise ConfigError(f'ppo.num_envs={num_envs} must be a positive int or "auto"')
    for key, value in flat(cfg).items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{key}={value} must be a finite number")
    ranges = ((AT_LEAST_ONE, lambda v: v >= 1, "must be >= 1"),
              (AT_LEAST_ZERO, lambda v: v >= 0, "must be >= 0"),
              (ABOVE_ZERO, lambda v: v > 0, "must be > 0"),
              (UNIT_INTERVAL, lambda v: 0 <= v <= 1, "must be in [0, 1]"),
              (BELOW_ONE, lambda v: 0 <= v < 1, "must be in [0, 1)"),
              (FRACTIONS, lambda v: 0 < v <= 1, "must be in (0, 1]"),
              (SHRINK_FACTORS, lambda v: 0 < v < 1, "must be in (0, 1)"))
    for keys, allowed, requirement in ranges:
        for key in keys:
            value = get(cfg, key)
            if not allowed(value):
                raise ConfigError(f"{key}={value} {requirement}")
    for keys, allowed, requirement in ((UNIT_INTERVAL_TUPLES, lambda v: 0 <= v <= 1,
                                        "must be in [0, 1]"),
                                       (AT_LEAST_ZERO_TUPLES, lambda v: v >= 0, "must be >= 0")):
        for key in keys:
            values = get(cfg, key)
            bad = [v for v in values or () if not allowed(v)]
            if bad:
                raise ConfigError(f"{key}={','.join(map(str, values))}: {bad[0]} {requirement}")
