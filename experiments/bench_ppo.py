"""PPO benchmarks on gymnax CartPole-v1: learning (return >= 475 within 500k steps) and speed.

    python experiments/bench_ppo.py learn [--seeds 4]          # CPU is fine
    python experiments/bench_ppo.py speed [--envs 512 2048 8192] # on a GPU

Speed follows the PureJaxRL anchor: MLP 64x2 (tanh), 128-step rollouts, 4 epochs x 4
minibatches; end-to-end agent-steps/s of the compiled chunk (warm, median of repeats), with
compile time, and env-only steps/s for the floor. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from experiments.benchmarking import compile_chunk, median_chunk_seconds  # noqa: E402
from jaxrl_arena import config as C  # noqa: E402
from jaxrl_arena.train import make_train  # noqa: E402


def learn(seeds: int, budget: int, target: float) -> bool:
    cfg = C.apply_overrides(C.get_recipe("cartpole"), [
        f"run.total_timesteps={budget}", f"run.num_seeds={seeds}", "run.updates_per_chunk=61"])
    prog = make_train(cfg, devices=jax.devices()[:1])
    state = prog.init()
    curves = []
    t0 = time.perf_counter()
    done = 0
    while done < prog.num_updates:
        k = min(61, prog.num_updates - done)
        state, m = prog.chunk_for(k)(state)
        curves.append(np.asarray(jax.device_get(m["overview/reward"])))
        done += k
    seconds = time.perf_counter() - t0
    reward = np.concatenate(curves, axis=1)  # [seeds, updates]
    steps = (np.arange(reward.shape[1]) + 1) * prog.agent_steps_per_update
    # Average return: mean over the seeds, smoothed over the last 10 updates (episodes that
    # finished in them); report the first step where it reaches the target.
    mean = np.nanmean(reward, axis=0)
    smooth = np.array([np.nanmean(mean[max(0, i - 9): i + 1]) for i in range(len(mean))])
    hit = np.nonzero(smooth >= target)[0]
    print("| seeds | budget (env steps) | final avg return (last 10 updates) | first step >= "
          f"{target:g} | wall s (incl. compile) |")
    print("|---|---|---|---|---|")
    first = f"{steps[hit[0]]:,}" if hit.size else "never"
    print(f"| {seeds} | {budget:,} | {smooth[-1]:.1f} | {first} | {seconds:.0f} |")
    per_seed = [np.nanmean(r[-10:]) for r in reward]
    print("per-seed final return:", ", ".join(f"{x:.1f}" for x in per_seed))
    return bool(hit.size) and smooth[-1] >= target


def speed(envs: list[int], repeats: int, updates: int, overrides: list[str]) -> None:
    dev = jax.devices()[0]
    print(f"device: {dev.device_kind} ({dev.platform}), jax {jax.__version__}; "
          f"overrides: {' '.join(overrides) or 'none'}")
    print("| envs | T | agent-steps/update | compile s | end-to-end SPS (median) | rollout+GAE share | "
          "rollout-only SPS | env-only SPS |")
    print("|---|---|---|---|---|---|---|---|")
    for n in envs:
        cfg = C.apply_overrides(C.get_recipe("cartpole"), [
            f"ppo.num_envs={n}", "ppo.num_steps=128", f"run.updates_per_chunk={updates}",
            f"run.total_timesteps={n * 128 * updates * 100}", *overrides])
        prog = make_train(cfg, devices=[dev])
        state = prog.init()
        exe, compile_s = compile_chunk(prog, updates, state)
        full = median_chunk_seconds(exe, state, repeats)
        roll = median_chunk_seconds(prog.chunk_for(updates, learn=False), state, repeats)
        sps = updates * prog.agent_steps_per_update / full
        roll_sps = updates * prog.agent_steps_per_update / roll
        print(f"| {n} | 128 | {prog.agent_steps_per_update:,} | {compile_s:.1f} | "
              f"{sps / 1e6:.2f}M | {roll / full:.0%} | {roll_sps / 1e6:.1f}M | "
              f"{env_only(prog, n) / 1e6:.1f}M |")


def env_only(prog, n: int, steps: int = 1000) -> float:
    """Random-action env stepping with auto-reset (every_step), the floor for the trainer."""
    env, params = prog.env, prog.env.default_params

    def run(key):
        keys = jax.random.split(key, n)
        obs, state = jax.vmap(env.reset_env, (0, None))(keys, params)

        def body(carry, k):
            state = carry
            ks = jax.random.split(k, n)
            act = jax.vmap(lambda kk: jax.random.randint(kk, (1,), 0, 2))(ks)
            _, state, r, *_ = jax.vmap(env.step, (0, 0, 0, None))(ks, state, act, params)
            return state, r.sum()

        _, r = jax.lax.scan(body, state, jax.random.split(key, steps))
        return r.sum()

    fn = jax.jit(run)
    fn(jax.random.PRNGKey(0)).block_until_ready()
    t0 = time.perf_counter()
    fn(jax.random.PRNGKey(1)).block_until_ready()
    return n * steps / (time.perf_counter() - t0)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="mode", required=True)
    pl = sub.add_parser("learn")
    pl.add_argument("--seeds", type=int, default=4)
    pl.add_argument("--budget", type=int, default=500_000)
    pl.add_argument("--target", type=float, default=475.0)
    ps = sub.add_parser("speed")
    ps.add_argument("--envs", type=int, nargs="+", default=[512, 2048, 8192])
    ps.add_argument("--repeats", type=int, default=5)
    ps.add_argument("--updates", type=int, default=10)
    ps.add_argument("--override", nargs="*", default=[], help="config overrides (ablations)")
    args = p.parse_args()
    if args.mode == "learn":
        return 0 if learn(args.seeds, args.budget, args.target) else 1
    speed(args.envs, args.repeats, args.updates, args.override)
    return 0


if __name__ == "__main__":
    sys.exit(main())
