"""Actor-critic policies: MLP, CNN over a dense ``[C, H, W]`` grid, and recurrent (LSTM).

Every policy is used through :class:`Policy`, one interface for feed-forward and recurrent
networks, so the rollout and the learner never branch on the kind:

* ``policy.init(key, obs)`` -> params (``obs`` is a batch ``[B, ...]``);
* ``policy.initial_carry(B)`` -> the zero recurrent carry (``()`` for feed-forward);
* ``policy.apply(params, obs[B], carry, reset[B]) -> (carry, logits[B, nA], value[B])``:
  ``reset`` zeroes the carry of rows whose episode starts at this step, *before* the step;
* ``policy.apply_sequence(params, obs[T, B], carry, reset[T, B])`` scans ``apply`` over time.

With ``policy.obs_norm`` the network first standardises its input with fixed per-feature
statistics held *in its parameters* (:class:`ObsNorm`, ``params/obs_norm/{mean,std}``), so
every caller of ``apply`` (rollout, learner, evaluation, rendering, behaviour cloning, loaded
artefacts) sees the same normalised input; without it the network has no such layer at all.

The recurrent shape is Metta's "fast" policy (spec arena.md §13.3): CNN → 2×128 MLP →
2-layer LSTM 128 → actor 512 → logits, critic 1024 (tanh) → value.

Section marks (§) cite docs/specs/arena.md.
"""

from __future__ import annotations

from typing import Any, Sequence

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxrl_arena.config import PolicyConfig

_ACTIVATIONS = {"tanh": nn.tanh, "relu": nn.relu}
# Normalised inputs are clipped to +-10: npp-rl applied its BC statistics through SB3's
# VecNormalize, whose clip_obs is 10 (npp.md §11); a feature far outside the statistics' range
# (a level unlike the human ones) cannot then dominate the first layer.
OBS_NORM_CLIP = 10.0
# A feature whose std over the data is below this is constant there: it is divided by 1 (only
# centred), not amplified (npp-rl's ObservationNormalizer, npp.md §11).
OBS_NORM_STD_FLOOR = 1e-6


def compute_dtype(cfg: PolicyConfig):
    """The layers' arithmetic dtype (``policy.compute_dtype``); parameters stay float32."""
    return jnp.bfloat16 if cfg.compute_dtype == "bfloat16" else jnp.float32


def _dense(features: int, gain: float = np.sqrt(2.0), dtype=jnp.float32) -> nn.Dense:
    return nn.Dense(features, kernel_init=nn.initializers.orthogonal(gain),
                    bias_init=nn.initializers.zeros, dtype=dtype)


def _prepare(obs: jax.Array, scale: np.ndarray | None, channels_last: bool = False,
             dtype=jnp.float32, offset: int = 0) -> jax.Array:
    """uint8/bool/float obs -> ``dtype`` (the layers' arithmetic), plus ``offset`` (int8-packed
    uint8 grids: 128, exact), times a fixed (per-channel) scale, given in the layout of the
    result. ``channels_last``: ``[B, C, H, W]`` grids become ``[B, H, W, C]`` *before* the cast,
    so the layout change moves the 1-byte observation, not a 4-byte copy of it."""
    if channels_last:
        obs = jnp.transpose(obs, (0, 2, 3, 1))
    x = obs.astype(dtype)
    if offset:
        x = x + jnp.asarray(offset, dtype)
    if scale is not None:
        x = x * jnp.asarray(scale, dtype)
    return x


class ObsNorm(nn.Module):
    """``clip((x - mean) / std, -10, 10)`` per feature of the network's input ``x[B, ...]``,
    with ``mean`` and ``std`` parameters of shape ``x.shape[1:]`` (the layout ``Policy`` hands
    the network: packed patch rows for patch-stack CNNs). They start as the identity (0, 1) and
    are set from data (:meth:`Policy.set_obs_norm`); the gradient stops at them, so an optimizer
    step (zero gradient, no weight decay) leaves them bit-identical."""

    @nn.compact
    def __call__(self, x):
        shape = x.shape[1:]
        mean = jax.lax.stop_gradient(self.param("mean", nn.initializers.zeros, shape, jnp.float32))
        std = jax.lax.stop_gradient(self.param("std", nn.initializers.ones, shape, jnp.float32))
        y = jnp.clip((x.astype(jnp.float32) - mean) / std, -OBS_NORM_CLIP, OBS_NORM_CLIP)
        return y.astype(x.dtype)


