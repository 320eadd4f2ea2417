"""Uniform-random-policy statistics of the JAX arena vs the reference engine's
(``<golden>/arena/random_policy_stats.json``, spec §14).

    python -m tools.arena_random_stats --episodes 200 --batch 8

Runs ``episodes`` 1000-step episodes (a fresh map each, actions uniform over the 16 ids),
computes per episode the mean over agents of every per-agent stat, and compares the mean
over episodes with the reference: a stat matches if |delta| <= tol * sqrt(sem_ref^2 +
sem_jax^2) (tol = 4). Prints a table; exits 1 on any mismatch.

Section marks (§) cite docs/specs/arena.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from envs.arena import constants as K
from envs.arena.env import ArenaEnv
from envs.arena.stats import episode_stats
from tools.arena_golden import golden_dir


def make_batch_runner(env: ArenaEnv, batch: int):
    """jit(key) -> per-episode values {name: float[batch]} for ``batch`` random episodes."""
    params = env.default_params
    steps = env.max_steps

    def one_episode(key):
        key_reset, key_run = jax.random.split(key)
        _, state = env.reset_env(key_reset, params)

        def body(carry, k):
            state, neg = carry
            k_act, k_step = jax.random.split(k)
            actions = jax.random.randint(
                k_act, (env.num_agents,), 0, K.NUM_ACTIONS, dtype=jnp.int32
            )
            _, state, reward, _, _, _ = env.step_env(k_step, state, actions, params)
            return (state, neg + (reward < 0)), None

        (state, neg), _ = jax.lax.scan(
            body, (state, jnp.zeros(env.num_agents, jnp.int32)), jax.random.split(key_run, steps)
        )
        out = {f"agent/{k}": jnp.mean(v) for k, v in episode_stats(state).items()}
        out["episode_return_per_agent"] = jnp.mean(state.episode_return)
        out["negative_reward_events_per_agent"] = jnp.mean(neg.astype(jnp.float32))
        out["final_hearts_held_per_agent"] = jnp.mean(
            state.agent_inv[:, K.HEART].astype(jnp.float32)
        )
        kinds = state.conv_kind.astype(jnp.int32)
        for kind, name in enumerate(K.CONV_KIND_NAMES):
            out[f"game/objects.{name}"] = jnp.sum(kinds == kind).astype(jnp.float32)
        out["game/objects.wall"] = jnp.sum(state.grid_obj == K.CELL_WALL).astype(jnp.float32)
        return out

    return jax.jit(lambda key: jax.vmap(one_episode)(jax.random.split(key, batch)))


def collect(episodes: int, batch: int, seed: int = 0, log=print) -> dict[str, np.ndarray]:
    env = ArenaEnv(num_agents=24, obs_kind="dense", max_steps=1000)
    runner = make_batch_runner(env, batch)
    key = jax.random.key(seed)
    per_episode: dict[str, list] = {}
    done = 0
    t0 = time.time()
    while done < episodes:
        key, sub = jax.random.split(key)
        out = jax.tree.map(np.asarray, runner(sub))
        for k, v in out.items():
            per_episode.setdefault(k, []).append(v)
        done += batch
        log(f"  {done} episodes ({time.time() - t0:.0f}s)")
    return {k: np.concatenate(v)[:episodes] for k, v in per_episode.items()}


def compare(per_episode: dict[str, np.ndarray], reference: dict, tol: float = 4.0):
    """Rows (name, ref mean, ref sem, jax mean, jax sem, z, ok) for every reference stat we
    produce (game/tokens_* are not computed here)."""
    rows = []
    for name, ref in sorted(reference["stats"].items()):
        if name not in per_episode:
            continue
        v = per_episode[name].astype(np.float64)
        mean = float(v.mean())
        sem = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("inf")
        combined = np.hypot(ref["sem"], sem)
        delta = mean - ref["mean"]
        z = delta / combined if combined > 0 else (0.0 if delta == 0 else np.inf)
        rows.append((name, ref["mean"], ref["sem"], mean, sem, z, abs(z) <= tol))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--episodes", type=int, default=200)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--tol", type=float, default=4.0, help="allowed |delta| in combined standard errors"
    )
    args = ap.parse_args(argv)
    reference = json.loads((golden_dir() / "random_policy_stats.json").read_text())
    per_episode = collect(args.episodes, args.batch, args.seed)
    rows = compare(per_episode, reference, args.tol)
    print(f"{'stat':48s} {'reference':>18s} {'jax':>18s} {'z':>7s}")
    for name, rm, rs, m, s, z, ok in rows:
        print(
            f"{name:48s} {rm:10.4f}±{rs:<7.4f} {m:10.4f}±{s:<7.4f} {z:7.2f} {'ok' if ok else 'MISMATCH'}"
        )
    bad = [r[0] for r in rows if not r[6]]
    print(
        f"{len(rows) - len(bad)}/{len(rows)} stats within {args.tol} combined SE over {args.episodes} episodes"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
