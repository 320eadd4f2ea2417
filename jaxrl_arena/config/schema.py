"""The configuration schema: a tree of frozen dataclasses, one section per concern.

``env`` holds what every environment reads; ``arena`` and ``npp`` hold the keys only that env
reads, so each key has one meaning whatever the env. ``ConfigError`` is the one-line,
user-facing error every config mistake raises (the CLI prints it and exits with status 2).

Section marks (§) cite docs/specs/ (arena.md, npp.md).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

Auto = Literal["auto"]


class ConfigError(ValueError):
    """A one-line, user-facing configuration error."""


@dataclasses.dataclass(frozen=True)
class RunConfig:
    name: str = "auto"  # "auto": <experiment>_<recipe>_seed<seed>
    seed: int = 0  # the run's random seed (seeds of vmapped runs count up from it)
    total_timesteps: int = 500_000  # agent-steps (= env steps for one agent)
    dir: str = "auto"  # "auto": runs/<name>
    num_seeds: int = 1  # whole training runs vmapped in one jit
    updates_per_chunk: int = 10  # K: updates scanned inside one compiled call (at most)
    # JAX's persistent compilation cache: "auto" = <run dirs' parent>/.jax_cache, "off", or a path
    compile_cache: str = "auto"
    # Start from another policy: a policy artefact directory or a run directory (its latest
    # checkpoint); every parameter must match by name and shape (jaxrl_arena.policy_artifact)
    # except those matching an init_from_allow glob (e.g. "params/critic_out/*").
    init_from: str = ""
    init_from_allow: tuple[str, ...] = ()  # parameter globs init_from may leave fresh
    # What ppo.max_consecutive_skips non-finite updates in a row do: "stop" (exit 3; a rerun
    # resumes from the last known-good checkpoint) or "rollback" to that checkpoint in-process
    # (docs/RELIABILITY.md).
    on_diverge: Literal["stop", "rollback"] = "stop"
    # Rollback: the diverged runs' ppo.lr is multiplied by this factor, in (0, 1).
    rollback_lr_factor: float = 0.5
    # Rollback: at most this many rollbacks, then the run stops as with "stop".
    max_rollbacks: int = 3


@dataclasses.dataclass(frozen=True)
class EnvConfig:
    """What every environment reads (the env-specific keys are in ``arena`` and ``npp``)."""

    name: str = "CartPole-v1"  # "arena", "npp", or a gymnax env id
    # Auto-reset strategy (see jaxrl_arena/rollout.py): "optimistic" computes `reset_pool`
    # fresh resets per step and hands them to the envs that finished; "every_step" resets all
    # envs every step and selects (exact, but pays a full reset per env per step).
    # "pooled" keeps the pool across steps and regenerates only `reset_refresh` entries per
    # step (for envs whose reset is far dearer than a step: N++ level generation).
    # "auto": every_step for envs whose reset is cheap (`cheap_reset`), else optimistic.
    reset_strategy: Literal["auto", "optimistic", "every_step", "pooled"] = "auto"
    reset_pool: int | Auto = "auto"  # resets computed per step; auto = min(N, max(8, N // 16))
    reset_refresh: int | Auto = "auto"  # pooled: entries regenerated per step; auto = P // 16
    # Episode limit in agent steps, for every env; 0 keeps the env's own (arena: 1,000; N++:
    # npp.max_frames). An N++ step holds its action for 4 frames (the frame skip), so there the
    # limit is max_steps x 4 frames; N++ refuses it next to a nonzero npp.max_frames.
    max_steps: int = 0
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


@dataclasses.dataclass(frozen=True)
class ArenaConfig:
    """The Era-B arena's task switches (env.name=arena). Other envs refuse a changed value
    rather than ignore it."""

    desync_episodes: bool = True  # each env's first episode ends at a random horizon
    combat: bool = True  # attacks cost 1 laser (on) or 100 (off)
    easy_altar: bool = True  # altar takes 1 battery (easy) or the standard recipe
    shaped_rewards: bool = True  # shaped item rewards or hearts only


@dataclasses.dataclass(frozen=True)
class NppConfig:
    """N++ (env.name=npp; npp.md). Other envs refuse a changed value rather than ignore it."""

    stage: str = ""  # train on this generator stage only ("" = every stage as a task)
    # Episode limit in 60 fps frames (the simulator's clock, so a limit that does not depend
    # on the frame skip); 0: env.max_steps x frame_skip when that is set, else the env's 20,000.
    max_frames: int = 0
    frame_skip: int = 4  # 60 fps frames each action is held for (npp.md §7.2)
    # Reward weights per agent step (npp.md §9; envs/npp/rewards.py).
    reward_win: float = 1.0  # on the step the exit door is reached
    reward_death: float = -0.5  # on the step the ninja dies (and nothing else that step)
    reward_switch: float = 0.1  # on the step the exit switch is activated
    reward_time: float = -0.01  # every step alive
    reward_nav: float = 1.0  # scale of the closest-distance navigation reward (§9.2)
    reward_explore: float = 1.0  # scale of the multi-scale first-visit bonus (§9.3)
    reward_pbrs: float = 1.0  # scale of potential-based shaping on Euclidean distance (§9.4)
    reward_pbrs_gamma: float = 0.99  # the gamma in gamma * Phi(s') - Phi(s)
    # Scale of potential-based shaping on the geodesic (path) distance to the goal; non-zero
    # makes the env compute each level's distance field at reset.
    reward_geo: float = 0.0


@dataclasses.dataclass(frozen=True)
class PolicyConfig:
    kind: Literal["mlp", "cnn", "lstm"] = "mlp"  # the network: MLP, CNN, or CNN + LSTM (recurrent)
    hidden_sizes: tuple[int, ...] = (64, 64)  # dense layers of the torso
    activation: Literal["tanh", "relu"] = "tanh"  # of the MLP layers
    cnn_channels: tuple[int, ...] = (64, 64)  # conv layers' output channels
    cnn_kernels: tuple[int, ...] = (5, 3)  # conv kernel sizes
    cnn_strides: tuple[int, ...] = (3, 1)  # conv strides
    # Biases in the conv layers. Without them the bias add over every conv activation and the
    # bias gradient's reduction over them are gone: XLA fuses neither into its matrix products
    # (H100, learner of the 2x2-patch (32, 64) torso: 496 -> 417 ms per 1M-sample update).
    cnn_bias: bool = True
    lstm_size: int = 128  # LSTM hidden units per layer
    lstm_layers: int = 2  # stacked LSTM layers
    actor_hidden: int = 512  # the actor head's hidden layer (CNN and LSTM policies)
    critic_hidden: int = 1024  # the critic head's hidden layer (CNN and LSTM policies)
    # Fixed input scaling (uint8 boxes): obs * scale before the torso. "env" uses the
    # environment's per-channel norms when it provides them.
    obs_scale: Literal["none", "env"] = "env"
    # Arithmetic of the layers (parameters, optimizer and losses stay float32): "bfloat16"
    # runs convolutions and matrix products at the tensor cores' bf16 rate.
    compute_dtype: Literal["float32", "bfloat16"] = "float32"
    # Standardise the network's input per feature with fixed statistics stored in its
    # parameters (params/obs_norm/{mean,std}; set from the BC training set by jaxrl_arena/bc.py,
    # identity otherwise; never trained). Off: the network has no such layer.
    obs_norm: bool = False


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    num_envs: int | Auto = 64  # parallel envs; auto = sized to the device's memory and the run
    num_steps: int = 128  # rollout length T
    num_minibatches: int = 4  # optimizer steps per epoch (the batch split into this many)
    # Agent-steps per minibatch; when > 0 it sets num_minibatches = batch // minibatch_size
    # (so the minibatch stays fixed when num_envs changes, e.g. with num_envs=auto).
    minibatch_size: int = 0
    update_epochs: int = 4  # passes over each rollout's batch
    lr: float = 2.5e-4  # Adam learning rate
    lr_schedule: Literal["constant", "linear", "cosine"] = "constant"  # over the run's updates
    lr_final_fraction: float = 0.0  # lr at the end of the run, as a fraction of lr
    adam_eps: float = 1e-5  # Adam's epsilon (> 0)
    adam_b1: float = 0.9  # Adam's first-moment decay
    adam_b2: float = 0.999  # Adam's second-moment decay
    gamma: float = 0.99  # discount
    gae_lambda: float = 0.95  # GAE's lambda
    clip_coef: float = 0.2  # PPO's policy-ratio clip
    clip_vloss: bool = True  # clip the value loss around the rollout's values
    vf_clip_coef: float = 0.2  # the value clip's range
    ent_coef: float = 0.01  # entropy bonus weight
    ent_schedule: Literal["constant", "linear"] = "constant"  # entropy weight over the run
    ent_final_fraction: float = 1.0  # linear: entropy weight at the end, as a fraction
    vf_coef: float = 0.5  # value loss weight
    max_grad_norm: float = 0.5  # global gradient-norm clip
    norm_adv: bool = True  # standardise advantages (over norm_adv_scope)
    # Statistics of the standardisation: each minibatch's own (Era B, CleanRL) or the whole
    # rollout's, once per update (every minibatch then keeps its share of the batch's mean).
    norm_adv_scope: Literal["minibatch", "batch"] = "minibatch"
    bptt_horizon: int = 0  # recurrent sequence length; 0 = num_steps
    # "gae": terminations end the bootstrap, truncations bootstrap from V(final observation),
    # the rollout's last step from V(next observation). "era_b": Metta's Era-B rule (arena.md
    # §13.2): segments of bptt_horizon (or num_steps) steps with A = 0 at each segment's last
    # step, truncations ignored (docs/DEVIATIONS.md).
    advantage: Literal["gae", "era_b"] = "gae"
    grad_accum_steps: int = 1  # micro-batches per minibatch (explicit gradient accumulation)
    max_consecutive_skips: int = 10  # non-finite updates in a row before the run stops
    auto_memory_fraction: float = 0.6  # num_envs=auto: share of device memory to fill
    auto_max_envs: int = 1 << 17  # num_envs=auto: at most this many envs


@dataclasses.dataclass(frozen=True)
class CurriculumConfig:
    """Which task each env plays next (jaxrl_arena/curriculum/). ``None`` = the kind's
    default (the spec's numbers; see ``jaxrl_arena.curriculum.factory.LP_KNOBS`` etc.)."""

    # How tasks are drawn: uniform over the named tasks, learning progress over them, the
    # arena's bucketed space (arena_lp, arena_uniform), or N++'s stage ladder (staged).
    kind: Literal["uniform", "learning_progress", "arena_lp", "arena_uniform", "staged"] = "uniform"
    # Learning progress (arena.md §12.2 with the §12.4 corrections)
    ema_timescale: float | None = None  # 0.001
    progress_smoothing: float | None = None  # 0.05
    # v1's active-set size: refused when set (every task's EMAs advance as soon as it has new
    # outcomes, and the arena_lp pool is sized by pool_size); kept so old configs load.
    num_active_tasks: int | None = None
    rand_task_rate: float | None = None  # 0.25, mixed into episode sampling
    sample_threshold: int | None = None  # 10 outcomes per EMA step
    memory: int | None = None  # 25 outcomes per task
    min_outcomes: int | None = None  # = sample_threshold: below it a task is explored
    explore_rate: float | None = None  # 0.2
    explore_boost: float | None = None  # 2.0
    score_min: float | None = None  # score map: clip((return - min) / (max - min), 0, 1)
    score_max: float | None = None  # 1.0 for named tasks; arena_lp: its task space's (20.0)
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
    # Per-stage tables: one value for every stage or one per stage in the env's order; None:
    # the env's table (N++: npp.md §10.1, 0.70 ... 0.30 to advance).
    stage_thresholds: tuple[float, ...] | None = None  # success rate that advances a stage
    stage_min_episodes: tuple[int, ...] | None = None  # episodes on a stage before it advances
    stage_regression: tuple[float, ...] | None = None  # success rate below which it steps back
    # Previous-stage replay: P(previous stage) = mix_probs[i] for the current stage's success
    # rate in [mix_edges[i-1], mix_edges[i]); one more prob than edges.
    mix_edges: tuple[float, ...] | None = None  # (0.50, 0.65, 0.80)
    mix_probs: tuple[float, ...] | None = None  # (0.40, 0.25, 0.15, 0.05)


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Held-out evaluation (jaxrl_arena/evaluation.py): the same fixed episodes every time."""

    every_updates: int = 0  # evaluate every n-th update (at chunk ends) and at the end; 0: off
    episodes: int = 32  # per evaluation task (N++: held-out levels per stage)
    max_steps: int = 0  # agent steps before an unfinished episode is scored; 0: the env's limit
    deterministic: bool = False  # argmax actions instead of sampling the policy
    seed: int = 12345  # reset keys of the evaluation episodes (fixed across evaluations)
    # Every n-th evaluation also records one episode per task as a GIF, written to
    # <run dir>/eval_gifs/ and to TensorBoard (images tab); 0: never.
    gif_every: int = 0
    gif_steps: int = 0  # agent steps per GIF at most; 0: 300


@dataclasses.dataclass(frozen=True)
class LoggingConfig:
    log_every: int = 1  # log every n-th update
    tensorboard: bool = True  # event files under <run dir>/tb
    wandb: bool = False  # also log to Weights & Biases
    wandb_project: str = "jaxrl_arena"  # the W&B project
    progress: bool = True  # the console progress bar
    per_run_metrics: bool = True  # with several seeds/variants, also log each run's scalars


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
    enabled: bool = True  # save checkpoints (Orbax) of the whole train state
    every_updates: int = 0  # 0: not by count
    every_seconds: float = 600.0  # 0: not by time
    keep: int = 3  # newest checkpoints kept (plus the newest known-good one)


@dataclasses.dataclass(frozen=True)
class BCConfig:
    """Behaviour cloning from human N++ replays (jaxrl_arena/bc.py, experiments/npp_bc.py;
    npp.md §11). The network and observation are those of the PPO recipe ``recipe``."""

    recipe: str = "npp_grid"  # the PPO recipe whose policy is cloned (and later trained)
    replays: str = ""  # folder of .replay files; "": the golden human replays in the repo
    epochs: int = 10  # passes over the training pairs (npp-rl: 10)
    batch_size: int = 64  # pairs per Adam step (npp-rl: 64)
    lr: float = 3e-4  # Adam's learning rate (npp-rl: 3e-4)
    val_fraction: float = 0.1  # share of the replay files held out for validation
    # "balanced": each action's loss weighted by n / (6 * n_action) over the training set
    class_weights: Literal["none", "balanced"] = "none"
    # Per-replay pairs: "auto" = <run dirs' parent>/.bc_cache, "off", or a folder
    cache: str = "auto"


@dataclasses.dataclass(frozen=True)
class Config:
    run: RunConfig = RunConfig()
    env: EnvConfig = EnvConfig()
    arena: ArenaConfig = ArenaConfig()
    npp: NppConfig = NppConfig()
    policy: PolicyConfig = PolicyConfig()
    ppo: PPOConfig = PPOConfig()
    curriculum: CurriculumConfig = CurriculumConfig()
    eval: EvalConfig = EvalConfig()
    logging: LoggingConfig = LoggingConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    bc: BCConfig = BCConfig()
