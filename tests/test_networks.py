"""Policies: shapes and dtypes, uint8 scaling, and recurrent resets that really zero the carry."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_arena.config import PolicyConfig, PPOConfig
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


@pytest.mark.parametrize("kernels", [(2,), (2, 2), (3, 2), (2, 3, 2)])
def test_patch_stack_torso_equals_a_stack_of_convs(kernels):
    """A torso whose kernels equal their strides reads [B, C, H, W] grids through one patch
    rearrangement (patch_rows) and matrix products: the same parameters and the same function
    as flax VALID convolutions with ReLUs over the channels-last grid, flattened (h, w, c),
    including the crops of sizes that the kernels do not divide (25 x 44)."""
    import flax.linen as nn

    from jaxrl_arena.networks import ConvTorso

    channels = (5, 6, 7)[:len(kernels)]

    class Reference(nn.Module):
        @nn.compact
        def __call__(self, x):
            for i, (c, k) in enumerate(zip(channels, kernels)):
                x = nn.relu(nn.Conv(c, (k, k), (k, k), padding="VALID", name=f"Conv_{i}",
                                    kernel_init=nn.initializers.orthogonal(1.0))(x))
            return x.reshape(x.shape[0], -1)

    x = jax.random.normal(jax.random.PRNGKey(0), (3, 4, 25, 44))            # [B, C, H, W]
    nhwc = jnp.transpose(x, (0, 2, 3, 1))
    torso = ConvTorso(channels, kernels, kernels)
    params = torso.init(jax.random.PRNGKey(1), x)
    ref_params = Reference().init(jax.random.PRNGKey(1), nhwc)
    chex.assert_trees_all_equal_shapes(params, ref_params)
    chex.assert_trees_all_equal(params, ref_params)        # same initial values too
    # non-zero biases so that a misplaced row or feature shows
    params = jax.tree.map(lambda p: p + 0.01 * jnp.arange(p.size).reshape(p.shape) / p.size, params)
    out, ref = torso.apply(params, x), Reference().apply(params, nhwc)
    chex.assert_equal_shape([out, ref])
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


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


@pytest.mark.parametrize("scale_kind", ["none", "channel", "spatial"])
def test_packed_observations_give_the_same_outputs(scale_kind):
    """Patch-stack conv policies read observations "packed" (``Policy.pack``: the first layer's
    patch rows, a pure uint8 rearrangement that rollouts store for the learner); ``apply`` on
    packed and on raw grids agree for per-channel and per-pixel observation scales."""
    cfg = PolicyConfig(kind="cnn", hidden_sizes=(16,), cnn_channels=(4, 6), cnn_kernels=(2, 2),
                       cnn_strides=(2, 2), actor_hidden=8, critic_hidden=8)
    shape = (3, 9, 10)
    scale = {"none": None, "channel": np.array([1 / 255, 2 / 255, 0.5 / 255], np.float32),
             "spatial": (np.arange(np.prod(shape), dtype=np.float32).reshape(shape) + 1) / 1e4}[scale_kind]
    policy = make_policy(cfg, shape, 5, scale)
    obs = jax.random.randint(jax.random.PRNGKey(0), (4,) + shape, 0, 256).astype(jnp.uint8)
    packed = policy.pack(obs)
    chex.assert_shape(packed, (4,) + policy.packed_shape)
    chex.assert_type(packed, jnp.uint8)
    assert policy.packed_shape == (4 * 2 * 2, 2 * 2 * 3)        # rows (h2, w2, ky1, kx1), (ky0, kx0, c)
    np.testing.assert_array_equal(np.sort(np.asarray(packed).reshape(4, -1), axis=1),
                                  np.sort(np.asarray(obs)[:, :, :8, :8].reshape(4, -1), axis=1))
    np.testing.assert_array_equal(policy.pack(packed), packed)  # packing is idempotent
    params = policy.init(jax.random.PRNGKey(1), obs)
    _, logits_raw, value_raw = policy.apply(params, obs, (), None)
    _, logits_packed, value_packed = policy.apply(params, packed, (), None)
    np.testing.assert_allclose(logits_packed, logits_raw, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(value_packed, value_raw, rtol=1e-6, atol=1e-6)
    if scale is not None:   # the packed scale multiplies the right pixels: scaling by hand agrees
        by_hand = np.asarray(obs, np.float32) * np.broadcast_to(
            scale.reshape(scale.shape + (1,) * (3 - scale.ndim)), shape)
        unscaled = make_policy(cfg, shape, 5, None)
        np.testing.assert_allclose(unscaled.apply(params, jnp.asarray(by_hand), (), None)[1], logits_raw,
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_uint8_grids_pack_as_int8_and_compute_the_same_function(dtype):
    """With ``obs_dtype=uint8`` a patch-stack policy stores its packed rows as int8 (value - 128:
    GPU matrix products read int8 directly, not uint8) and adds the 128 back exactly: outputs
    are bit-identical to packing as uint8, in float32 and bf16, raw or packed input, including
    the extreme bytes 0, 127, 128 and 255."""
    cfg = PolicyConfig(kind="cnn", hidden_sizes=(16,), cnn_channels=(4, 6), cnn_kernels=(2, 2),
                       cnn_strides=(2, 2), actor_hidden=8, critic_hidden=8, compute_dtype=dtype)
    shape = (3, 9, 10)
    scale = np.array([1 / 255, 2 / 255, 0.5 / 255], np.float32)
    as_uint8 = make_policy(cfg, shape, 5, scale)
    as_int8 = make_policy(cfg, shape, 5, scale, obs_dtype=jnp.uint8)
    obs = jax.random.randint(jax.random.PRNGKey(0), (4,) + shape, 0, 256).astype(jnp.uint8)
    obs = obs.at[0, 0, :4, :4].set(jnp.array([0, 127, 128, 255], jnp.uint8))
    packed = as_int8.pack(obs)
    chex.assert_type(packed, jnp.int8)
    chex.assert_shape(packed, (4,) + as_int8.packed_shape)
    np.testing.assert_array_equal(np.asarray(packed).astype(np.int32) + 128, np.asarray(as_uint8.pack(obs)))
    np.testing.assert_array_equal(as_int8.pack(packed), packed)   # packing is idempotent
    params = as_uint8.init(jax.random.PRNGKey(1), obs)
    ref = as_uint8.apply(params, obs, (), None)
    for x in (obs, packed):
        out = as_int8.apply(params, x, (), None)
        np.testing.assert_array_equal(out[1], ref[1])
        np.testing.assert_array_equal(out[2], ref[2])
    # grids of other dtypes keep their own (pure rearrangement) packing
    chex.assert_type(make_policy(cfg, shape, 5, scale, obs_dtype=jnp.float32).pack(obs.astype(jnp.float32)),
                     jnp.float32)


@pytest.mark.parametrize("kernels,strides", [((2, 2), (2, 2)), ((3,), (1,))])
def test_conv_without_bias_is_the_biased_torso_at_zero_bias(kernels, strides):
    """``policy.cnn_bias=false`` drops only the conv layers' bias parameters (patch stacks and
    ``nn.Conv`` alike): the function equals the biased torso with its conv biases at zero, and
    dense layers keep theirs."""
    base = dict(kind="cnn", hidden_sizes=(16,), cnn_channels=(4,) * len(kernels), cnn_kernels=kernels,
                cnn_strides=strides, actor_hidden=8, critic_hidden=8)
    shape = (3, 8, 8)
    obs = jax.random.randint(jax.random.PRNGKey(0), (2,) + shape, 0, 256).astype(jnp.uint8)
    with_bias = make_policy(PolicyConfig(**base), shape, 5)
    without = make_policy(PolicyConfig(**base, cnn_bias=False), shape, 5)
    p_without = without.init(jax.random.PRNGKey(1), obs)
    convs = p_without["params"]["Encoder_0"]["ConvTorso_0"]
    assert all(set(layer) == {"kernel"} for layer in convs.values()), convs
    assert "bias" in p_without["params"]["Encoder_0"]["Dense_0"]
    p_with = jax.tree.map(lambda x: x, p_without)          # a copy of the nested dicts, then zero biases
    for layer in p_with["params"]["Encoder_0"]["ConvTorso_0"].values():
        layer["bias"] = jnp.zeros(layer["kernel"].shape[-1])
    reference = with_bias.init(jax.random.PRNGKey(1), obs)
    assert jax.tree.structure(p_with) == jax.tree.structure(reference)
    assert jax.tree.map(jnp.shape, p_with) == jax.tree.map(jnp.shape, reference)
    assert all(set(layer) == {"kernel"} for layer in convs.values())   # the copy left p_without as it was
    a, b = with_bias.apply(p_with, obs, (), None), without.apply(p_without, obs, (), None)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(a[2], b[2], rtol=1e-6, atol=1e-6)


NORM_CASES = [  # (policy config, observation shape, dtype, per-channel scale)
    (PolicyConfig(kind="mlp", hidden_sizes=(16,)), (5,), jnp.float32, None),
    (PolicyConfig(kind="cnn", hidden_sizes=(16,), cnn_channels=(4,), cnn_kernels=(2,),
                  cnn_strides=(2,), actor_hidden=8, critic_hidden=8), (3, 8, 8), jnp.uint8,
     np.full(3, 1 / 255.0, np.float32)),
    (PolicyConfig(kind="cnn", hidden_sizes=(16,), cnn_channels=(4,), cnn_kernels=(3,),
                  cnn_strides=(1,), actor_hidden=8, critic_hidden=8), (3, 8, 8), jnp.uint8,
     np.full(3, 1 / 255.0, np.float32)),
]


@pytest.mark.parametrize("cfg, shape, dtype, scale", NORM_CASES)
def test_obs_norm_is_a_layer_of_its_own_and_the_identity_until_set(cfg, shape, dtype, scale):
    """``policy.obs_norm`` (off by default) adds exactly ``params/obs_norm/{mean,std}`` and
    renames nothing (a policy without it transfers by name); at its initial (0, 1) statistics
    the outputs are those of the policy without it; set statistics change them as
    ``(x - mean) / std`` does, per feature of the network's input (patch rows, channels-last)."""
    assert not PolicyConfig().obs_norm
    obs = jax.random.randint(jax.random.PRNGKey(0), (4,) + shape, 0, 5).astype(dtype)
    plain = make_policy(cfg, shape, 3, scale, dtype)
    normed = make_policy(dataclasses.replace(cfg, obs_norm=True), shape, 3, scale, dtype)
    p_plain = jax.jit(plain.init)(jax.random.PRNGKey(1), obs)
    p_norm = jax.jit(normed.init)(jax.random.PRNGKey(1), obs)
    assert "obs_norm" not in p_plain["params"]
    stats = p_norm["params"].pop("obs_norm")
    chex.assert_trees_all_equal(p_norm, p_plain)
    chex.assert_shape([stats["mean"], stats["std"]], normed.obs_norm_shape())
    p_norm["params"]["obs_norm"] = stats
    run_plain = jax.jit(lambda p, o: plain.apply(p, o, (), None)[1:])
    run_normed = jax.jit(lambda p, o: normed.apply(p, o, (), None)[1:])
    for a, b in zip(run_plain(p_plain, obs), run_normed(p_norm, obs)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    x = np.asarray(normed.network_input(obs), np.float32).reshape(4, -1)
    mean, std = x.mean(0), x.std(0)
    p_set = normed.set_obs_norm(p_norm, mean, std)
    std_used = np.asarray(p_set["params"]["obs_norm"]["std"]).reshape(-1)
    np.testing.assert_array_equal(std_used, np.where(std < 1e-6, 1.0, std).astype(np.float32))
    # Equivalent to the plain policy reading the normalised input itself.
    z = jnp.asarray(((x - mean) / std_used).reshape((4,) + normed.obs_norm_shape()))
    ref = jax.jit(plain.module.apply)(p_plain, z)
    np.testing.assert_allclose(run_normed(p_set, obs)[0], ref[0], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="obs_norm=true"):
        plain.set_obs_norm(p_plain, mean, std)


def test_optimizer_steps_leave_the_obs_norm_statistics_bit_identical():
    """The statistics get a zero gradient (stop_gradient) and PPO's Adam (``Learner.adam``, no
    weight decay) then moves them by exactly 0 while every trained leaf moves."""
    from jaxrl_arena.ppo import Learner

    cfg = PolicyConfig(kind="mlp", hidden_sizes=(8,), obs_norm=True)
    policy = make_policy(cfg, (3,), 4)
    obs = jax.random.normal(jax.random.PRNGKey(0), (6, 3))
    params = policy.set_obs_norm(policy.init(jax.random.PRNGKey(1), obs), [0.5, -1.0, 2.0],
                                 [2.0, 0.5, 3.0])

    def loss(p):
        _, logits, value = policy.apply(p, obs, (), None)
        return jnp.sum(logits ** 2) + jnp.sum(value ** 2)

    grad = jax.jit(jax.grad(loss))
    assert all(float(jnp.abs(g).max()) == 0.0
               for g in jax.tree.leaves(grad(params)["params"]["obs_norm"]))
    learner = Learner(policy, PPOConfig(), total_updates=1)
    step = jax.jit(lambda p, s: learner.adam(p, grad(p), s, 1e-2, jnp.bool_(True)))
    new, state = params, learner.init(params)
    for _ in range(3):
        new, state = step(new, state)
    chex.assert_trees_all_equal(new["params"]["obs_norm"], params["params"]["obs_norm"])
    moved = [not np.array_equal(a, b) for a, b in zip(
        jax.tree.leaves(new["params"]["Dense_0"]), jax.tree.leaves(params["params"]["Dense_0"]))]
    assert all(moved)
