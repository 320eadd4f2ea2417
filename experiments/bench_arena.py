"""Arena throughput: env-only (dense / token obs) and training (FF CNN / LSTM "fast").

    python experiments/bench_arena.py                       # the default sweep (GPU)
    python experiments/bench_arena.py --envs 64 --train-envs 16 --steps 16   # CPU smoke

Env-only: a jitted scan of ``--steps`` vmapped ``step_env`` calls with random actions (no
reset inside; resets are measured separately per env), median of repeats after a warm-up.
Bytes per env-step = state read + state written + observation written (what a perfect
kernel must move); the floor is that over the measured copy bandwidth (``--bandwidth``,
3.0e12 B/s read+write on the lent H100). Training: the compiled train chunk end to end, and
with the learner switched off (rollout + policy forward + GAE) to split the time. Prints
markdown tables.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from envs.arena import ArenaEnv  # noqa: E402
from experiments.benchmarking import compile_chunk, median_chunk_seconds, median_seconds  # noqa: E402
from jaxrl_arena import config as C  # noqa: E402
from jaxrl_arena.train import make_train  # noqa: E402


def tree_bytes(tree) -> int:
    return int(sum(np.prod(x.shape) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree)))


def env_only(obs_kind: str, envs: list[int], steps: int, repeats: int, bandwidth: float):
    env = ArenaEnv(num_agents=24, obs_kind=obs_kind)
    params = env.default_params
    A = env.num_agents
    print(f"\n### env-only, {obs_kind} observations (24 agents, random actions)\n")
    print("| envs | agent-steps/s | env-steps/s | compile s | reset ms (all envs) | "
          "bytes/env-step | achieved GB/s | fraction of bandwidth floor |")
    print("|---|---|---|---|---|---|---|---|")
    for n in envs:
        reset = jax.jit(jax.vmap(env.reset_env, in_axes=(0, None)))
        obs, states = reset(jax.random.split(jax.random.PRNGKey(0), n), params)
        jax.block_until_ready(states)
        state_b = tree_bytes(jax.tree.map(lambda x: x[0], states))
        obs_b = tree_bytes(obs) // n
        step_bytes = 2 * state_b + obs_b

        def run(states, key):
            def body(states, k):
                ka, ks = jax.random.split(k)
                act = jax.random.randint(ka, (n, A), 0, 16, dtype=jnp.int32)
                o, states, r, *_ = jax.vmap(env.step_env, in_axes=(0, 0, 0, None))(
                    jax.random.split(ks, n), states, act, params)
                return states, (r.sum(), o[:, 0].reshape(n, -1)[:, 0].sum())
            states, out = jax.lax.scan(body, states, jax.random.split(key, steps))
            return out

        fn = jax.jit(run)
        t0 = time.perf_counter()
        jax.block_until_ready(fn(states, jax.random.PRNGKey(1)))
        compile_s = time.perf_counter() - t0
        sec = median_seconds(fn, (states, jax.random.PRNGKey(2)), repeats)
        reset_s = median_seconds(reset, (jax.random.split(jax.random.PRNGKey(3), n), params), repeats)
        eps = n * steps / sec
        gbs = eps * step_bytes / 1e9
        print(f"| {n} | {eps * A / 1e6:.1f}M | {eps / 1e6:.2f}M | {compile_s:.1f} | "
              f"{reset_s * 1e3:.1f} | {step_bytes:,} | {gbs:.0f} | {gbs * 1e9 / bandwidth:.1%} |")


def training(recipe: str, envs: list[int], updates: int, repeats: int, extra: list[str]):
    print(f"\n### training, recipe {recipe}\n")
    print("| envs | agents | T | agent-steps/update | compile s | train agent-steps/s | "
          "rollout+GAE share | learner share | GPU bytes/env (compiled) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in envs:
        cfg = C.apply_overrides(C.get_recipe(recipe), [
            f"ppo.num_envs={n}", f"run.updates_per_chunk={updates}",
            "run.total_timesteps=100_000_000_000", *extra])
        prog = make_train(cfg, devices=jax.devices()[:1])
        state = prog.init()
        exe, compile_s = compile_chunk(prog, updates, state)
        mem = exe.memory_analysis()
        total_b = mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes - mem.alias_size_in_bytes
        full = median_chunk_seconds(exe, state, repeats)
        roll = median_chunk_seconds(prog.chunk_for(updates, learn=False), state, repeats)
        sps = updates * prog.agent_steps_per_update / full
        print(f"| {n} | 24 | {cfg.ppo.num_steps} | {prog.agent_steps_per_update:,} | "
              f"{compile_s:.1f} | {sps / 1e6:.2f}M | {roll / full:.0%} | {1 - roll / full:.0%} | "
              f"{total_b / n / 1024:.0f} KiB |")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--envs", type=int, nargs="+", default=[1024, 4096, 16384])
    p.add_argument("--train-envs", type=int, nargs="+", default=[1024, 4096])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--updates", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--bandwidth", type=float, default=3.0e12)
    p.add_argument("--skip", nargs="*", default=[], choices=["dense", "tokens", "ff", "lstm"])
    p.add_argument("--train-override", nargs="*", default=[])
    args = p.parse_args()
    dev = jax.devices()[0]
    print(f"device: {dev.device_kind} ({dev.platform}), jax {jax.__version__}")
    for kind in ("dense", "tokens"):
        if kind not in args.skip:
            env_only(kind, args.envs, args.steps, args.repeats, args.bandwidth)
    for kind, recipe in (("ff", "arena_ff"), ("lstm", "arena_basic_easy_shaped")):
        if kind not in args.skip:
            training(recipe, args.train_envs, args.updates, args.repeats, args.train_override)
    return 0


if __name__ == "__main__":
    sys.exit(main())
