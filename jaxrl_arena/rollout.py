"""Rollouts: ``T`` steps of ``N`` vmapped environments with auto-reset, inside one ``lax.scan``.

Auto-reset strategy
-------------------
A naive auto-reset computes a full reset for every env at every step and selects it where
the episode ended: for the arena (a fresh 62×62 map per episode) that is a map generation per
env per step, most of it thrown away. ``env.reset_strategy=optimistic`` (``auto``'s choice
unless the env declares ``cheap_reset``) instead
computes ``P`` resets per step (``env.reset_pool``, default ``min(N, max(8, N // 16))``) and
hands them, in env order, to the envs that finished at this step (the ``k``-th finished env
takes reset ``k mod P``). Cost: ``P/N`` of a reset per env-step instead of one. Trade-off: if
more than ``P`` envs finish at the same step, some of them start from the same initial state
(same map, same task); every episode still starts from a valid, freshly sampled reset, and
envs desynchronise quickly (random episode lengths, the arena's ``desync_episodes``).
``every_step`` keeps the exact behaviour: expensive for the arena, but for envs whose reset
costs about a step (``cheap_reset``: gymnax's) the cheapest, and ``auto``'s choice for them.

``pooled`` goes further for envs whose reset is far dearer than a step (N++ generates a level
per reset, the arena a map): the pool of ``P`` ready resets persists in the rollout state and
only ``R`` of its entries (``env.reset_refresh``, default ``max(1, P // 16)``) are replaced
per step, round-robin; finished envs take consecutive entries from a second cursor. The
``R x T`` replacements of a rollout are generated in one batch before its first step (one
wide reset program instead of ``T`` narrow ones: level generation loops until its slowest
level is done, and on GPUs every loop iteration and kernel launch costs latency), so a step
only copies ``R`` ready entries into the pool. Cost: ``R/N`` of a reset per env-step.
Trade-off: an entry can start up to about ``finished per step / R`` episodes (same level,
same task, which the curriculum drew at the start of the rollout, up to ``P/R + T`` steps
earlier); the episodes still diverge through the policy's sampling.

Writing the resets into the envs (``env.reset_write``) is either a select over all ``N`` envs
or a scatter of the finished rows only. The select reads and writes every env's row each step
(N++ keeps ~41 KB per env: ~4 GB per step at 32,768 envs) to reset the 1-3 % that finished,
but it is straight-line code. The scatter lists the finished envs in env order
(``jnp.nonzero``) and writes their fresh entries into the env state, params, task ids and
observations in place (``.at[idx].set(..., mode="drop")``), ``K`` rows at a time: ``K`` is a
static capacity (``reset_capacity``, default ``min(N, max(64, N // 8))``), the first ``K``
finished envs are always written, and when more finished (episodes that started together
reaching a time limit together) a ``lax.while_loop`` writes the next ``K`` until none is left.
That loop's predicate goes to the host on GPUs: a device-host round trip per step, which for
small envs costs far more than the select (CartPole at 2048 envs: two such loops per step
took 40 % of the end-to-end speed). ``auto`` therefore selects when the rows it rewrites are
small (``SELECT_MAX_BYTES`` per device) and scatters otherwise. Both give every finished env
the same entry, so results are bit-identical.

Truncated episodes bootstrap from V(final observation) (``env.truncation_bootstrap``):
``dense`` runs the policy over every env's final observation each step; ``chunked`` gathers
only the truncated envs, ``Kt`` at a time, with the same kind of loop (a round trip per step on
GPUs); ``cond`` branches on "any env truncated" (a round trip too). ``auto`` is ``dense`` for
recurrent policies and up to ``DENSE_FINAL_VALUE_MAX_ROWS`` policy rows per device,
``chunked`` above. (Keeping the rollout's final observations and evaluating them in one forward
after it measured slower on an H200: the stored observation, fused with the env step into an
asynchronous write, made XLA copy the whole env state every step; docs/BENCHMARKS.md.)

Per-step outputs are few, wide writes: the scan stacks the transition's small fields grouped by
shape and kind (``pack_leaves``) and the episode sums as one ``[N, k]`` array, because on GPUs
each array a scan step writes is a kernel launch per step, and at small env counts launches,
not bytes, set the speed. When every task of the curriculum has the same env parameters
(``Curriculum.shared_params``), the step reads those constants and resets never rewrite the
per-env parameter rows.

The task of a new episode is sampled from the curriculum *at its reset* and stored with the
env (``task_id`` and ``env_params``); outcomes are credited to it when the episode ends.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from envs.base import MultiAgentEnv
from jaxrl_arena.packing import pack_leaves


@struct.dataclass
class RolloutState:
    """Per-env state carried from one rollout to the next (leading axis: local envs ``N``)."""

    env_state: Any
    env_params: Any
    task_id: jax.Array  # int32[N]: the task the current episode was reset with
    obs: Any  # [N, A, ...]
    carry: Any  # recurrent carry, leaves [N * A, ...]; () for feed-forward policies
    episode_start: jax.Array  # bool[N]: obs is the first of an episode (zero the carry)
    episode_return: jax.Array  # float32[N, A]
    episode_length: jax.Array  # int32[N]
    # "pooled" resets only: P ready (obs, state, params, task_id) resets and two cursors
    # (next entry to regenerate, next entry to hand out); () otherwise.
    pool: Any = ()


class Transition(NamedTuple):
    obs: Any  # [N, A, ...]: in the policy's packed form (Policy.pack)
    action: jax.Array  # int32[N, A]
    log_prob: jax.Array  # [N, A]
    value: jax.Array  # [N, A]
    reward: jax.Array  # [N, A]
    terminated: jax.Array  # bool[N, A]
    truncated: jax.Array  # bool[N, A]
    final_value: jax.Array  # [N, A]: V(final observation), only where truncated
    reset: jax.Array  # bool[N]: the carry was zeroed before this step
    done: jax.Array  # bool[N]: an episode ended at this step
    episode_score: jax.Array  # [N]: its return (mean over agents), where done
    task_id: jax.Array  # int32[N]: the task it was played under
    episode_success: jax.Array | None  # [N]: the env's "success" stat (mean over agents) or None


# ``auto`` reset write: select while the rows it rewrites per step (obs, state, params, task of
# every local env) stay under this size. Selecting moves them about three times (two reads, one
# write: 1 GiB is ~0.75 ms at an H200's ~4.3 TB/s); the scatter instead costs a host round trip
# per step and, measured on an H200, its loop added ~100 s to the GPU compile of the arena's
# train chunk (arena_ff at 2048 envs: 170 s against 62 s with the select, compiled side by side).
SELECT_MAX_BYTES = 1 << 30
# ``auto`` truncation bootstrap: a dense final-value forward up to this many policy rows
# (envs x agents) per device; above, only the truncated rows are evaluated (chunked).
DENSE_FINAL_VALUE_MAX_ROWS = 16384


def tree_bytes(tree) -> int:
    """Bytes of a pytree of arrays or shapes."""
    return sum(int(x.size) * jnp.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree))


def env_row_bytes(env: MultiAgentEnv) -> int:
    """Bytes of one env's reset row: observation, state, params and task id."""
    params = env.default_params
    obs, state = jax.eval_shape(env.reset_env, jax.random.PRNGKey(0), params)
    return 4 + tree_bytes((obs, state, params))