def obs_norm_std(std: np.ndarray) -> np.ndarray:
    """Per-feature std as :class:`ObsNorm` divides by: 1 where the feature is constant."""
    std = np.asarray(std, np.float32)
    return np.where(std < OBS_NORM_STD_FLOOR, np.float32(1.0), std)


class PatchConv(nn.Module):
    """A VALID convolution whose kernel equals its stride (non-overlapping k x k patches) as a
    reshape and one matrix product: the same function and the same parameters (names, shapes,
    initial values) as ``nn.Conv``, but cuBLAS matrix products instead of cuDNN convolutions,
    which handle few input channels (the N++ grid has 10) with slow generic kernels.

    Input: ``[B, H, W, C]`` (NHWC), or with ``rows=True`` patch rows ``[B, R, k * k * C]``
    whose features are ordered ``(ky, kx, c)`` (see :func:`patch_rows`); output ``[B, ho, wo,
    F]`` or ``[B, R, F]``."""

    features: int
    k: int
    dtype: Any = jnp.float32
    use_bias: bool = True

    @nn.compact
    def __call__(self, x, rows: bool = False):
        k = self.k
        if rows:
            c = x.shape[-1] // (k * k)
        else:
            b, h, w, c = x.shape
            ho, wo = h // k, w // k
            x = x[:, :ho * k, :wo * k, :].reshape(b, ho, k, wo, k, c).transpose(0, 1, 3, 2, 4, 5)
            x = x.reshape(b, ho, wo, k * k * c)
        kernel = self.param("kernel", nn.initializers.orthogonal(1.0), (k, k, c, self.features))
        y = jnp.dot(x.astype(self.dtype), kernel.reshape(k * k * c, self.features).astype(self.dtype))
        if not self.use_bias:
            return y
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        return y + bias.astype(self.dtype)


def is_patch_stack(kernels: Sequence[int], strides: Sequence[int]) -> bool:
    """Every layer's kernel equals its stride: the torso runs as :func:`patch_rows` + matmuls."""
    return len(kernels) > 0 and all(int(k) == int(s) for k, s in zip(kernels, strides))


def patch_rows(x: jax.Array, kernels: Sequence[int]) -> jax.Array:
    """``[B, C, H, W]`` -> the first layer's patches ``[B, R, k0 * k0 * C]`` of a stack of
    kernel == stride convolutions, with the rows ordered so that every later layer's patches are
    *consecutive* rows: row = ``(h_L, w_L, ky_L, kx_L, ..., ky_1, kx_1)`` (layer ``L`` last).

    A convolution is the same matrix product at every output position, so the order of the
    rows is free; in this order layer ``i + 1``'s input is a plain reshape of layer ``i``'s
    output (features ``(ky, kx, c)``, as ``nn.Conv`` flattens its kernel), and the only layout
    change of the whole torso is this one, on the input (no gradient flows to it), instead of a
    transpose per layer and another per layer in the backward pass. Each layer crops like a
    VALID convolution (``floor(size / k)``), so the crop is done here, once."""
    b, c, h, w = x.shape
    ks = [int(k) for k in kernels]
    n = len(ks)
    total = int(np.prod(ks))
    ho, wo = h, w
    for k in ks:
        ho, wo = ho // k, wo // k
    x = x[:, :, :ho * total, :wo * total].reshape((b, c, ho, *ks[::-1], wo, *ks[::-1]))
    # axes: 0 b, 1 c, 2 ho, 3 .. 2+n: ky_L .. ky_0, 3+n wo, 4+n .. 3+2n: kx_L .. kx_0
    inner = [a for j in range(n) for a in (3 + j, 4 + n + j)]
    x = x.transpose([0, 2, 3 + n] + inner + [1])
    return x.reshape(b, -1, ks[0] * ks[0] * c)


