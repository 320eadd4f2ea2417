"""Throughput of the vmapped arena step (random actions, auto-reset by select).

    python experiments/bench_arena_step.py --envs 4096 --steps 64 --obs dense
    python experiments/bench_arena_step.py --envs 4096 --parts     # events / agents / obs apart

Prints env-steps/s and agent-steps/s of a jitted scan of ``steps`` steps over ``envs`` envs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from envs.arena import constants as K  # noqa: E402
from envs.arena.env import ArenaEnv  # noqa: E402


def make_rollout(env: ArenaEnv, num_envs: int, steps: int, reset: bool):
    params = env.default_params

    def rollout(states, key):
        def body(states, k):
            k_act, k_step, k_reset = jax.random.split(k, 3)
            actions = jax.random.randint(
                k_act, (num_envs, env.num_agents), 0, K.NUM_ACTIONS, dtype=jnp.int32
            )
            keys = jax.random.split(k_step, num_envs)
            obs, states, reward, term, trunc, _ = jax.vmap(env.step_env, in_axes=(0, 0, 0, None))(
                keys, states, actions, params
            )
            if reset:  # naive auto-reset: reset every env and select the finished ones
                done = jnp.all(term | trunc, axis=-1)
                _, fresh = jax.vmap(env.reset_env, in_axes=(0, None))(
                    jax.random.split(k_reset, num_envs), params
                )
                states = jax.tree.map(
                    lambda f, s: jnp.where(done.reshape((-1,) + (1,) * (s.ndim - 1)), f, s),
                    fresh,
                    states,
                )
            return states, (obs.astype(jnp.int32).sum(), reward.sum())  # consume all obs

        return jax.lax.scan(body, states, jax.random.split(key, steps))

    return jax.jit(rollout, donate_argnums=0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--envs", type=int, nargs="+", default=[1024])
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--obs", default="dense", choices=("dense", "tokens"))
    ap.add_argument("--reset", action="store_true", help="include the naive reset-and-select")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--parts", action="store_true", help="time events / agents / obs separately")
    args = ap.parse_args(argv)
    if args.parts:
        for n in args.envs:
            parts(n)
        return
    env = ArenaEnv(num_agents=24, obs_kind=args.obs)
    print(f"device: {jax.devices()[0]}  jax {jax.__version__}")
    for n in args.envs:
        params = env.default_params
        _, states = jax.jit(jax.vmap(env.reset_env, in_axes=(0, None)))(
            jax.random.split(jax.random.key(0), n), params
        )
        run = make_rollout(env, n, args.steps, args.reset)
        t0 = time.time()
        states, out = run(states, jax.random.key(1))
        jax.block_until_ready(out)
        compile_s = time.time() - t0
        best = float("inf")
        for r in range(args.repeats):
            t0 = time.time()
            states, out = run(states, jax.random.key(2 + r))
            jax.block_until_ready(out)
            best = min(best, time.time() - t0)
        sps = n * args.steps / best
        print(
            f"envs={n:6d} obs={args.obs} reset={args.reset}: {sps:,.0f} env-steps/s, "
            f"{sps * env.num_agents:,.0f} agent-steps/s (first call {compile_s:.1f}s)"
        )


def parts(num_envs: int, repeats: int = 5):
    """Time the pieces of one vmapped step (for profiling): events, agent passes, obs."""
    from envs.arena.actions import run_agents
    from envs.arena.converters import fire_events
    from envs.arena.observations import dense_observations, token_observations

    env = ArenaEnv(num_agents=24, obs_kind="dense")
    params = env.default_params
    _, states = jax.jit(jax.vmap(env.reset_env, in_axes=(0, None)))(
        jax.random.split(jax.random.key(0), num_envs), params
    )
    actions = jax.random.randint(
        jax.random.key(1), (num_envs, 24), 0, K.NUM_ACTIONS, dtype=jnp.int32
    )
    order = jnp.tile(jnp.arange(24, dtype=jnp.int32), (num_envs, 1))
    pieces = {
        "fire_events": jax.jit(jax.vmap(lambda s: fire_events(s, s.time + 1, params))),
        "run_agents": jax.jit(jax.vmap(lambda s, a, o: run_agents(s, a, o, params)[0])),
        "dense_obs": jax.jit(jax.vmap(dense_observations)),
        "token_obs": jax.jit(jax.vmap(token_observations)),
        "step_env": jax.jit(jax.vmap(lambda k, s, a: env.step_env(k, s, a, params)[:2])),
    }
    for name, f in pieces.items():
        args = {
            "run_agents": (states, actions, order),
            "step_env": (jax.random.split(jax.random.key(2), num_envs), states, actions),
        }.get(name, (states,))
        jax.block_until_ready(f(*args))
        t0 = time.time()
        for _ in range(repeats):
            out = f(*args)
        jax.block_until_ready(out)
        dt = (time.time() - t0) / repeats
        print(
            f"{name:12s} envs={num_envs}: {dt * 1e3:8.2f} ms/step  ({num_envs * 24 / dt:,.0f} agent-steps/s)"
        )


if __name__ == "__main__":
    main()
