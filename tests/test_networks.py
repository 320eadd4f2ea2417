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


@pytest.mark.parametrize("k", [2, 3])
def test_patch_conv_is_the_same_function_and_parameters_as_a_conv(k):
    """Kernel == stride convolutions run as a reshape + matrix product (PatchConv): same
    parameter tree, same initial values, same outputs as flax's VALID nn.Conv."""
    import flax.linen as nn

    from jaxrl_arena.networks import PatchConv

    x = jax.random.normal(jax.random.PRNGKey(0), (3, 25, 44, 10))
    conv = nn.Conv(7, (k, k), (k, k), padding="VALID", kernel_init=nn.initializers.orthogonal(1.0))
    patch = PatchConv(7, k)
    p_conv, p_patch = conv.init(jax.random.PRNGKey(1), x), patch.init(jax.random.PRNGKey(1), x)
    chex.assert_trees_all_equal_shapes(p_conv, p_patch)
    np.testing.assert_array_equal(p_conv["params"]["kernel"], p_patch["params"]["kernel"])
    params = {"params": {"kernel": p_conv["params"]["kernel"], "bias": jnp.arange(7.0)}}
    np.testing.assert_allclose(conv.apply(params, x), patch.apply(params, x), rtol=1e-5, atol=1e-5)


def test_bf16_cnn_keeps_float32_parameters_and_outputs_and_tracks_float32():
    """policy.compute_dtype=bfloat16 (recipe npp_grid): parameters and outputs stay float32 and
    the outputs stay within bf16 rounding of the float32 policy with the same parameters."""
    base = {"kind": "cnn", "hidden_sizes": (32,), "cnn_channels": (8, 16), "cnn_kernels": (2, 2),
            "cnn_strides": (2, 2), "actor_hidden": 16, "critic_hidden": 16}
    shape = (10, 25, 44)
    scale = np.full(shape[0], 1 / 255.0, np.float32)
    obs = jax.random.randint(jax.random.PRNGKey(0), (6,) + shape, 0, 256).astype(jnp.uint8)
    f32 = make_policy(PolicyConfig(**base), shape, 6, scale)
    bf16 = make_policy(PolicyConfig(**base, compute_dtype="bfloat16"), shape, 6, scale)
    params = f32.init(jax.random.PRNGKey(1), obs)
    chex.assert_trees_all_equal_shapes_and_dtypes(params, bf16.init(jax.random.PRNGKey(1), obs))
    _, l32, v32 = f32.apply(params, obs, (), None)
    _, l16, v16 = bf16.apply(params, obs, (), None)
    chex.assert_type([l16, v16], jnp.float32)
    np.testing.assert_allclose(l16, l32, atol=0.05 * float(jnp.abs(l32).max()) + 1e-3)
    np.testing.assert_allclose(v16, v32, atol=0.05 * float(jnp.abs(v32).max()) + 1e-3)
    assert not np.array_equal(np.asarray(l16), np.asarray(l32))     # it really computed in bf16


def test_cnn_reads_grids_channels_first_as_the_env_gives_them():
    """The policy moves [B, C, H, W] grids to channels-last itself: transposing the spatial axes
    of the input changes the output (no silent layout mix-up), and a per-channel scale
    multiplies its own channel."""
    cfg = PolicyConfig(kind="cnn", hidden_sizes=(16,), cnn_channels=(4,), cnn_kernels=(2,), cnn_strides=(2,),
                       actor_hidden=8, critic_hidden=8)
    shape = (3, 4, 4)
    obs = jax.random.randint(jax.random.PRNGKey(0), (2,) + shape, 0, 256).astype(jnp.uint8)
    zero_ch1 = np.array([1.0, 0.0, 1.0], np.float32)
    policy = make_policy(cfg, shape, 5, zero_ch1)
    params = policy.init(jax.random.PRNGKey(1), obs)
    logits = policy.apply(params, obs, (), None)[1]
    scrambled = obs.at[:, 1].set(255 - obs[:, 1])                 # channel 1 is scaled to 0: no effect
    np.testing.assert_allclose(policy.apply(params, scrambled, (), None)[1], logits, rtol=1e-6)
    changed = obs.at[:, 0].set(255 - obs[:, 0])
    assert not np.allclose(policy.apply(params, changed, (), None)[1], logits)
