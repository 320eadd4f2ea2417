"""``make_train(config) -> (init, train_chunk)``: the whole PPO update as one compiled function.

``train_chunk(state)`` is a single ``jit`` (state donated) that ``lax.scan``s ``K`` updates; each
update is: rollout scan over ``T`` steps of vmapped envs → GAE → epochs × minibatch optimizer
steps → curriculum update. Metrics are reduced to scalars inside the jit and come back as
``[R, K]`` arrays (``R`` runs: seeds × A/B variants, vmapped in the same jit). The env axis
is sharded over ``jax.devices()`` with ``shard_map``; gradients and statistics are averaged
across the mesh. The host loop (:mod:`jaxrl_arena.loop`) only calls chunks, logs and
checkpoints.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from envs.base import MultiAgentEnv
from jaxrl_arena import config as config_lib
from jaxrl_arena.config import Config, ConfigError
from jaxrl_arena.curriculum import EpisodeOutcomes, make_curriculum
from jaxrl_arena.networks import policy_for_env
from jaxrl_arena.ppo import Hyperparams, Learner, prepare_batch
from jaxrl_arena.rollout import Rollout, RolloutState, reset_pool_size, reset_refresh_count

AXIS = "env"  # the mesh axis the environments are sharded over
# Hyperparameters that are data inside the compiled step: runs that differ only in these
# (--ab variants, seeds) are vmapped in one jit.
VMAPPABLE_KEYS = tuple(f"ppo.{name}" for name in Hyperparams._fields)


@struct.dataclass
class TrainState:
    """Everything a run needs to continue bitwise: checkpointed whole."""

    params: Any
    opt_state: Any
    opt_step: jax.Array  # int32: optimizer steps taken (drives the lr schedule)
    update: jax.Array  # int32: updates done
    rollout: RolloutState  # env states, params, obs, recurrent carries, episode accumulators
    curriculum: Any
    key: jax.Array  # uint32[2] raw PRNG key data
    hp: Hyperparams  # per-run hyperparameters (data, so runs vmap)
    consecutive_skips: jax.Array  # int32: updates in a row with a non-finite step
    skipped_updates: jax.Array  # int32: total


def state_specs(rollout_spec=P(None, AXIS)) -> TrainState:
    """shard_map specs: the rollout state is split along envs, everything else replicated."""
    return TrainState(
        params=P(), opt_state=P(), opt_step=P(), update=P(), rollout=rollout_spec,
        curriculum=P(), key=P(), hp=P(), consecutive_skips=P(), skipped_updates=P(),
    )


@dataclasses.dataclass
class RunSpec:
    """One of the ``R`` runs vmapped together: a seed and its (A/B variant) hyperparameters."""

    label: str
    seed: int
    config: Config


def expand_runs(cfg: Config, ab: list[str] | None = None) -> list[RunSpec]:
    """Seeds × A/B variants. ``ab`` items look like ``ppo.lr=1e-3,3e-4`` (cross product) and
    name vmappable keys only: the entry points' ``--ab`` splits the other keys into separate
    programs first (``jaxrl_arena.ab``)."""
    variants: list[tuple[str, Config]] = [("", cfg)]
    for item in ab or []:
        key, text = config_lib.split_override(item)
        config_lib.check_key(key)
        if key not in VMAPPABLE_KEYS:
            raise ConfigError(
                f"--ab key {key!r} changes the compiled program: its variants are separate "
                f"programs (jaxrl_arena.ab), not runs of one; vmappable keys: "
                f"{', '.join(VMAPPABLE_KEYS)}"
            )
        values = [config_lib.parse_value(key, v) for v in text.split(",") if v.strip()]
        variants = [
            (f"{label},{key}={v}".lstrip(","), config_lib.replace(c, key, v))
            for label, c in variants for v in values
        ]
    runs = []
    for label, c in variants:
        for i in range(cfg.run.num_seeds):
            seed = cfg.run.seed + i
            name = f"{label},seed={seed}".lstrip(",") if (len(variants) > 1 or cfg.run.num_seeds > 1) else ""
            runs.append(RunSpec(name, seed, c))
    return runs


@dataclasses.dataclass
class TrainProgram:
    """What :func:`make_train` returns; unpacks as ``init, train_chunk = make_train(cfg)``."""

    init: Callable[[jax.Array], TrainState]
    train_chunk: Callable[[TrainState], tuple[TrainState, dict]]
    config: Config
    env: MultiAgentEnv
    policy: Any
    curriculum: Any
    mesh: Mesh
    runs: list[RunSpec]
    num_envs: int
    num_updates: int
    chunk_len: int  # updates per compiled call; divides num_updates (plan_chunks)
    agent_steps_per_update: int
    chunk_for: Callable[..., Callable]
    chunk_fn: Callable[..., Callable]
    rollout: Rollout
    learner: Learner

    def __iter__(self) -> Iterator[Callable]:
        return iter((self.init, self.train_chunk))


def plan_chunks(updates: int, per_chunk: int) -> tuple[int, int]:
    """``(num_updates, chunk length)`` such that every compiled call has the same length: one
    program, one compile (a shorter last chunk would be a second program, compiled while the
    run waits). ``updates`` is rounded up to whole chunks: fewer than ``per_chunk`` extra."""
    chunk = max(1, min(per_chunk, updates))
    return -(-updates // chunk) * chunk, chunk


def make_env(cfg: Config) -> MultiAgentEnv:
    from jaxrl_arena.registry import make

    return make(cfg)


def update_step(ts: TrainState, *, rollout: Rollout, learner: Learner, curriculum,
                learn: bool = True, axis_name: str = AXIS) -> tuple[TrainState, dict]:
    """One PPO update of one run on this device's env shard: rollout -> GAE and the learner's
    batch (``ppo.prepare_batch``) -> epochs x minibatches (``Learner.update``) -> curriculum
    update -> metrics. ``axis_name`` names the env axis that statistics and gradients are
    averaged over (``shard_map``'s mesh axis, or a ``vmap`` axis in tests); ``learn=False``
    stops after GAE (benchmarks).

    Metric protocol: every value is a scalar of this update; ``loss/*`` and ``train/*`` come
    from the learner (means over minibatches), ``overview/*`` and ``env_agent/*`` are means over
    the episodes that finished in this update (NaN when none did: the host drops them, never
    logs a placeholder 0), ``curriculum/*`` and ``task_reward/*`` from the curriculum."""
    key, k_roll, k_learn = jax.random.split(ts.key, 3)
    hp = ts.hp
    with jax.named_scope("rollout"):
        rs, tr, sums, last_value, start_carries = rollout.run(ts.params, ts.curriculum,
                                                              ts.rollout, k_roll)
    data, values, returns = prepare_batch(
        tr, last_value, start_carries, hp.gamma, hp.gae_lambda,
        horizon=rollout.horizon if rollout.policy.is_recurrent else 1,
        advantage=learner.ppo.advantage, segment=learner.ppo.bptt_horizon or rollout.num_steps)
    if learn:
        with jax.named_scope("learner"):
            params, opt_state, opt_step, metrics = learner.update(
                ts.params, ts.opt_state, ts.opt_step, data, hp, k_learn, ts.update)
    else:  # rollout + GAE only (benchmarks: where does the time go)
        params, opt_state, opt_step = ts.params, ts.opt_state, ts.opt_step
        metrics = {"train/skipped_steps": jnp.zeros(()),
                   "loss/advantage_mean": jax.lax.pmean(data.advantages.mean(), axis_name)}
    outcomes = EpisodeOutcomes(
        task_id=tr.task_id.reshape(-1), done=tr.done.reshape(-1),
        score=tr.episode_score.reshape(-1),
        success=None if tr.episode_success is None else tr.episode_success.reshape(-1))
    with jax.named_scope("curriculum"):
        cstate = curriculum.update(ts.curriculum, outcomes, axis_name)

    # Episode statistics: means over episodes that finished in this update only.
    sums = jax.lax.psum(sums, axis_name)
    episodes = sums.pop("episodes")
    for name, total in sums.items():
        metrics[name] = jnp.where(episodes > 0, total / jnp.maximum(episodes, 1.0), jnp.nan)
    metrics["overview/episodes"] = episodes
    # Explained variance over the whole (global) batch.
    m = jax.lax.pmean(jnp.stack([returns.mean(), jnp.square(returns).mean(),
                                 (returns - values).mean(),
                                 jnp.square(returns - values).mean()]), axis_name)
    var_ret, var_res = m[1] - m[0] ** 2, m[3] - m[2] ** 2
    metrics["loss/explained_variance"] = jnp.where(var_ret > 1e-8, 1.0 - var_res / var_ret,
                                                   jnp.nan)
    metrics["rollout/reward_per_step"] = jax.lax.pmean(tr.reward.mean(), axis_name)
    metrics.update(curriculum.metrics(cstate))
    skipped = metrics["train/skipped_steps"] > 0
    consecutive = jnp.where(skipped, ts.consecutive_skips + 1, 0)
    metrics["train/skipped_updates"] = skipped.astype(jnp.float32)
    metrics["train/consecutive_skips"] = consecutive.astype(jnp.float32)
    new_ts = TrainState(
        params=params, opt_state=opt_state, opt_step=opt_step, update=ts.update + 1,
        rollout=rs, curriculum=cstate, key=key, hp=hp, consecutive_skips=consecutive,
        skipped_updates=ts.skipped_updates + skipped.astype(jnp.int32),
    )
    return new_ts, metrics


def make_train(cfg: Config, *, env: MultiAgentEnv | None = None, ab: list[str] | None = None,
               devices: list | None = None) -> TrainProgram:
    """Build the pure ``init(key)`` and the compiled ``train_chunk(state)`` for ``cfg``.

    A resolved config (``jaxrl_arena.autosize.resolve``, as the host loop passes) is only
    validated; one built by hand (notebooks, tests, benchmarks) gets its reset strategy and
    minibatches resolved here, and ``ppo.num_envs=auto`` is refused (it needs that resolve)."""
    devices = list(devices or jax.devices())
    env = env or make_env(cfg)
    if config_lib.pending(cfg, env.num_agents):
        cfg = config_lib.resolve_static(cfg, num_agents=env.num_agents,
                                        cheap_reset=env.cheap_reset, num_devices=len(devices))
    else:
        config_lib.validate(cfg, num_agents=env.num_agents, num_devices=len(devices))
    runs = expand_runs(cfg, ab)
    ppo = cfg.ppo
    num_envs = int(ppo.num_envs)
    local_envs = num_envs // len(devices)
    A = env.num_agents
    T = ppo.num_steps
    recurrent = cfg.policy.kind == "lstm"
    horizon = (ppo.bptt_horizon or T) if recurrent else T
    agent_steps_per_update = num_envs * T * A
    num_updates, chunk_len = plan_chunks(max(1, cfg.run.total_timesteps // agent_steps_per_update),
                                         cfg.run.updates_per_chunk)

    policy = policy_for_env(cfg.policy, env)  # the network BC builds too (jaxrl_arena/bc.py)
    curriculum = make_curriculum(cfg, env)
    pool_size = reset_pool_size(cfg.env, local_envs)
    rollout = Rollout(env, policy, curriculum, num_envs=local_envs, num_steps=T, horizon=horizon,
                      pool_size=pool_size, axis_name=AXIS,
                      truncation_bootstrap=cfg.env.truncation_bootstrap,
                      reset_write=cfg.env.reset_write,
                      refresh=reset_refresh_count(cfg.env, pool_size))
    learner = Learner(policy, ppo, total_updates=num_updates, axis_name=AXIS)
    mesh = Mesh(np.asarray(devices), (AXIS,))
    R = len(runs)

    # ---------------------------------------------------------------- one run, local shard
    def init_single(key, hp):
        k_params, k_env, k_run = jax.random.split(key, 3)
        # Own stream per run (folded in, so params/env keys match runs of older versions).
        cstate = curriculum.init(jax.random.fold_in(key, 0x63757272))
        rs = rollout.init(k_env, cstate)
        obs0 = jax.tree.map(lambda x: x[:1, 0], rs.obs)  # one agent row for shapes
        params = policy.init(k_params, obs0)
        return TrainState(
            params=params, opt_state=learner.init(params), opt_step=jnp.zeros((), jnp.int32),
            update=jnp.zeros((), jnp.int32), rollout=rs, curriculum=cstate, key=k_run, hp=hp,
            consecutive_skips=jnp.zeros((), jnp.int32), skipped_updates=jnp.zeros((), jnp.int32),
        )

    def update_single(ts: TrainState, learn: bool = True):
        return update_step(ts, rollout=rollout, learner=learner, curriculum=curriculum,
                           learn=learn, axis_name=AXIS)

    def over_runs(fn):
        """Map a single-run function over the leading run axis (no vmap when R = 1, so
        ``lax.cond`` stays a real branch)."""
        if R == 1:
            def one(*args):
                out = fn(*jax.tree.map(lambda x: x[0], args))
                return jax.tree.map(lambda x: x[None], out)
            return one
        return jax.vmap(fn)

    def chunk_local(ts, length, learn=True):
        def body(ts, _):
            return update_single(ts, learn)
        return jax.lax.scan(body, ts, None, length=length)

    specs = state_specs()
    hps = jax.tree.map(lambda *xs: jnp.stack(xs),
                       *[Hyperparams.from_config(r.config.ppo) for r in runs])

    def init_runs(keys, hps):
        # A loop over runs, not vmap: vmapped, the orthogonal initialisers' QR is one batched
        # LAPACK call, which jaxlib's CPU kernel splits over the intra-op thread pool and waits
        # for; with every pool thread running a device's shard of this program (2 devices on 2
        # cores), none is left to run the pieces and init hangs. Init runs once: the loop costs
        # nothing.
        return jax.lax.map(lambda args: init_single(*args), (keys, hps))

    init_sharded = jax.jit(jax.shard_map(
        init_runs, mesh=mesh, in_specs=(P(), P()), out_specs=specs, check_vma=False,
    ))

    def init(key: jax.Array | None = None) -> TrainState:
        """Initial state of all runs. ``key`` overrides the per-run seeds (tests)."""
        if key is None:
            keys = jnp.stack([jax.random.PRNGKey(r.seed) for r in runs])
        else:
            keys = jax.random.split(key, R)
        return init_sharded(keys, hps)

    compiled: dict[tuple[int, bool], Callable] = {}

    def chunk_fn(length: int, learn: bool = True, wrap: Callable | None = None) -> Callable:
        """The un-jitted chunk (shard_map over the mesh); ``wrap`` decorates the per-device
        function, e.g. ``chex.assert_max_traces`` in tests."""
        local = lambda ts: chunk_local(ts, length, learn)  # noqa: E731
        if wrap is not None:
            local = wrap(local)
        return jax.shard_map(
            over_runs(local), mesh=mesh,
            in_specs=(specs,), out_specs=(specs, P()), check_vma=False,
        )

    def chunk_for(length: int, learn: bool = True) -> Callable:
        """The compiled chunk of ``length`` updates (cached; a run uses one length,
        ``chunk_len``). ``learn=False`` runs rollouts and GAE
        only (for benchmarks)."""
        if (length, learn) not in compiled:
            compiled[(length, learn)] = jax.jit(chunk_fn(length, learn), donate_argnums=0)
        return compiled[(length, learn)]

    return TrainProgram(
        init=init, train_chunk=chunk_for(chunk_len), config=cfg, env=env, policy=policy,
        curriculum=curriculum, mesh=mesh, runs=runs, num_envs=num_envs,
        num_updates=num_updates, chunk_len=chunk_len, agent_steps_per_update=agent_steps_per_update,
        chunk_for=chunk_for, chunk_fn=chunk_fn, rollout=rollout, learner=learner,
    )