def resolve_reset_capacity(reset_write: str, num_envs: int, row_bytes: int,
                           capacity: int | str = "auto") -> int:
    """``K`` for ``Rollout``: ``N`` means a select over every env, less a scatter (module doc)."""
    if reset_write == "select":
        return num_envs
    if reset_write == "auto" and capacity == "auto" and num_envs * row_bytes <= SELECT_MAX_BYTES:
        return num_envs
    return reset_scatter_capacity(num_envs, capacity)


def resolve_truncation_bootstrap(mode: str, recurrent: bool, policy_rows: int) -> str:
    if recurrent and mode == "chunked":
        return "dense"   # a recurrent policy needs every env's carry: no gathering of rows
    if mode != "auto":
        return mode
    return "dense" if recurrent or policy_rows <= DENSE_FINAL_VALUE_MAX_ROWS else "chunked"


def reset_pool_size(cfg_env, num_envs: int) -> int:
    if cfg_env.reset_strategy == "every_step":
        return num_envs
    if cfg_env.reset_pool == "auto":
        return min(num_envs, max(8, num_envs // 16))
    return max(1, min(num_envs, int(cfg_env.reset_pool)))


def chunk_capacity(num_envs: int, capacity: int | str, divisor: int) -> int:
    """Rows one chunk of :func:`for_rows_in_chunks` handles: ``capacity`` clamped to
    ``[1, N]``, or for "auto" ``N / divisor`` (at least 64, at most ``N``)."""
    if capacity == "auto":
        return min(num_envs, max(64, num_envs // divisor))
    return max(1, min(num_envs, int(capacity)))


def reset_scatter_capacity(num_envs: int, capacity: int | str = "auto") -> int:
    """``K``: finished envs whose resets one scatter writes (more take further scatters)."""
    return chunk_capacity(num_envs, capacity, 8)


def for_rows_in_chunks(mask, k: int, body, init):
    """``acc = body(c, idx, acc)`` over the rows where ``mask`` (bool[N]) is true, in row order,
    ``k`` at a time: ``idx`` int32[k] are the rows of rank ``c k .. c k + k - 1``, padded with
    ``N`` (out of range: write with ``mode="drop"``, read clipped). Chunk 0 always runs; further
    chunks run in a ``lax.while_loop`` only while rows remain (one predicate read per call on
    GPUs; its carry is updated in place, where a ``lax.cond`` would copy its operand)."""
    n = mask.shape[0]
    order = jnp.nonzero(mask, size=-(-n // k) * k, fill_value=n)[0]
    count = jnp.sum(mask, dtype=jnp.int32)

    def chunk(c, acc):
        return body(c, jax.lax.dynamic_slice(order, (c * k,), (k,)), acc)

    acc = chunk(0, init)
    return jax.lax.while_loop(lambda s: s[0] * k < count, lambda s: (s[0] + 1, chunk(*s)), (1, acc))[1]


def reset_refresh_count(cfg_env, pool_size: int) -> int:
    """``pooled`` resets: entries regenerated per step (0 for the other strategies)."""
    if getattr(cfg_env, "reset_strategy", "optimistic") != "pooled":
        return 0
    refresh = getattr(cfg_env, "reset_refresh", "auto")
    if refresh == "auto":
        return max(1, pool_size // 16)
    return max(1, min(pool_size, int(refresh)))


class Rollout:
    """Builds ``init`` and ``run`` for one env / policy / curriculum on the local env shard."""

    def __init__(self, env: MultiAgentEnv, policy, curriculum, *, num_envs: int, num_steps: int,
                 horizon: int, pool_size: int, axis_name: str | None = None,
                 truncation_bootstrap: str = "auto", refresh: int = 0,
                 reset_write: str = "auto", reset_capacity: int | str = "auto",
                 truncation_capacity: int | str = "auto"):
        self.env, self.policy, self.curriculum = env, policy, curriculum
        self.num_envs, self.num_steps, self.horizon = num_envs, num_steps, horizon
        self.num_agents = env.num_agents
        self.pool_size = pool_size
        self.refresh = int(refresh)  # > 0: "pooled" resets, this many regenerated per step
        # K: finished envs a step resets by scatter (see module doc); K = N: always select.
        self.reset_capacity = resolve_reset_capacity(reset_write, num_envs, env_row_bytes(env),
                                                     reset_capacity)
        # Kt: truncated envs whose final values one forward pass computes (more take more).
        self.truncation_capacity = chunk_capacity(num_envs, truncation_capacity, 32)
        self.axis_name = axis_name
        self.truncation_bootstrap = resolve_truncation_bootstrap(
            truncation_bootstrap, policy.is_recurrent, num_envs * env.num_agents)
        # Every task with the same env parameters: the step reads them as constants.
        self.shared_params = curriculum.shared_params()

    # ------------------------------------------------------------------ helpers
    def _env_keys(self, key, n_local):
        """One key per env from its *global* index, so results do not depend on the device count."""
        offset = 0
        if self.axis_name is not None:
            offset = jax.lax.axis_index(self.axis_name) * n_local
        return jax.vmap(lambda i: jax.random.fold_in(key, i))(offset + jnp.arange(n_local))

    def _fresh_episodes(self, cstate, keys, first: bool = False):
        """One reset per key, each with a task sampled from the curriculum."""
        split = jax.vmap(jax.random.split)(keys)
        task_ids = self.curriculum.sample(cstate, split[:, 0])
        reset = self.env.reset_env_first if first else self.env.reset_env
        with jax.named_scope("fresh_resets"):
            if self.shared_params is None:
                params = self.curriculum.task_params(task_ids)
                obs, state = jax.vmap(reset)(split[:, 1], params)
            else:
                obs, state = jax.vmap(reset, (0, None))(split[:, 1], self.shared_params)
                params = jax.tree.map(lambda x: jnp.broadcast_to(x, (len(keys),) + x.shape),
                                      self.shared_params)
        return obs, state, params, task_ids

    def _pool_keys(self, key, n: int | None = None):
        """Keys of ``n`` (default ``P``) resets: per env (device-count invariant) when every
        env gets its own reset, else per pool slot on this device."""
        n = self.pool_size if n is None else n
        if n == self.num_envs and not self.refresh:
            return self._env_keys(key, self.num_envs)
        if self.axis_name is not None:
            key = jax.random.fold_in(key, jax.lax.axis_index(self.axis_name))
        return jax.random.split(key, n)

    def _flat(self, x):
        return x.reshape((x.shape[0] * x.shape[1],) + x.shape[2:])

    def init(self, key, cstate) -> RolloutState:
        n, a = self.num_envs, self.num_agents
        k_envs, k_pool = jax.random.split(key)
        obs, state, params, task_ids = self._fresh_episodes(
            cstate, self._env_keys(k_envs if self.refresh else key, n), first=True)
        pool = ()
        if self.refresh:
            fresh = self._fresh_episodes(cstate, self._pool_keys(k_pool))
            # Cursors as int32[1] so that, like every leaf here, axis 0 splits over devices.
            pool = (fresh, jnp.zeros((1,), jnp.int32), jnp.zeros((1,), jnp.int32))
        return RolloutState(
            env_state=state,
            env_params=params,
            task_id=task_ids,
            obs=obs,
            carry=self.policy.initial_carry(n * a),
            episode_start=jnp.ones(n, bool),
            episode_return=jnp.zeros((n, a), jnp.float32),
            episode_length=jnp.zeros(n, jnp.int32),
            pool=pool,
        )

    # ------------------------------------------------------------------ one step
    def step(self, params, cstate, rs: RolloutState, key, staged=None):
        """One step of every env. ``staged`` ("pooled" resets only): the ``R`` fresh entries
        that replace pool entries at this step, generated ahead by ``run``."""
        n, a = self.num_envs, self.num_agents
        k_act, k_env, k_reset = jax.random.split(key, 3)
        reset_rows = jnp.repeat(rs.episode_start, a)
        # Named scopes label the profile (bench_npp.py trace, experiments/trace_summary.py).
        with jax.named_scope("policy"):
            # The learner reads observations in the policy's packed form (Policy.pack: for
            # patch-stack CNNs the first layer's patch rows), so rearrange them once, here.
            obs_in = self.policy.pack(self._flat(rs.obs))
            carry, logits, value = self.policy.apply(params, obs_in, rs.carry, reset_rows)
            action_keys = self._env_keys(k_act, n)
            action = jax.vmap(lambda k, l: jax.random.categorical(k, l))(
                action_keys, logits.reshape(n, a, -1)
            ).astype(jnp.int32)
            log_prob = jnp.take_along_axis(
                jax.nn.log_softmax(logits.reshape(n, a, -1)), action[..., None], -1
            )[..., 0]

        with jax.named_scope("env_step"):
            params_axis, env_params = ((0, rs.env_params) if self.shared_params is None
                                       else (None, self.shared_params))
            obs_st, state_st, reward, terminated, truncated, _ = jax.vmap(
                self.env.step_env, (0, 0, 0, params_axis))(
                self._env_keys(k_env, n), rs.env_state, action, env_params)
        reward = reward.astype(jnp.float32)
        truncated = truncated & ~terminated
        done = jnp.all(terminated | truncated, axis=-1)

        # Truncated episodes bootstrap from V(final observation); computed only when needed.
        def final_values():
            kt = self.truncation_capacity
            if self.truncation_bootstrap != "chunked" or kt >= n:
                _, _, v = self.policy.apply(params, self._flat(obs_st), carry, jnp.zeros(n * a, bool))
                return jnp.where(truncated, v.reshape(n, a), 0.0)
            # Feed-forward: evaluate only the truncated envs (few per step), gathered Kt at a
            # time, in env order; a second forward over every env doubled the policy's cost.
            def chunk(c, idx, out):
                rows = jnp.minimum(idx, n - 1)          # padding evaluates some env, never written
                obs_rows = jax.tree.map(lambda x: self._flat(x[rows]), obs_st)
                _, _, v = self.policy.apply(params, obs_rows, (), jnp.zeros(kt * a, bool))
                v = jnp.where(truncated[rows], v.reshape(kt, a), 0.0)
                return out.at[idx].set(v, mode="drop")

            return for_rows_in_chunks(jnp.any(truncated, axis=-1), kt, chunk, jnp.zeros((n, a), jnp.float32))

        no_truncation = lambda: jnp.zeros((n, a), jnp.float32)
        if not self.env.can_truncate:
            final_value = no_truncation()
        elif self.truncation_bootstrap == "cond":
            # A branch: the extra forward runs only at steps where some env truncates, at the
            # price of reading the predicate back to the host on GPUs.
            final_value = jax.lax.cond(jnp.any(truncated), final_values, no_truncation)
        else:  # "dense" or "chunked": every step (see module doc)
            with jax.named_scope("final_value"):
                final_value = final_values()

        episode_return = rs.episode_return + reward
        episode_length = rs.episode_length + 1
        stats = jax.vmap(self.env.episode_stats)(state_st)
        transition = Transition(
            obs=obs_in.reshape((n, a) + obs_in.shape[1:]),
            action=action, log_prob=log_prob, value=value.reshape(n, a),
            reward=reward, terminated=terminated, truncated=truncated, final_value=final_value,
            reset=rs.episode_start, done=done, episode_score=episode_return.mean(-1),
            task_id=rs.task_id,
            episode_success=stats["success"].astype(jnp.float32).mean(-1) if "success" in stats else None,
        )
        # Episode sums for logging, per env (elementwise, fused; reduced once per rollout):
        # only finished episodes count (never placeholder zeros).
        w = done.astype(jnp.float32)
        sums = {
            "episodes": w,
            "overview/reward": w * episode_return.mean(-1),
            "overview/episode_length": w * episode_length,
        }
        for name, value_a in stats.items():
            sums[f"env_agent/{name}"] = w * value_a.astype(jnp.float32).mean(-1)

        # Auto-reset (see module doc).
        with jax.named_scope("auto_reset"):
            pool = ()
            if self.refresh:  # R fresh entries (generated ahead by ``run``) replace pool entries
                (entries, write, take) = rs.pool
                slots = (write[0] + jnp.arange(self.refresh)) % self.pool_size
                entries = jax.tree.map(lambda e, f: e.at[slots].set(f), entries, staged)
                first = take[0]  # the k-th finished env takes entry (take + k) mod P
                pool = (entries, (write + self.refresh) % self.pool_size,
                        (take + jnp.sum(done, dtype=jnp.int32)) % self.pool_size)
            else:
                entries = self._fresh_episodes(cstate, self._pool_keys(k_reset))
                # P < N: the k-th finished env takes reset k mod P; P = N: env i takes reset i.
                first = None if self.pool_size == n else 0
            # (obs, state, params, task ids): the fresh entries and what they replace. Shared
            # params are the same in every row: nothing to rewrite.
            old = (obs_st, state_st, rs.env_params, rs.task_id)
            if self.shared_params is not None:
                entries, old = (entries[0], entries[1], entries[3]), (obs_st, state_st, rs.task_id)
            k = self.reset_capacity
            if k >= n:  # a select over every env
                if first is not None:
                    pick = (first + jnp.cumsum(done) - 1) % self.pool_size
                    entries = jax.tree.map(lambda f: f[pick], entries)
                mask = lambda o: done.reshape((n,) + (1,) * (o.ndim - 1))
                new = jax.tree.map(lambda f, o: jnp.where(mask(o), f, o), entries, old)
            else:  # a scatter of the finished rows only, K at a time (see module doc)
                def scatter(c, idx, old):
                    """Writes the resets of the finished envs of rank cK .. cK + K - 1."""
                    if first is None:
                        rows = jnp.minimum(idx, n - 1)  # padding reads any row, never written
                    else:
                        rows = (first + c * k + jnp.arange(k)) % self.pool_size
                    return jax.tree.map(lambda f, o: o.at[idx].set(f[rows], mode="drop"),
                                        entries, old)

                # More than K finished (rare): further chunks in the loop. Not a lax.cond around
                # a full-width select: XLA copies a conditional's operand before scattering
                # into it (the whole state per step).
                new = for_rows_in_chunks(done, k, scatter, old)
            if self.shared_params is not None:
                new = (new[0], new[1], rs.env_params, new[2])
            obs, env_state, env_params, task_id = new
            new_rs = RolloutState(
                env_state=env_state,
                env_params=env_params,
                task_id=task_id,
                obs=obs,
                carry=carry,
                episode_start=done,
                episode_return=jnp.where(done[:, None], 0.0, episode_return),
                episode_length=jnp.where(done, 0, episode_length),
                pool=pool,
            )
        return new_rs, transition, sums

    # ------------------------------------------------------------------ T steps
    def run(self, params, cstate, rs: RolloutState, key):
        """Returns (state, transitions [T, ...], episode sums, last value [N, A],
        carries at each sequence start [T / horizon, N * A, ...])."""
        n, a = self.num_envs, self.num_agents
        chunks = self.num_steps // self.horizon

        names = ["episodes", "overview/reward", "overview/episode_length"]
        names += [f"env_agent/{name}" for name in self._stat_names(rs)]
        layout = {}   # how ``inner`` packed a transition (set while tracing the scan)

        def inner(carry, xs):
            rs, sums = carry
            k, staged = xs
            rs, tr, s = self.step(params, cstate, rs, k, staged)
            sums = sums + jnp.stack([s[name] for name in names], -1)
            packed, layout["unpack"] = pack_leaves(tr)
            return (rs, sums), packed

        def outer(carry, keys):
            rs, _ = carry
            start_carry = rs.carry
            carry, tr = jax.lax.scan(inner, carry, keys)
            return carry, (tr, start_carry)

        zero_sums = jnp.zeros((n, len(names)), jnp.float32)
        staged = None
        if self.refresh:   # every pool replacement of this rollout, generated in one batch
            key, k_stage = jax.random.split(key)
            with jax.named_scope("auto_reset"):
                staged = self._fresh_episodes(cstate, self._pool_keys(k_stage, self.refresh * self.num_steps))
            staged = jax.tree.map(lambda x: x.reshape((chunks, self.horizon, self.refresh) + x.shape[1:]), staged)
        keys = jax.random.split(key, self.num_steps).reshape(chunks, self.horizon, -1)
        (rs, sums), (packed, start_carries) = jax.lax.scan(outer, (rs, zero_sums), (keys, staged))
        sums = dict(zip(names, sums.sum(0)))
        tr = layout["unpack"](jax.tree.map(lambda x: x.reshape((self.num_steps,) + x.shape[2:]), packed))
        reset_rows = jnp.repeat(rs.episode_start, a)
        _, _, last_value = self.policy.apply(params, self._flat(rs.obs), rs.carry, reset_rows)
        return rs, tr, sums, last_value.reshape(n, a), start_carries

    def _stat_names(self, rs):
        return list(jax.eval_shape(jax.vmap(self.env.episode_stats), rs.env_state).keys())