class ConvTorso(nn.Module):
    """Conv stack (VALID padding, ReLU), flattened ``(h, w, c)``. Input: when every kernel
    equals its stride, ``[B, C, H, W]`` or its :func:`patch_rows` ``[B, R, F]`` (then matrix
    products), else ``[B, H, W, C]``; ``Policy`` hands the grid over in the layout asked for."""

    channels: Sequence[int]
    kernels: Sequence[int]
    strides: Sequence[int]
    dtype: Any = jnp.float32
    use_bias: bool = True

    @nn.compact
    def __call__(self, x):
        b = x.shape[0]
        if is_patch_stack(self.kernels, self.strides):
            if x.ndim == 4:    # [B, C, H, W]; Policy hands over packed rows [B, R, F] already
                x = patch_rows(x, self.kernels)
            for i, (c, k) in enumerate(zip(self.channels, self.kernels)):
                if i > 0:   # the next layer's patches are consecutive rows (patch_rows)
                    x = x.reshape(b, -1, k * k * x.shape[-1])
                x = nn.relu(PatchConv(c, k, self.dtype, self.use_bias, name=f"Conv_{i}")(x, rows=True))
            return x.reshape(b, -1)
        for i, (c, k, s) in enumerate(zip(self.channels, self.kernels, self.strides)):
            if k == s:
                x = PatchConv(c, k, self.dtype, self.use_bias, name=f"Conv_{i}")(x)
            else:
                x = nn.Conv(c, (k, k), (s, s), padding="VALID", kernel_init=nn.initializers.orthogonal(1.0),
                            use_bias=self.use_bias, dtype=self.dtype, name=f"Conv_{i}")(x)
            x = nn.relu(x)
        return x.reshape(b, -1)


class MLPActorCritic(nn.Module):
    """PureJaxRL-shaped MLP: separate actor and critic trunks."""

    num_actions: int
    hidden_sizes: Sequence[int]
    activation: str
    dtype: Any = jnp.float32
    obs_norm: bool = False

    @nn.compact
    def __call__(self, x):
        act = _ACTIVATIONS[self.activation]
        x = x.reshape(x.shape[0], -1)
        if self.obs_norm:
            x = ObsNorm(name="obs_norm")(x)
        a = x
        for h in self.hidden_sizes:
            a = act(_dense(h, dtype=self.dtype)(a))
        logits = _dense(self.num_actions, 0.01, self.dtype)(a)
        v = x
        for h in self.hidden_sizes:
            v = act(_dense(h, dtype=self.dtype)(v))
        value = _dense(1, 1.0, self.dtype)(v)[..., 0]
        return logits.astype(jnp.float32), value.astype(jnp.float32)


class Heads(nn.Module):
    """The "fast" heads: actor 512 ReLU -> logits (gain 0.01), critic 1024 tanh (√2) -> 1."""

    num_actions: int
    actor_hidden: int
    critic_hidden: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, z):
        a = nn.relu(_dense(self.actor_hidden, 1.0, self.dtype)(z))
        logits = _dense(self.num_actions, 0.01, self.dtype)(a)
        v = nn.tanh(_dense(self.critic_hidden, np.sqrt(2.0), self.dtype)(z))
        value = _dense(1, 1.0, self.dtype)(v)[..., 0]
        return logits.astype(jnp.float32), value.astype(jnp.float32)


class Encoder(nn.Module):
    """Observation -> feature vector: conv torso for grids, then a ReLU MLP."""

    cfg: PolicyConfig
    grid: bool

    @nn.compact
    def __call__(self, x):
        cfg = self.cfg
        dtype = compute_dtype(cfg)
        if self.grid:
            x = ConvTorso(cfg.cnn_channels, cfg.cnn_kernels, cfg.cnn_strides, dtype, cfg.cnn_bias)(x)
        x = x.reshape(x.shape[0], -1)
        for h in cfg.hidden_sizes:
            x = nn.relu(_dense(h, 1.0, dtype)(x))
        return x


class CNNActorCritic(nn.Module):
    num_actions: int
    cfg: PolicyConfig

    @nn.compact
    def __call__(self, x):
        if self.cfg.obs_norm:
            x = ObsNorm(name="obs_norm")(x)
        z = Encoder(self.cfg, grid=True)(x)
        return Heads(self.num_actions, self.cfg.actor_hidden, self.cfg.critic_hidden, compute_dtype(self.cfg))(z)


class LSTMActorCritic(nn.Module):
    """Encoder -> stacked LSTM -> heads, one time step; the carry is a tuple of (c, h) per layer."""

    num_actions: int
    cfg: PolicyConfig
    grid: bool

    @nn.compact
    def __call__(self, carry, x, reset):
        if self.cfg.obs_norm:
            x = ObsNorm(name="obs_norm")(x)
        z = Encoder(self.cfg, grid=self.grid)(x).astype(jnp.float32)
        keep = (~reset)[:, None].astype(z.dtype)
        new_carry = []
        for layer, (c, h) in enumerate(carry):
            c, h = c * keep, h * keep  # a new episode starts from a zero state
            cell = nn.OptimizedLSTMCell(
                self.cfg.lstm_size,
                kernel_init=nn.initializers.orthogonal(1.0),
                recurrent_kernel_init=nn.initializers.orthogonal(1.0),
                bias_init=nn.initializers.ones,
                name=f"lstm_{layer}",
            )
            (c, h), z = cell((c, h), z)
            new_carry.append((c, h))
        logits, value = Heads(self.num_actions, self.cfg.actor_hidden, self.cfg.critic_hidden)(z)
        return tuple(new_carry), logits, value


