"""Benchmark the N++ physics (envs.npp): frames/s vs num_envs, compile time, bytes per env.

    python experiments/bench_npp.py [--map PATH] [--envs 1,16,64,256] [--frames 200] [--float64]

Random Discrete(6) actions, one frame per action (frame skip 1), no resets: this measures the raw
``tick`` (move/think, integrate, 4 substeps of objects + tiles, post-collision, think).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import envs.npp as npp
from envs.npp.golden import npp_golden_dir


def nbytes(tree) -> int:
    return int(sum(np.asarray(x).nbytes for x in jax.tree.leaves(tree)))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--map", default=str(npp_golden_dir() / "maps" / "minefield"))
    p.add_argument("--envs", default="1,16,64,256,1024")
    p.add_argument("--frames", type=int, default=200)
    p.add_argument("--max-entities", type=int, default=npp.level.DEFAULT_MAX_ENTITIES)
    p.add_argument("--float64", action="store_true")
    args = p.parse_args()
    if args.float64:
        jax.config.update("jax_enable_x64", True)
    dtype = jnp.float64 if args.float64 else jnp.float32
    level = npp.load_map(Path(args.map).read_bytes(), max_entities=args.max_entities)
    print(f"map {Path(args.map).name}: {int(level.n_entities)} entities, types {level.entity_types}, "
          f"capacity {level.max_entities}, dtype {jnp.dtype(dtype).name}, backend {jax.default_backend()}")

    def rollout(states, levels, key):
        def step(s, k):
            a = jax.random.randint(k, (s.ninja.x.shape[0],), 0, 6)
            hor, jump = npp.action_to_inputs(a)
            return jax.vmap(npp.tick)(s, levels, hor, jump), None

        states, _ = jax.lax.scan(step, states, jax.random.split(key, args.frames))
        return states

    run = jax.jit(rollout)
    for n in [int(x) for x in args.envs.split(",")]:
        levels = jax.tree.map(lambda a: jnp.broadcast_to(a, (n,) + a.shape), level)
        states = jax.vmap(lambda lv: npp.init_state(lv, dtype))(levels)
        t0 = time.perf_counter()
        compiled = run.lower(states, levels, jax.random.PRNGKey(0)).compile()
        t_compile = time.perf_counter() - t0
        jax.block_until_ready(compiled(states, levels, jax.random.PRNGKey(1)))     # warm-up
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(states, levels, jax.random.PRNGKey(2)))
        dt = time.perf_counter() - t0
        print(f"num_envs {n:6d}: {n * args.frames / dt:12.0f} frames/s  ({dt * 1e3 / args.frames:.3f} ms/frame "
              f"batch)  compile {t_compile:.1f}s  state {nbytes(states) // n} B/env  level {nbytes(levels) // n} B/env")


if __name__ == "__main__":
    main()
