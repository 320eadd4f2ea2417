"""Cost of the curriculum update: alone, and as a share of the compiled PPO update step.

    python experiments/bench_curriculum.py update [--rows 65536 524288]   # CPU is fine
    python experiments/bench_curriculum.py share [--recipe arena_basic_easy_shaped]
        [--override ppo.num_envs=1024 ...]                                # on a GPU

``update`` times the jitted ``curriculum.update`` (warm, median) on M = num_envs * T rollout rows
(half of them finished episodes) for: uniform (reference cost), LP over N named tasks, LP over
a pool of the arena's 640,000 bucketed tasks, and the staged curriculum.

``share`` builds the training program with each curriculum kind and times whole updates
(rollout + GAE + PPO + curriculum; warm, median per update over a chunk); the share is the
difference to uniform over the uniform time, next to the isolated update time over it.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from experiments.benchmarking import median_chunk_seconds, median_seconds  # noqa: E402
from jaxrl_arena.curriculum import (EpisodeOutcomes, LearningProgressCurriculum,  # noqa: E402
                                    StagedCurriculum, UniformCurriculum)
from envs.arena.tasks import ArenaTaskSpace  # noqa: E402


def curricula():
    dummy = lambda n: {f"t{i}": {"x": jnp.float32(i)} for i in range(n)}
    yield "uniform, 4 tasks", UniformCurriculum(dummy(4))
    yield "LP, 4 named tasks", LearningProgressCurriculum(dummy(4))
    yield "LP, 64 named tasks", LearningProgressCurriculum(dummy(64))
    for pool in (256, 1024):
        yield f"LP, pool {pool} of 640k", LearningProgressCurriculum.over_space(
            ArenaTaskSpace(), pool_size=pool, score_max=10.0)
    yield "staged, 9 stages", StagedCurriculum(dummy(9))


def bench_update(rows: list[int], repeats: int) -> None:
    print(f"device: {jax.devices()[0].device_kind}")
    print("| curriculum | rows M | update (ms) |\n|---|---|---|")
    for name, cur in curricula():
        state = cur.init()
        upd = jax.jit(cur.update)
        for m in rows:
            key = jax.random.PRNGKey(m)
            ids = cur.sample(state, jax.random.split(key, m))
            out = EpisodeOutcomes(task_id=ids, done=jax.random.bernoulli(key, 0.5, (m,)),
                                  score=jax.random.uniform(key, (m,)) * 5.0)
            print(f"| {name} | {m} | {1e3 * median_seconds(upd, (state, out), repeats):.3f} |",
                  flush=True)


def bench_share(recipe: str, overrides: list[str], kinds: list[str], repeats: int,
                updates: int) -> None:
    from jaxrl_arena import config as C
    from jaxrl_arena.train import make_train

    cfg0 = C.apply_overrides(C.get_recipe(recipe), [f"run.updates_per_chunk={updates}"]
                             + overrides)
    print(f"device: {jax.devices()[0].device_kind}; recipe {recipe}; {overrides}")
    print("| curriculum | ms / update | vs uniform |\n|---|---|---|")
    base = None
    for kind in kinds:
        cfg = dataclasses.replace(cfg0, curriculum=dataclasses.replace(cfg0.curriculum,
                                                                       kind=kind))
        prog = make_train(cfg, devices=jax.devices()[:1])
        state = prog.init()
        ms = 1e3 * median_chunk_seconds(prog.train_chunk, state, repeats) / updates
        base = ms if base is None else base
        print(f"| {kind} | {ms:.2f} | {100 * (ms - base) / base:+.2f}% |", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    pu = sub.add_parser("update")
    pu.add_argument("--rows", type=int, nargs="+", default=[8192, 65536, 524288])
    pu.add_argument("--repeats", type=int, default=20)
    ps = sub.add_parser("share")
    ps.add_argument("--recipe", default="arena_basic_easy_shaped")
    ps.add_argument("--override", nargs="*", default=[])
    ps.add_argument("--kinds", nargs="+", default=["uniform", "learning_progress", "arena_lp"])
    ps.add_argument("--repeats", type=int, default=3)
    ps.add_argument("--updates", type=int, default=5)
    args = p.parse_args()
    if args.cmd == "update":
        bench_update(args.rows, args.repeats)
    else:
        bench_share(args.recipe, args.override, args.kinds, args.repeats, args.updates)
    return 0


if __name__ == "__main__":
    sys.exit(main())