class Policy:
    """Uniform interface over feed-forward and recurrent actor-critics (see module doc)."""

    def __init__(self, cfg: PolicyConfig, obs_shape: tuple[int, ...], num_actions: int,
                 obs_scale: np.ndarray | None = None, obs_dtype=None):
        self.cfg = cfg
        self.obs_shape = tuple(obs_shape)
        self.num_actions = int(num_actions)
        grid = len(self.obs_shape) == 3
        if cfg.kind == "cnn" and not grid:
            raise ValueError(f"policy.kind=cnn needs [C,H,W] observations, got shape {obs_shape}")
        # Conv torsos (cnn, lstm over grids) read the grid in the compute dtype: channels-first
        # as the env gives it when they are patch stacks (ConvTorso), else channels-last. An MLP
        # flattens the observation as the env gives it.
        self.conv_input = grid and cfg.kind != "mlp"
        # Patch-stack torsos read "packed" grids (``pack``: the first layer's patch rows, still
        # uint8); rollouts store observations packed, so the learner's minibatches feed the
        # first matrix product directly instead of rearranging the grid again every epoch.
        self.packs = self.conv_input and is_patch_stack(cfg.cnn_kernels, cfg.cnn_strides)
        self.channels_last = self.conv_input and not self.packs
        # uint8 grids are packed as int8 (value - 128, a flip of the top bit; ``_prepare`` adds
        # the 128 back, exactly): XLA's GPU matrix products read int8 operands directly, with the
        # cast fused, but not uint8, which cost a bf16 copy of every minibatch (docs/BENCHMARKS.md).
        self.pack_offset = self.packs and obs_dtype is not None and jnp.dtype(obs_dtype) == jnp.uint8
        kernels = tuple(cfg.cnn_kernels)
        self.packed_shape = (jax.eval_shape(lambda o: patch_rows(o, kernels),
                                            jax.ShapeDtypeStruct((1,) + self.obs_shape, jnp.uint8)).shape[1:]
                             if self.packs else self.obs_shape)
        if obs_scale is not None and cfg.obs_scale == "env":
            scale = np.asarray(obs_scale, np.float32)
            # Per-channel scales broadcast over the spatial axes.
            self.obs_scale = scale.reshape(scale.shape + (1,) * (len(self.obs_shape) - scale.ndim))
            if self.channels_last:  # [C, 1|H, 1|W] -> [1|H, 1|W, C]
                self.obs_scale = np.moveaxis(self.obs_scale, 0, -1)
            elif self.packs:        # the layout of the patch rows: [F] (per channel) or [R, F]
                if self.obs_scale.shape[1:] == (1, 1):
                    self.obs_scale = np.tile(self.obs_scale.reshape(-1), kernels[0] ** 2)
                else:
                    full = np.broadcast_to(self.obs_scale, self.obs_shape)[None]
                    self.obs_scale = np.asarray(patch_rows(jnp.asarray(full), kernels))[0]
        else:
            self.obs_scale = None
        self.is_recurrent = cfg.kind == "lstm"
        if cfg.kind == "mlp":
            self.module = MLPActorCritic(self.num_actions, cfg.hidden_sizes, cfg.activation,
                                         compute_dtype(cfg), cfg.obs_norm)
        elif cfg.kind == "cnn":
            self.module = CNNActorCritic(self.num_actions, cfg)
        else:
            self.module = LSTMActorCritic(self.num_actions, cfg, grid=grid)

    def pack(self, obs):
        """Observations ``[B, *obs_shape]`` in the form the torso reads and rollouts store:
        ``[B, *packed_shape]`` for patch-stack conv torsos (a pure rearrangement; uint8 grids
        become int8 ``value - 128``, see ``pack_offset``), unchanged otherwise. ``apply`` takes
        observations in either form."""
        if self.packs and obs.shape[1:] == self.obs_shape:
            obs = patch_rows(obs, self.cfg.cnn_kernels)
            if self.pack_offset:
                obs = jax.lax.bitcast_convert_type(obs ^ jnp.uint8(0x80), jnp.int8)
        return obs

    def network_input(self, obs):
        """Observations (raw or packed) as the network's first layer reads them: packed,
        in the layers' dtype, scaled; :class:`ObsNorm` statistics are per feature of this.
        With ``obs_norm`` it stays float32 (the layers cast it after the normalisation): a
        feature's deviation from its mean is then not rounded to bfloat16 before it is scaled
        up, and the result does not depend on where XLA keeps excess precision."""
        conv_dtype = compute_dtype(self.cfg) if self.conv_input and not self.cfg.obs_norm else None
        return _prepare(self.pack(obs), self.obs_scale, channels_last=self.channels_last,
                        dtype=conv_dtype or jnp.float32,
                        offset=128 if self.pack_offset else 0)   # int8 value - 128 -> value

    def initial_carry(self, batch: int) -> Any:
        if not self.is_recurrent:
            return ()
        zeros = jnp.zeros((batch, self.cfg.lstm_size), jnp.float32)
        return tuple((zeros, zeros) for _ in range(self.cfg.lstm_layers))

    def init(self, key: jax.Array, obs: jax.Array) -> Any:
        x = self.network_input(obs)
        if self.is_recurrent:
            reset = jnp.zeros(x.shape[:1], bool)
            return self.module.init(key, self.initial_carry(x.shape[0]), x, reset)
        return self.module.init(key, x)

    def apply(self, params, obs, carry, reset):
        x = self.network_input(obs)
        if self.is_recurrent:
            return self.module.apply(params, carry, x, reset)
        logits, value = self.module.apply(params, x)
        return carry, logits, value

    def obs_norm_shape(self) -> tuple[int, ...]:
        """Shape of the ``obs_norm`` statistics: one per feature of the network's input (an MLP
        flattens it first)."""
        dtype = jnp.uint8 if self.pack_offset else jnp.float32
        shape = jax.eval_shape(self.network_input,
                               jax.ShapeDtypeStruct((1,) + self.obs_shape, dtype)).shape[1:]
        return (int(np.prod(shape)),) if self.cfg.kind == "mlp" else tuple(shape)

    def set_obs_norm(self, params, mean, std):
        """``params`` with the ``obs_norm`` statistics replaced: ``mean`` and ``std`` per
        feature of :meth:`network_input` (``obs_norm_shape``); ``std`` is floored by
        :func:`obs_norm_std`. Refused (one line) when the policy has no ``obs_norm``."""
        if not self.cfg.obs_norm:
            raise ValueError("set_obs_norm needs a policy built with policy.obs_norm=true")
        shape = self.obs_norm_shape()
        mean = np.asarray(mean, np.float32).reshape(shape)
        std = obs_norm_std(np.asarray(std, np.float32).reshape(shape))
        chex.assert_shape(params["params"]["obs_norm"]["mean"], shape)
        stats = {"mean": jnp.asarray(mean), "std": jnp.asarray(std)}
        return {**params, "params": {**params["params"], "obs_norm": stats}}

    def apply_sequence(self, params, obs, carry, reset):
        """Scan :meth:`apply` over a leading time axis; returns (carry, logits[T,B], value[T,B])."""
        if not self.is_recurrent:  # one big batch is faster than a scan
            T, B = obs.shape[:2]
            _, logits, value = self.apply(params, obs.reshape((T * B,) + obs.shape[2:]), (), None)
            return carry, logits.reshape(T, B, -1), value.reshape(T, B)

        def step(c, inputs):
            o, r = inputs
            c, logits, value = self.apply(params, o, c, r)
            return c, (logits, value)

        carry, (logits, value) = jax.lax.scan(step, carry, (obs, reset))
        return carry, logits, value


def make_policy(cfg: PolicyConfig, obs_shape, num_actions, obs_scale=None, obs_dtype=None) -> Policy:
    return Policy(cfg, obs_shape, num_actions, obs_scale, obs_dtype)


def policy_for_env(cfg: PolicyConfig, env) -> Policy:
    """The policy ``cfg`` describes for ``env``'s observation space (shape, dtype), actions and
    observation scale: one network per (config, env), whoever trains it (PPO, BC)."""
    params = env.default_params
    space = env.observation_space(params)
    return make_policy(cfg, space.shape, env.action_space(params).n, env.obs_scale, space.dtype)


def count_params(params) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(params)))
