"""Policies: shapes and dtypes, uint8 scaling, and recurrent resets that really zero the carry."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_arena.config import PolicyConfig
from jaxrl_arena.networks import make_policy

SMALL_LSTM = PolicyConfig(kind="lstm", hidden_sizes=(16,), lstm_size=8, lstm_layers=2,
                          actor_hidden=16, critic_hidden=16, cnn_channels=(8, 8))


@pytest.mark.parametrize("cfg, shape, dtype", [
    (PolicyConfig(kind="mlp", hidden_sizes=(16, 16)), (4,), jnp.float32),
    (PolicyConfig(kind="cnn", hidden_sizes=(32,), cnn_channels=(8, 8), actor_hidden=16,
                  critic_hidden=16), (27, 11, 11), jnp.uint8),
    (SMALL_LSTM, (27, 11, 11), jnp.uint8),
    (SMALL_LSTM, (4,), jnp.float32),
])
def test_policy_shapes_and_dtypes(cfg, shape, dtype):
    scale = np.full(shape[0], 1 / 255.0, np.float32) if len(shape) == 3 else None
    policy = make_policy(cfg, shape, 16, scale)
    obs = jax.random.randint(jax.random.PRNGKey(0), (5,) + shape, 0, 255).astype(dtype)
    params = policy.init(jax.random.PRNGKey(1), obs)
    carry, logits, value = policy.apply(params, obs, policy.initial_carry(5), jnp.zeros(5, bool))
    chex.assert_shape(logits, (5, 16))
    chex.assert_shape(value, (5,))
    chex.assert_type([logits, value], jnp.float32)
    chex.assert_tree_all_finite((carry, logits, value))
    carry, logits_seq, value_seq = policy.apply_sequence(
        params, jnp.stack([obs, obs, obs]), policy.initial_carry(5), jnp.zeros((3, 5), bool))
    chex.assert_shape(logits_seq, (3, 5, 16))
    chex.assert_shape(value_seq, (3, 5))


def test_cnn_without_grid_is_a_clear_error():
    with pytest.raises(ValueError, match="policy.kind=cnn needs"):
        make_policy(PolicyConfig(kind="cnn"), (4,), 2)


def test_lstm_reset_zeroes_the_carry():
    policy = make_policy(SMALL_LSTM, (4,), 3)
    key = jax.random.PRNGKey(0)
    obs = jax.random.normal(key, (6, 4))
    params = policy.init(key, obs)
    zero = policy.initial_carry(6)
    # A non-trivial carry after a few steps.
    carry = zero
    for _ in range(3):
        carry, _, _ = policy.apply(params, obs, carry, jnp.zeros(6, bool))
    assert float(jnp.abs(carry[0][1]).sum()) > 0
    reset = jnp.array([True, False, True, False, True, False])
    out_reset = policy.apply(params, obs, carry, reset)
    out_zero = policy.apply(params, obs, zero, jnp.zeros(6, bool))
    out_keep = policy.apply(params, obs, carry, jnp.zeros(6, bool))
    rows = np.asarray(reset)
    for a, z, k in zip(jax.tree.leaves(out_reset), jax.tree.leaves(out_zero), jax.tree.leaves(out_keep)):
        np.testing.assert_array_equal(np.asarray(a)[rows], np.asarray(z)[rows])
        np.testing.assert_array_equal(np.asarray(a)[~rows], np.asarray(k)[~rows])
    assert not np.allclose(np.asarray(out_keep[1])[rows], np.asarray(out_zero[1])[rows])


def test_sequence_scan_matches_manual_steps_with_resets():
    policy = make_policy(SMALL_LSTM, (4,), 3)
    key = jax.random.PRNGKey(2)
    obs = jax.random.normal(key, (5, 3, 4))
    resets = jnp.array([[1, 0, 0], [0, 1, 0], [0, 0, 0], [1, 0, 1], [0, 0, 0]], bool)
    params = policy.init(key, obs[0])
    carry = policy.initial_carry(3)
    _, logits_seq, values_seq = policy.apply_sequence(params, obs, carry, resets)
    for t in range(5):
        carry, logits, values = policy.apply(params, obs[t], carry, resets[t])
        np.testing.assert_allclose(logits, logits_seq[t], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(values, values_seq[t], rtol=1e-5, atol=1e-6)
