"""PPO: generalized advantage estimation, the clipped loss and the minibatch update.

Conventions (all arrays time-major, ``[T, B]`` with ``B`` = env-agent rows):

* ``terminated[t]``: the episode's MDP ended after action ``t``: no bootstrap.
* ``truncated[t]``: the episode was cut after action ``t`` (a limit, not the MDP): bootstrap
  from ``final_value[t] = V(final_observation)``. Either flag also cuts the λ-chain there,
  because the next row of the rollout belongs to a new episode.
* Returns = advantages + rollout-time values (the value target PPO regresses to).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from jaxrl_arena.packing import pack_leaves


class Hyperparams(NamedTuple):
    """Hyperparameters that are data in the compiled step (vmappable across runs)."""

    lr: jax.Array
    gamma: jax.Array
    gae_lambda: jax.Array
    clip_coef: jax.Array
    vf_clip_coef: jax.Array
    ent_coef: jax.Array
    vf_coef: jax.Array
    max_grad_norm: jax.Array

    @classmethod
    def from_config(cls, ppo) -> "Hyperparams":
        return cls(*(jnp.asarray(getattr(ppo, name), jnp.float32) for name in cls._fields))


def gae(rewards, values, terminated, truncated, final_values, last_value, gamma, gae_lambda):
    """Advantages ``[T, B]``.

    ``values[t] = V(obs_t)``; ``last_value = V(obs_T)`` (the observation after the rollout);
    ``final_values[t] = V(final_observation_t)``, read only where ``truncated[t]``.
    """
    chex.assert_equal_shape([rewards, values, terminated, truncated, final_values])
    chex.assert_rank(rewards, 2)
    next_values = jnp.concatenate([values[1:], last_value[None]], axis=0)
    bootstrap = jnp.where(terminated, 0.0, jnp.where(truncated, final_values, next_values))
    deltas = rewards + gamma * bootstrap - values
    continues = 1.0 - (terminated | truncated).astype(rewards.dtype)

    def backward(next_adv, inputs):
        delta, cont = inputs
        adv = delta + gamma * gae_lambda * cont * next_adv
        return adv, adv

    _, advantages = jax.lax.scan(
        backward, jnp.zeros_like(last_value), (deltas, continues), reverse=True
    )
    return advantages


def era_b_advantages(rewards, values, terminated, gamma, gae_lambda, segment: int):
    """Metta's Era-B advantage (docs/specs/arena.md §13.2, V-trace at ratio 1), ``[T, B]``.

    The rollout is cut into segments of ``segment`` steps; within each, for t = H-2 .. 0,
    ``delta_t = r_t + gamma V_{t+1} (1 - term_t) - V_t`` and
    ``A_t = delta_t + gamma lambda (1 - term_t) A_{t+1}``, with ``A_{H-1} = 0`` (no bootstrap
    across segments). Only terminations stop the bootstrap: at a truncation ``V_{t+1}`` is the
    next episode's first value, as in the reference.
    """
    chex.assert_equal_shape([rewards, values, terminated])
    T, B = rewards.shape
    H = int(segment)
    if T % H:
        raise ValueError(f"rollout length {T} is not a multiple of the segment length {H}")
    split = lambda x: x.reshape(T // H, H, B).swapaxes(0, 1)     # [H, C, B]: step in segment
    r, v, cont = split(rewards), split(values), 1.0 - split(terminated).astype(rewards.dtype)
    next_v = jnp.concatenate([v[1:], jnp.zeros_like(v[:1])], axis=0)
    deltas = r + gamma * next_v * cont - v
    last = (jnp.arange(H) == H - 1)[:, None, None]

    def backward(next_adv, inputs):
        delta, c, is_last = inputs
        adv = jnp.where(is_last, 0.0, delta + gamma * gae_lambda * c * next_adv)
        return adv, adv

    _, adv = jax.lax.scan(backward, jnp.zeros_like(v[0]), (deltas, cont, last), reverse=True)
    return adv.swapaxes(0, 1).reshape(T, B)


class Minibatch(NamedTuple):
    """Learner inputs in sequence form ``[H, S, ...]``: ``S`` sequences of ``H`` steps
    (``H = 1`` for feed-forward policies), with the recurrent carry at each sequence start."""

    obs: Any
    actions: jax.Array
    log_probs: jax.Array
    values: jax.Array
    advantages: jax.Array
    returns: jax.Array
    resets: jax.Array
    carry: Any  # [S, ...] leaves; () for feed-forward


def to_sequences(x, H: int):
    """``[T, B, ...] -> [H, (T / H) B, ...]``: sequences of ``H`` consecutive steps."""
    C = x.shape[0] // H
    x = jnp.moveaxis(x.reshape((C, H) + x.shape[1:]), 0, 1)
    return x.reshape((H, C * x.shape[2]) + x.shape[3:])


def prepare_batch(tr, last_value, start_carries, gamma, gae_lambda, horizon: int,
                  advantage: str = "gae", segment: int = 0):
    """The learner's data from one rollout: ``(Minibatch [H, S, ...], values, returns)``.

    ``tr``: the rollout's transitions (``rollout.Transition``, leaves ``[T, N, A, ...]`` or
    ``[T, N]``); ``last_value [N, A]``; ``start_carries``: the recurrent carry at each sequence
    start (``()`` for feed-forward policies, which use ``horizon = 1``). Agents become rows
    (``B = N A``); advantages by :func:`gae` over ``[T, B]`` (``advantage="era_b"``:
    :func:`era_b_advantages` over segments of ``segment`` steps); returns = advantages + values.
    """
    T, N, A = tr.reward.shape
    rows = lambda x: x.reshape((T, N * A) + x.shape[3:])
    values = rows(tr.value)
    if advantage == "era_b":
        advantages = era_b_advantages(rows(tr.reward), values, rows(tr.terminated), gamma,
                                      gae_lambda, segment or T)
    else:
        advantages = gae(rows(tr.reward), values, rows(tr.terminated), rows(tr.truncated),
                         rows(tr.final_value), last_value.reshape(-1), gamma, gae_lambda)
    returns = advantages + values
    seq = lambda x: to_sequences(x, horizon)
    data = Minibatch(
        obs=jax.tree.map(lambda x: seq(rows(x)), tr.obs),
        actions=seq(rows(tr.action)), log_probs=seq(rows(tr.log_prob)), values=seq(values),
        advantages=seq(advantages), returns=seq(returns),
        resets=seq(jnp.repeat(tr.reset, A, axis=1)),
        carry=jax.tree.map(lambda c: c.reshape((-1,) + c.shape[2:]), start_carries),
    )
    return data, values, returns


def loss_fn(params, policy, coefs, mb: Minibatch, clip_vloss: bool = True):
    """Clipped PPO loss (surrogate, clipped value loss, entropy bonus) and its metrics.

    ``coefs``: dict with ``clip_coef``, ``vf_clip_coef``, ``ent_coef``, ``vf_coef`` (traced).
    """
    _, logits, values = policy.apply_sequence(params, mb.obs, mb.carry, mb.resets)
    log_all = jax.nn.log_softmax(logits)
    log_probs = jnp.take_along_axis(log_all, mb.actions[..., None], axis=-1)[..., 0]
    log_ratio = jnp.clip(log_probs - mb.log_probs, -10.0, 10.0)
    ratio = jnp.exp(log_ratio)
    adv = mb.advantages
    clip = coefs["clip_coef"]
    pg_loss = jnp.maximum(-adv * ratio, -adv * jnp.clip(ratio, 1.0 - clip, 1.0 + clip)).mean()
    v_unclipped = jnp.square(values - mb.returns)
    if clip_vloss:
        v_clipped = jnp.square(
            mb.values
            + jnp.clip(values - mb.values, -coefs["vf_clip_coef"], coefs["vf_clip_coef"])
            - mb.returns
        )
        v_loss = 0.5 * jnp.maximum(v_unclipped, v_clipped).mean()
    else:
        v_loss = 0.5 * v_unclipped.mean()
    entropy = -(jnp.exp(log_all) * log_all).sum(-1).mean()
    total = pg_loss - coefs["ent_coef"] * entropy + coefs["vf_coef"] * v_loss
    metrics = {
        "loss/policy_loss": pg_loss,
        "loss/value_loss": v_loss,
        "loss/entropy": entropy,
        "loss/approx_kl": ((ratio - 1.0) - log_ratio).mean(),
        "loss/clipfrac": (jnp.abs(ratio - 1.0) > clip).astype(jnp.float32).mean(),
        "loss/total": total,
    }
    return total, metrics


def normalize(x, axis_name=None, eps=1e-8):
    """Global mean/std normalisation; with ``axis_name`` the statistics span all devices."""
    mean, sq = x.mean(), jnp.square(x).mean()
    if axis_name is not None:
        mean, sq = jax.lax.pmean((mean, sq), axis_name)
    std = jnp.sqrt(jnp.maximum(sq - mean**2, 0.0))
    return (x - mean) / (std + eps)


def global_norm(tree) -> jax.Array:
    return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree)))


def lr_factor_schedule(ppo, total_opt_steps: int):
    """The learning-rate multiplier as an optax schedule of the optimizer step."""
    if ppo.lr_schedule == "linear":
        return optax.linear_schedule(1.0, ppo.lr_final_fraction, max(1, total_opt_steps))
    if ppo.lr_schedule == "cosine":
        return optax.cosine_decay_schedule(1.0, max(1, total_opt_steps), ppo.lr_final_fraction)
    return optax.constant_schedule(1.0)


def ent_factor_schedule(ppo, total_updates: int):
    if ppo.ent_schedule == "linear":
        return optax.linear_schedule(1.0, ppo.ent_final_fraction, max(1, total_updates))
    return optax.constant_schedule(1.0)


class Learner:
    """Epochs × minibatches of clipped-PPO optimizer steps on one rollout.

    Each minibatch is exactly one optimizer step. With ``grad_accum_steps = G > 1`` the
    minibatch is split into ``G`` equal micro-batches whose gradients are averaged (equal to
    the full-minibatch gradient: the loss is a mean and advantages are normalised over the
    whole minibatch first). With ``axis_name`` the data is sharded over devices: gradients,
    advantage statistics and metrics are averaged across the mesh; the permutation key is the
    same on every device. A step whose loss or gradient norm is not finite is skipped
    (parameters and optimizer state unchanged) and counted: a NaN or infinite gradient makes
    the norm so, and so does a finite one whose squares overflow float32.

    Per-minibatch work is kept to few kernels (on GPUs each costs a launch per minibatch): the
    finiteness test reads the one gradient norm, the minibatch's float and integer fields are
    gathered as one array each, and the metrics leave the minibatch loop as one vector.
    """

    def __init__(self, policy, ppo, *, total_updates: int, axis_name: str | None = None):
        self.policy, self.ppo, self.axis_name = policy, ppo, axis_name
        self.optimizer = optax.scale_by_adam(b1=ppo.adam_b1, b2=ppo.adam_b2, eps=ppo.adam_eps)
        steps_per_update = ppo.update_epochs * ppo.num_minibatches
        self.lr_factor = lr_factor_schedule(ppo, total_updates * steps_per_update)
        self.ent_factor = ent_factor_schedule(ppo, total_updates)

    def init(self, params):
        return self.optimizer.init(params)

    def _pmean(self, x):
        return x if self.axis_name is None else jax.lax.pmean(x, self.axis_name)

    def gradients(self, params, coefs, mb: Minibatch):
        """Loss gradient of one minibatch (accumulated over micro-batches), device-averaged."""
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        accum = self.ppo.grad_accum_steps
        if accum == 1:
            (loss, metrics), grads = grad_fn(params, self.policy, coefs, mb, self.ppo.clip_vloss)
        else:
            def split(x):  # [H, S, ...] -> [G, H, S/G, ...]
                return jnp.moveaxis(x.reshape((x.shape[0], accum, -1) + x.shape[2:]), 1, 0)

            seq = {f: jax.tree.map(split, getattr(mb, f)) for f in mb._fields if f != "carry"}
            carry = jax.tree.map(lambda c: c.reshape((accum, -1) + c.shape[1:]), mb.carry)
            micro = Minibatch(carry=carry, **seq)

            def loss_and_grad(m):
                (l, met), g = grad_fn(params, self.policy, coefs, m, self.ppo.clip_vloss)
                return l, met, g

            def body(acc, m):
                return jax.tree.map(jnp.add, acc, loss_and_grad(m)), None

            first = jax.tree.map(lambda x: x[0], micro)
            zero = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype),
                                jax.eval_shape(loss_and_grad, first))
            (loss, metrics, grads), _ = jax.lax.scan(body, zero, micro)
            loss, metrics, grads = jax.tree.map(lambda x: x / accum, (loss, metrics, grads))
        return self._pmean((loss, metrics, grads))

    def step(self, carry, mb: Minibatch, coefs, hp: Hyperparams):
        params, opt_state, opt_step = carry
        if self.ppo.norm_adv and self.ppo.norm_adv_scope == "minibatch":
            mb = mb._replace(advantages=normalize(mb.advantages, self.axis_name))
        loss, metrics, grads = self.gradients(params, coefs, mb)
        norm = global_norm(grads)
        finite = jnp.isfinite(loss) & jnp.isfinite(norm)
        scale = jnp.minimum(1.0, hp.max_grad_norm / (norm + 1e-6))
        grads = jax.tree.map(lambda g: jnp.where(finite, g * scale, 0.0), grads)
        grad_norm = jnp.where(finite, norm, 0.0)
        lr = hp.lr * self.lr_factor(opt_step)
        params, opt_state = self.adam(params, grads, opt_state, lr, finite)
        metrics = {**metrics, "train/grad_norm": grad_norm, "train/learning_rate": lr,
                   "train/skipped_steps": (~finite).astype(jnp.float32)}
        return (params, opt_state, opt_step + 1), metrics

    def adam(self, params, grads, state: optax.ScaleByAdamState, lr, finite):
        """``params - lr * adam(grads)``: optax's ``scale_by_adam`` arithmetic and state, with the
        skip of a non-finite step folded into the coefficients (decays 1, new-gradient weights
        0, learning rate 0, count unchanged) so that each leaf's parameter and moments come out
        of one elementwise expression, unchanged when skipped, with no select over every leaf."""
        ppo = self.ppo
        w1, d1 = jnp.where(finite, 1.0 - ppo.adam_b1, 0.0), jnp.where(finite, ppo.adam_b1, 1.0)
        w2, d2 = jnp.where(finite, 1.0 - ppo.adam_b2, 0.0), jnp.where(finite, ppo.adam_b2, 1.0)
        top = jnp.iinfo(jnp.int32).max
        count = jnp.where(finite & (state.count < top), state.count + 1, state.count)
        # Bias corrections; at count 0 (only a skipped first step) the moments are 0: keep 0/1.
        c1 = jnp.where(count > 0, 1 - ppo.adam_b1 ** count, 1.0)
        c2 = jnp.where(count > 0, 1 - ppo.adam_b2 ** count, 1.0)
        lr = jnp.where(finite, lr, 0.0)

        def leaf(p, g, m, v):
            m = w1 * g + d1 * m
            v = w2 * (g ** 2) + d2 * v
            u = (m / c1.astype(m.dtype)) / (jnp.sqrt(v / c2.astype(v.dtype) + 0.0) + ppo.adam_eps)
            return p - lr * u, m, v

        out = jax.tree.map(leaf, params, grads, state.mu, state.nu)
        pick = lambda i: jax.tree.map(lambda _, o: o[i], params, out)
        return pick(0), optax.ScaleByAdamState(count=count, mu=pick(1), nu=pick(2))

    def update(self, params, opt_state, opt_step, data: Minibatch, hp: Hyperparams, key,
               update_index):
        """All epochs on ``data`` (sequence form ``[H, S, ...]``); returns new params,
        optimizer state, step counter and the mean metrics over minibatches."""
        num_mb = self.ppo.num_minibatches
        coefs = {
            "clip_coef": hp.clip_coef,
            "vf_clip_coef": hp.vf_clip_coef,
            "vf_coef": hp.vf_coef,
            "ent_coef": hp.ent_coef * self.ent_factor(update_index),
        }
        num_seq = data.advantages.shape[1]
        if self.ppo.norm_adv and self.ppo.norm_adv_scope == "batch":
            data = data._replace(advantages=normalize(data.advantages, self.axis_name))
        rows_of = {f: getattr(data, f) for f in data._fields if f not in ("obs", "carry")}
        packed, unpack_rows = pack_leaves(rows_of)
        layout = {}   # how ``minibatch`` packed its metrics (set while tracing)

        def epoch(carry, k):
            # Each minibatch gathers its own rows inside the step instead of the epoch writing a
            # shuffled copy of the whole rollout first: for grid observations that copy was
            # the rollout's size (GBs) written and read again per epoch. (The gather itself stays
            # a copy of the minibatch; contiguous slices measured no better on the H100: XLA
            # copied the dynamic slice too.) Same minibatches, same order.
            perm = jax.random.permutation(k, num_seq).reshape(num_mb, num_seq // num_mb)

            def minibatch(c, rows):
                take = lambda x, axis: jnp.take(x, rows, axis=axis, mode="clip")
                mb = Minibatch(obs=jax.tree.map(lambda x: take(x, 1), data.obs),
                               carry=jax.tree.map(lambda x: take(x, 0), data.carry),
                               **unpack_rows(jax.tree.map(lambda x: take(x, 1), packed)))
                c, metrics = self.step(c, mb, coefs, hp)
                metrics, layout["unpack"] = pack_leaves(metrics)
                return c, metrics

            return jax.lax.scan(minibatch, carry, perm)

        keys = jax.random.split(key, self.ppo.update_epochs)
        (params, opt_state, opt_step), metrics = jax.lax.scan(
            epoch, (params, opt_state, opt_step), keys
        )
        metrics = layout["unpack"](metrics)
        skipped = metrics.pop("train/skipped_steps").sum()
        lr_last = metrics.pop("train/learning_rate")[-1, -1]
        metrics = jax.tree.map(jnp.mean, metrics)
        metrics["train/skipped_steps"] = skipped
        metrics["train/learning_rate"] = lr_last
        metrics["train/ent_coef"] = coefs["ent_coef"]
        return params, opt_state, opt_step, metrics
