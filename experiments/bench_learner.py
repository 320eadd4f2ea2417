"""The PPO learner alone: milliseconds per update (epochs x minibatches) on a synthetic rollout.

    python experiments/bench_learner.py --recipe npp_grid --samples 1048576 --variants all
    python experiments/bench_learner.py --samples 4096 --variants all --repeats 1     # CPU smoke

The learner is half of an `npp_grid` update on the H100 (docs/BENCHMARKS.md), and compiling it
alone takes seconds where the whole train chunk takes minutes, so this is where learner and
torso variants are compared. The rollout is synthetic: random observation bytes in the
policy's stored (packed) form, random actions, normal advantages and returns; the learner is
``jaxrl_arena.ppo.Learner`` with the recipe's policy, as ``make_train`` builds them. A variant
is a set of config overrides (``VARIANTS``). Each row:
median ms per update of warm calls, and the compiled program's kernel-level HLO (``--hlo-dir``)
for reading which fusions XLA formed.
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import jax.numpy as jnp
import numpy as np

from experiments.benchmarking import median_seconds
from jaxrl_arena import config as C
from jaxrl_arena import networks, ppo

TORSO_2X2 = ["policy.cnn_channels=[32,64]", "policy.cnn_kernels=[2,2]", "policy.cnn_strides=[2,2]"]


# name -> config overrides. "*uint8": grids stored as plain uint8 instead of the recipe's packed
# observation dtype, to price that packing; "2x2*": a 2x2-patch torso, convs (32, 64), at 4
# epochs, to compare with the recipe's 4x4-patch conv. (Variants that needed code patched in,
# e.g. contiguous minibatches, are recorded in docs/BENCHMARKS.md.)
VARIANTS = {
    "base": [],
    "uint8": [],
    "bias": ["policy.cnn_bias=true"],
    "e4": ["ppo.update_epochs=4"],
    "2x2": TORSO_2X2 + ["policy.cnn_bias=true", "ppo.update_epochs=4"],
    "2x2_uint8": TORSO_2X2 + ["policy.cnn_bias=true", "ppo.update_epochs=4"],
    "2x2_nobias": TORSO_2X2 + ["ppo.update_epochs=4"],
}


# ----------------------------------------------------------------------------- one variant
def synthetic_rollout(policy, samples: int, key):
    """A feed-forward learner's input ``[1, S, ...]`` with random contents."""
    k = jax.random.split(key, 6)
    probe = policy.pack(jnp.zeros((1,) + policy.obs_shape, jnp.uint8))
    obs = jax.random.bits(k[0], (1, samples) + probe.shape[1:], jnp.uint8)
    if probe.dtype != jnp.uint8:
        obs = jax.lax.bitcast_convert_type(obs, probe.dtype)
    f = lambda kk: jax.random.normal(kk, (1, samples), jnp.float32)
    return ppo.Minibatch(obs=obs, actions=jax.random.randint(k[1], (1, samples), 0, policy.num_actions),
                         log_probs=jnp.full((1, samples), -np.log(policy.num_actions), jnp.float32),
                         values=f(k[2]), advantages=f(k[3]), returns=f(k[4]),
                         resets=jnp.zeros((1, samples), bool), carry=())


def run_variant(name: str, args, obs_shape, num_actions, obs_scale, obs_dtype):
    cfg = C.apply_overrides(C.get_recipe(args.recipe), [*VARIANTS[name], *args.override])
    policy = networks.make_policy(cfg.policy, obs_shape, num_actions, obs_scale,
                                  None if name.endswith("uint8") else obs_dtype)
    learner = ppo.Learner(policy, cfg.ppo, total_updates=1000)
    key = jax.random.PRNGKey(0)
    data = jax.jit(synthetic_rollout, static_argnums=(0, 1))(policy, args.samples, key)
    params = policy.init(key, jax.tree.map(lambda x: x[0, :2], data.obs))
    opt = learner.init(params)
    hp = ppo.Hyperparams.from_config(cfg.ppo)
    fn = jax.jit(lambda p, o, d, k: learner.update(p, o, jnp.zeros((), jnp.int32), d, hp, k, 0)[:2])
    t0 = time.perf_counter()
    exe = fn.lower(params, opt, data, key).compile()
    compile_s = time.perf_counter() - t0
    out = exe(params, opt, data, key)
    jax.block_until_ready(out)
    finite = bool(all(jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(out[0])))
    sec = median_seconds(exe, (params, opt, data, key), args.repeats)
    if args.hlo_dir:
        Path(args.hlo_dir).mkdir(parents=True, exist_ok=True)
        with gzip.open(Path(args.hlo_dir) / f"learner_{name}.hlo.txt.gz", "wt") as f:
            f.write(exe.as_text())
    steps = cfg.ppo.update_epochs * cfg.ppo.num_minibatches
    return {"name": name, "ms": sec * 1e3, "per_step": sec * 1e3 / steps, "compile_s": compile_s,
            "finite": finite, "torso": f"{list(cfg.policy.cnn_channels)} k{list(cfg.policy.cnn_kernels)}",
            "epochs": cfg.ppo.update_epochs, "mbs": cfg.ppo.num_minibatches}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", default="npp_grid")
    p.add_argument("--samples", type=int, default=1 << 20, help="rollout rows (num_envs x num_steps)")
    p.add_argument("--variants", default="base", help=f"comma list or 'all': {', '.join(VARIANTS)}")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--override", nargs="*", default=[], help="config overrides for every variant")
    p.add_argument("--hlo-dir", default="")
    args = p.parse_args(argv)
    names = list(VARIANTS) if args.variants == "all" else [v for v in args.variants.split(",") if v]
    bad = [v for v in names if v not in VARIANTS]
    if bad:
        p.error(f"unknown variant(s) {bad}; known: {', '.join(VARIANTS)}")
    from jaxrl_arena.registry import make

    cfg = C.get_recipe(args.recipe)
    env = make(cfg)
    params0 = env.default_params
    obs_shape = env.observation_space(params0).shape
    num_actions = env.action_space(params0).n
    scale = env.obs_scale
    obs_dtype = env.observation_space(params0).dtype
    dev = jax.devices()[0]
    print(f"device: {dev.device_kind}, jax {jax.__version__}, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}, "
          f"recipe {args.recipe}, obs {obs_shape}, {args.samples:,} samples", flush=True)
    rows = []
    for name in names:
        r = run_variant(name, args, obs_shape, num_actions, scale, obs_dtype)
        rows.append(r)
        print(f"  {name}: {r['ms']:.1f} ms/update (compile {r['compile_s']:.0f} s)", flush=True)
    print("\n| variant | torso | epochs x mbs | ms per update | ms per optimizer step | finite |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['torso']} | {r['epochs']} x {r['mbs']} | {r['ms']:.1f} | {r['per_step']:.2f} "
              f"| {r['finite']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
