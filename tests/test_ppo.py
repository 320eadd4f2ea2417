"""The PPO learner: loss sanity, gradient accumulation == big-batch gradient, non-finite
steps skipped, and the same update on 1 and 4 devices."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from jaxrl_arena.config import PolicyConfig, PPOConfig
from jaxrl_arena.networks import make_policy
from jaxrl_arena.ppo import Hyperparams, Learner, Minibatch, loss_fn

MLP = PolicyConfig(kind="mlp", hidden_sizes=(16, 16))
LSTM = PolicyConfig(kind="lstm", hidden_sizes=(16,), lstm_size=8, lstm_layers=1,
                    actor_hidden=16, critic_hidden=16)


def make_data(policy, params, H, S, key=0):
    k = jax.random.split(jax.random.PRNGKey(key), 6)
    obs = jax.random.normal(k[0], (H, S, 4))
    _, logits, values = policy.apply_sequence(params, obs, policy.initial_carry(S),
                                              jnp.zeros((H, S), bool))
    actions = jax.random.randint(k[1], (H, S), 0, 3)
    log_probs = jnp.take_along_axis(jax.nn.log_softmax(logits), actions[..., None], -1)[..., 0]
    adv = jax.random.normal(k[2], (H, S))
    carry = jax.tree.map(lambda c: 0.1 * jax.random.normal(k[3], c.shape), policy.initial_carry(S))
    return Minibatch(obs=obs, actions=actions, log_probs=log_probs + 0.05 * jax.random.normal(k[4], (H, S)),
                     values=values, advantages=adv, returns=adv + values,
                     resets=jax.random.bernoulli(k[5], 0.2, (H, S)), carry=carry)


def setup(cfg, H=4, S=16, **ppo_kwargs):
    policy = make_policy(cfg, (4,), 3)
    params = policy.init(jax.random.PRNGKey(0), jnp.zeros((2, 4)))
    ppo = dataclasses.replace(PPOConfig(), **ppo_kwargs)
    return policy, params, ppo, make_data(policy, params, H, S)


def coefs():
    return {"clip_coef": 0.2, "vf_clip_coef": 0.2, "ent_coef": 0.01, "vf_coef": 0.5}


def test_loss_at_the_old_policy():
    policy, params, _, data = setup(MLP, H=1)
    data = data._replace(log_probs=make_data(policy, params, 1, 16).log_probs * 0)
    _, logits, _ = policy.apply_sequence(params, data.obs, (), data.resets)
    lp = jnp.take_along_axis(jax.nn.log_softmax(logits), data.actions[..., None], -1)[..., 0]
    data = data._replace(log_probs=lp)
    _, m = loss_fn(params, policy, coefs(), data)
    assert float(m["loss/approx_kl"]) == pytest.approx(0.0, abs=1e-6)
    assert float(m["loss/clipfrac"]) == 0.0
    assert float(m["loss/policy_loss"]) == pytest.approx(-float(data.advantages.mean()), abs=1e-6)
    assert float(m["loss/value_loss"]) == pytest.approx(0.5 * float(jnp.square(data.advantages).mean()), rel=1e-5)


@pytest.mark.parametrize("cfg, H", [(MLP, 1), (LSTM, 4)])
def test_gradient_accumulation_equals_big_batch_gradient(cfg, H):
    policy, params, ppo, data = setup(cfg, H=H)
    big = Learner(policy, dataclasses.replace(ppo, grad_accum_steps=1), total_updates=1)
    acc = Learner(policy, dataclasses.replace(ppo, grad_accum_steps=4), total_updates=1)
    l1, m1, g1 = big.gradients(params, coefs(), data)
    l4, m4, g4 = acc.gradients(params, coefs(), data)
    assert float(l1) == pytest.approx(float(l4), rel=1e-5)
    chex.assert_trees_all_close(g1, g4, rtol=1e-4, atol=1e-7)
    chex.assert_trees_all_close(m1, m4, rtol=1e-4, atol=1e-7)


def test_non_finite_steps_are_skipped_and_counted():
    policy, params, ppo, data = setup(MLP, H=1, num_minibatches=1, update_epochs=3)
    learner = Learner(policy, ppo, total_updates=1)
    opt = learner.init(params)
    hp = Hyperparams.from_config(ppo)
    bad = data._replace(advantages=data.advantages.at[0, 3].set(jnp.nan))
    new_params, new_opt, step, m = learner.update(params, opt, jnp.int32(0), bad, hp,
                                                  jax.random.PRNGKey(1), jnp.int32(0))
    chex.assert_trees_all_equal(new_params, params)
    chex.assert_trees_all_equal(new_opt, opt)
    assert float(m["train/skipped_steps"]) == 3 and int(step) == 3
    # With two minibatches only the one holding the NaN is skipped, once per epoch.
    two = Learner(policy, dataclasses.replace(ppo, num_minibatches=2), total_updates=1)
    _, _, _, m2 = two.update(params, opt, jnp.int32(0), bad, hp, jax.random.PRNGKey(1), jnp.int32(0))
    assert float(m2["train/skipped_steps"]) == 3
    # The same data without the NaN moves the parameters.
    good_params, _, _, m = learner.update(params, opt, jnp.int32(0), data, hp,
                                          jax.random.PRNGKey(1), jnp.int32(0))
    assert float(m["train/skipped_steps"]) == 0
    assert not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(good_params), jax.tree.leaves(params)))


@pytest.mark.parametrize("cfg, H", [(MLP, 1), (LSTM, 4)])
def test_one_and_four_devices_give_the_same_update(cfg, H):
    devices = jax.devices()
    assert len(devices) >= 4, "conftest sets --xla_force_host_platform_device_count=4"
    policy, params, ppo, data = setup(cfg, H=H, S=32, num_minibatches=1, update_epochs=2)
    hp = Hyperparams.from_config(ppo)

    def run(n):
        learner = Learner(policy, ppo, total_updates=1, axis_name="env")
        mesh = Mesh(np.asarray(devices[:n]), ("env",))
        seq, carry = P(None, "env"), P("env")
        specs = Minibatch(obs=seq, actions=seq, log_probs=seq, values=seq, advantages=seq,
                          returns=seq, resets=seq, carry=carry)
        fn = jax.shard_map(
            lambda p, d: learner.update(p, learner.init(p), jnp.int32(0), d, hp,
                                        jax.random.PRNGKey(3), jnp.int32(0))[0],
            mesh=mesh, in_specs=(P(), specs), out_specs=P(), check_vma=False)
        return jax.jit(fn)(params, data)

    one, four = run(1), run(4)
    moved = sum(float(jnp.abs(a - b).sum()) for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(params)))
    assert moved > 0
    chex.assert_trees_all_close(one, four, rtol=2e-5, atol=2e-6)


def test_fused_adam_equals_optax_and_a_skipped_step_changes_nothing():
    """``Learner.adam`` is optax's ``scale_by_adam`` (then ``p - lr u``), bit for bit under jit,
    and a non-finite step leaves parameters and moments exactly as they were."""
    learner = Learner(None, PPOConfig(), total_updates=10)
    k = jax.random.split(jax.random.PRNGKey(0), 3)
    params = {"w": jax.random.normal(k[0], (64, 64)), "b": jax.random.normal(k[1], (7,))}
    ours = ref = (params, learner.init(params))
    lr = jnp.float32(3e-4)

    @jax.jit
    def optax_step(g, state):
        p, opt = state
        updates, opt = learner.optimizer.update(g, opt, p)
        return jax.tree.map(lambda a, u: a - lr * u, p, updates), opt

    adam = jax.jit(learner.adam)
    for i in range(5):
        key = jax.random.fold_in(k[2], i)
        g = jax.tree.map(lambda x, key=key: jax.random.normal(key, x.shape), params)
        ours = adam(ours[0], g, ours[1], lr, jnp.bool_(True))
        ref = optax_step(g, ref)
        zeros = jax.tree.map(jnp.zeros_like, g)
        skipped = adam(ours[0], zeros, ours[1], lr, jnp.bool_(False))
        chex.assert_trees_all_equal(skipped, ours)
    chex.assert_trees_all_equal(ours, ref)
    assert int(ours[1].count) == 5


class FixedOutputs:
    """A stand-in policy whose per-sample logits and values are given (the observation is the
    sample's index into them): the loss by hand."""

    def __init__(self, logits, values):
        self.logits, self.values = jnp.asarray(logits), jnp.asarray(values)

    def apply_sequence(self, params, obs, carry, resets):
        i = obs[..., 0].astype(jnp.int32)
        return carry, self.logits[0][i], self.values[0][i]


@pytest.mark.parametrize("clip_vloss, value_loss", [(True, 0.428125), (False, 0.288125)])
def test_clipped_losses_by_hand(clip_vloss, value_loss):
    """Two samples, worked by hand (clip 0.2, value clip 0.1, no entropy weight):
    ratios 1.5 and 0.5 with advantages +1 and -1: surrogate max(-1.5, -1.2) = -1.2 and
    max(0.5, 0.8) = 0.8, mean -0.2. Values: V_old 1, V 1.5, R 2: (V-R)^2 = 0.25, clipped
    (1.1-2)^2 = 0.81; V_old 1, V 0.95, R 0: both 0.9025. Clipped: 0.5 * (0.81 + 0.9025) / 2;
    unclipped: 0.5 * (0.25 + 0.9025) / 2."""
    logits = jnp.zeros((1, 2, 2))  # uniform: log pi(a) = log 0.5 for both actions
    policy = FixedOutputs(logits, [[1.5, 0.95]])
    log_half = float(np.log(0.5))
    mb = Minibatch(obs=jnp.arange(2.0).reshape(1, 2, 1), actions=jnp.zeros((1, 2), jnp.int32),
                   log_probs=jnp.asarray([[log_half - np.log(1.5), log_half - np.log(0.5)]]),
                   values=jnp.asarray([[1.0, 1.0]]), advantages=jnp.asarray([[1.0, -1.0]]),
                   returns=jnp.asarray([[2.0, 0.0]]), resets=jnp.zeros((1, 2), bool), carry=())
    c = {"clip_coef": 0.2, "vf_clip_coef": 0.1, "ent_coef": 0.0, "vf_coef": 0.5}
    total, m = loss_fn(None, policy, c, mb, clip_vloss=clip_vloss)
    assert float(m["loss/policy_loss"]) == pytest.approx(-0.2, abs=1e-6)
    assert float(m["loss/value_loss"]) == pytest.approx(value_loss, abs=1e-6)
    assert float(m["loss/clipfrac"]) == 1.0  # both ratios outside [0.8, 1.2]
    assert float(total) == pytest.approx(-0.2 + 0.5 * value_loss, abs=1e-6)


@pytest.mark.parametrize("scope", ["minibatch", "batch"])
def test_advantage_normalisation_scope(scope):
    """ppo.norm_adv_scope: the surrogate of each minibatch sees advantages standardised with
    its own statistics ("minibatch") or with the whole rollout's ("batch"); worked in numpy
    from the learner's minibatch split (one epoch, two minibatches, clipped ratios 1.3/0.7)."""
    S = 8
    adv = np.arange(S, dtype=np.float64) ** 2
    ratio = np.where(np.arange(S) % 2 == 0, 1.3, 0.7)
    policy = FixedOutputs(jnp.zeros((1, S, 2)), jnp.zeros((1, S)))
    log_half = np.log(0.5)
    data = Minibatch(obs=jnp.arange(float(S)).reshape(1, S, 1), actions=jnp.zeros((1, S), jnp.int32),
                     log_probs=jnp.asarray((log_half - np.log(ratio))[None], jnp.float32),
                     values=jnp.zeros((1, S)), advantages=jnp.asarray(adv[None], jnp.float32),
                     returns=jnp.zeros((1, S)), resets=jnp.zeros((1, S), bool), carry=())
    ppo = dataclasses.replace(PPOConfig(), num_minibatches=2, update_epochs=1,
                              norm_adv_scope=scope, ent_coef=0.0)
    learner = Learner(policy, ppo, total_updates=1)
    key = jax.random.PRNGKey(3)
    *_, metrics = learner.update({}, learner.init({}), jnp.int32(0), data,
                                 Hyperparams.from_config(ppo), key, 0)

    def standardise(x):
        return (x - x.mean()) / (np.sqrt(max((x ** 2).mean() - x.mean() ** 2, 0.0)) + 1e-8)

    groups = np.asarray(jax.random.permutation(jax.random.split(key, 1)[0], S)).reshape(2, -1)
    batch = standardise(adv)
    losses = []
    for rows in groups:
        a = batch[rows] if scope == "batch" else standardise(adv[rows])
        r = ratio[rows]
        losses.append(np.maximum(-a * r, -a * np.clip(r, 0.8, 1.2)).mean())
    assert float(metrics["loss/policy_loss"]) == pytest.approx(np.mean(losses), abs=1e-5)
    # The two scopes differ here (the check above could not pass for both by accident).
    other = [np.maximum(-x * ratio[rows], -x * np.clip(ratio[rows], 0.8, 1.2)).mean()
             for rows in groups
             for x in [standardise(adv[rows]) if scope == "batch" else batch[rows]]]
    assert abs(np.mean(other) - np.mean(losses)) > 1e-3
