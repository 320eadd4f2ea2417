"""N++ throughput: raw physics, a profile of where the frame goes, the env step, PPO training.

    python experiments/bench_npp.py physics   [--maps simple-walk,gen:simplest] [--envs 4096,16384,65536]
    python experiments/bench_npp.py profile   [--profile-maps ...] [--profile-envs 16384]
    python experiments/bench_npp.py env       [--stages simplest,complex] [--obs state,state_local,grid]
    python experiments/bench_npp.py train     [--train-envs 1024,4096] [--policies mlp,cnn]
    python experiments/bench_npp.py physics,env,train,profile     # several, in this order ("all" = every one)
    python experiments/bench_npp.py all --envs 16 --profile-envs 16 --env-envs 8 --train-envs 8 \\
        --frames 10 --env-steps 4 --repeats 1 --train-override ppo.num_steps=8             # CPU smoke

Maps: a file name under ``--map-dir`` (default ``.benchdata/maps`` if it exists, else the golden
``npp/maps``; copy those there on a machine that only has the repository) or ``gen:STAGE``: one
generated level of that curriculum stage per env (entity types 1/3/4, capacity 48, as in training).

* ``physics``: ``vmap(tick)`` in a ``lax.scan`` of ``--frames`` frames, random ``Discrete(6)``
  actions, one frame per action, no resets; frames/s = envs x frames / median seconds of warm
  calls. Bytes/env: simulator state and level data (every env holds its own level). "State
  floor": the frame rate at which reading + writing the whole state once per frame takes
  ``--bandwidth`` (3.0e12 B/s read+write measured on the lent H100). XLA flops/bytes per frame:
  cost analysis of the compiled loop (each loop body counted once).
* ``profile``: the same for variants of ``tick`` (``envs.npp.TickOptions``): exact schedules
  (substeps unrolled or a fori_loop; depenetration as an early-exit while-loop, a fixed-count
  loop, or 2 inline steps + while; logical collisions vectorised or as the row loop; entity
  capacity fitted to the map) and profiling-only cuts (no entity passes, no sweep, no tile
  collision, depenetration cap 1..16; the reference cap is 32), plus the closest-point searches
  the depenetration ran per substep in the reference run (what a cap would cut).
* ``env``: ``NppEnv.step_env`` (frame skip 4, rewards, observation) with random actions and the
  trainer's optimistic auto-reset (``max(8, N/16)`` fresh generated levels per step handed to the
  envs that finished); every observation leaf is summed into the carry (nothing is dead code).
* ``train``: the compiled PPO chunk end to end (``make_train``) and with the learner off
  (rollout + policy forward + GAE; ``--skip-rollout-only`` drops these): ``--policies`` from
  ``mlp`` (recipe ``npp_simplest``: MLP on ``state_local``), ``cnn`` (the same with its CNN on
  ``grid``), ``grid`` (recipe ``npp_grid``: the throughput recipe, bf16 patch CNN on ``grid``)
  and its variants (``TRAIN_VARIANTS``: ``grid_f32``, ``grid_bias``, ``grid_e4``, ``grid_2x2``, ...).
  ``--trace-dir D`` also writes a device trace of one call per program
  (``--trace-only kind:envs`` to pick), summarised by ``experiments/trace_summary.py``.

    python experiments/bench_npp.py train --policies grid,grid_e4 --train-envs 131072 --skip-rollout-only \
        --updates 2 --trace-dir traces --trace-only grid:131072        # npp_grid H100 table, docs/BENCHMARKS.md

Programs are compiled in a thread pool (``--compile-workers``) while earlier ones are timed, so
a compile's seconds include waiting for a core. ``--deadline`` skips what would start after that
many seconds. Tables are markdown, ready for docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import jax.numpy as jnp
import numpy as np

from envs import npp
from envs.npp import generators as G
from envs.npp.golden import npp_golden_dir
from envs.npp.levels import DEFAULT_GEN_MAX_DOORS, DEFAULT_GEN_MAX_ENTITIES, GEN_ENTITY_TYPES
from envs.npp.sim import TickOptions, tick_stats
from experiments.benchmarking import median_chunk_seconds, median_seconds

DEFAULT_MAPS = "simple-walk,minefield,complex-path-switch-required,gen:simplest,gen:complex"
MODES = ("physics", "profile", "env", "train")
REF = TickOptions()
HIST_BINS = 17                      # depenetration searches 0..15 and >= 16


def tree_bytes(tree) -> int:
    return int(sum(np.prod(x.shape) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree)))


def ints(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x]


def names(s: str) -> list[str]:
    return [x for x in s.split(",") if x]


def fmt_rate(x: float) -> str:
    if x >= 1e5:
        return f"{x / 1e6:.2f}M"
    return f"{x / 1e3:.1f}k" if x >= 1e3 else f"{x:.0f}"


def map_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    local = Path(__file__).resolve().parents[1] / ".benchdata" / "maps"
    return local if local.exists() else npp_golden_dir() / "maps"


# ============================================================================= pipeline


class Group:
    """A batch of programs: ``prepare() -> {key: (lowered, context)}`` (main thread: builds
    inputs, traces), then their compiles run in the pool, then ``report({key: (executable,
    compile s, context)})`` times them and prints (main thread)."""

    def __init__(self, prepare, report, exclusive: bool = False):
        # exclusive: prepared (compiled) only once the previous group is timed, e.g. programs whose
        # compile autotunes on the device (training: matrix products, convolutions)
        self.prepare, self.report, self.exclusive = prepare, report, exclusive


POOL: ThreadPoolExecutor | None = None


def _compile(lowered):
    t0 = time.perf_counter()
    exe = lowered.compile()
    return exe, time.perf_counter() - t0


def compile_now(lowered: dict) -> dict:
    """Compile ``{key: lowered}`` in the pool and wait: ``{key: executable}``."""
    futs = {k: POOL.submit(_compile, low) for k, low in lowered.items()}
    return {k: f.result()[0] for k, f in futs.items()}


def run_pipeline(groups: list[Group], workers: int, deadline: float, t_start: float):
    """Prepare group i + 1 (its compiles start in the pool) before timing group i."""
    global POOL
    POOL = ThreadPoolExecutor(max(1, workers))

    def start(g):
        jobs = g.prepare()
        return g, {k: (POOL.submit(_compile, low), ctx) for k, (low, ctx) in jobs.items()}

    ahead = start(groups[0]) if groups else None
    for i in range(len(groups)):
        g, futs = ahead
        late = deadline and time.perf_counter() - t_start > deadline
        nxt = groups[i + 1] if i + 1 < len(groups) and not late else None
        ahead = start(nxt) if nxt is not None and not nxt.exclusive else None
        g.report({k: f.result() + (ctx,) for k, (f, ctx) in futs.items()})
        del futs
        if nxt is not None and nxt.exclusive:
            ahead = start(nxt)
        if nxt is None and i + 1 < len(groups):
            print(f"\n(deadline {deadline:.0f} s passed: {len(groups) - i - 1} groups skipped)", flush=True)
            break
    POOL.shutdown(wait=False, cancel_futures=True)


# ============================================================================= physics / profile


def build_levels(args, name: str, n: int, max_entities: int | None = None):
    if name.startswith("gen:"):
        stage = G.stage_params(name[4:])
        cap = max_entities or DEFAULT_GEN_MAX_ENTITIES
        gen = jax.jit(jax.vmap(lambda k: G.generate(k, stage, cap, GEN_ENTITY_TYPES, DEFAULT_GEN_MAX_DOORS)))
        return gen(jax.random.split(jax.random.PRNGKey(7), n)), \
            f"generated `{name[4:]}` (types {GEN_ENTITY_TYPES}, capacity {cap})"
    one = npp.load_map((map_dir(args.map_dir) / name).read_bytes(), max_entities=max_entities or args.max_entities)
    desc = f"{name} ({int(one.n_entities)} entities, types {one.entity_types}, capacity {one.max_entities})"
    return jax.tree.map(lambda a: jnp.broadcast_to(a, (n,) + a.shape), one), desc


def fitted_capacity(args, name: str) -> int:
    """Smallest multiple of 16 that holds the map's entities."""
    one = npp.load_map((map_dir(args.map_dir) / name).read_bytes(), max_entities=args.max_entities)
    return max(16, -(-int(one.n_entities) // 16) * 16)


_tick_stats = jax.jit(tick_stats, static_argnames="options")   # one trace per options, reused for every N


def physics_rollout(frames: int, options: TickOptions):
    """``(states, levels, key) -> (states, histogram of depenetration searches per substep)``."""
    def rollout(states, levels, key):
        def step(c, k):
            s, hist = c
            a = jax.random.randint(k, (s.ninja.x.shape[0],), 0, 6)
            hor, jump = npp.action_to_inputs(a)
            s, st = jax.vmap(lambda s_, l_, h, j: _tick_stats(s_, l_, h, j, options=options))(s, levels, hor, jump)
            ev = jnp.minimum(st["depen_evals"], HIST_BINS - 1)
            hist = hist + jnp.sum(ev[..., None] == jnp.arange(HIST_BINS), axis=(0, 1))
            return (s, hist), None

        (states, hist), _ = jax.lax.scan(step, (states, jnp.zeros(HIST_BINS, jnp.int32)),
                                         jax.random.split(key, frames))
        return states, hist

    return rollout


class PhysicsJobs:
    """Physics programs of one map: inputs, lowering, timing. Keys: (options, num_envs, capacity)."""

    def __init__(self, args, name: str, specs):
        self.args, self.name, self.specs = args, name, list(dict.fromkeys(specs))
        self.dtype = jnp.float64 if args.float64 else jnp.float32

    def prepare(self):
        inputs, jobs = {}, {}
        for options, n, cap in self.specs:
            if (n, cap) not in inputs:
                levels, desc = build_levels(self.args, self.name, n, cap)
                states = jax.jit(jax.vmap(lambda lv: npp.init_state(lv, self.dtype)))(levels)
                inputs[(n, cap)] = (jax.block_until_ready(states), levels, desc)
            states, levels, desc = inputs[(n, cap)]
            low = jax.jit(physics_rollout(self.args.frames, options)).lower(states, levels, jax.random.PRNGKey(0))
            jobs[(options, n, cap)] = (low, (states, levels, desc))
        return jobs

    def time(self, results):
        out = {}
        for key, (exe, compile_s, (states, levels, desc)) in results.items():
            n = key[1]
            sec = median_seconds(exe, (states, levels, jax.random.PRNGKey(1)), self.args.repeats)
            _, hist = exe(states, levels, jax.random.PRNGKey(1))
            try:
                cost = exe.cost_analysis()
                cost = cost[0] if isinstance(cost, (list, tuple)) else cost
                flops = float(cost.get("flops", float("nan"))) / n
                bytes_acc = float(cost.get("bytes accessed", float("nan"))) / n
            except Exception:   # noqa: BLE001 (cost analysis is optional)
                flops = bytes_acc = float("nan")
            out[key] = {"fps": n * self.args.frames / sec, "sec": sec, "compile_s": compile_s, "desc": desc,
                        "state_b": tree_bytes(states) // n, "level_b": tree_bytes(levels) // n, "flops": flops,
                        "bytes": bytes_acc, "hist": np.asarray(hist, np.int64)}
        return out


def physics_groups(args):
    envs = ints(args.envs)
    maps = names(args.maps)
    dev = jax.devices()[0]

    def make(idx, name):
        jobs = PhysicsJobs(args, name, [(REF, n, None) for n in envs])

        def report(results):
            if idx == 0:
                print(f"\n### physics: frames/s vs num_envs ({jnp.dtype(jobs.dtype).name}, {args.frames} frames "
                      f"per call, {dev.device_kind})\n")
                print("| map | " + " | ".join(f"{n:,} envs" for n in envs) + " | compile s | state B/env | "
                      "level B/env | state floor | XLA flops/frame | XLA bytes/frame |")
                print("|---|" + "---|" * len(envs) + "---|---|---|---|---|---|")
            res = jobs.time(results)
            rows = [res[(REF, n, None)] for n in envs]
            r = rows[-1]
            compiles = "/".join(f"{x['compile_s']:.0f}" for x in rows)
            print(f"| {r['desc']} | " + " | ".join(fmt_rate(x["fps"]) for x in rows) +
                  f" | {compiles} | {r['state_b']:,} | {r['level_b']:,} | "
                  f"{fmt_rate(args.bandwidth / (2 * r['state_b']))} | {r['flops']:,.0f} | {r['bytes']:,.0f} |",
                  flush=True)
            if idx == len(maps) - 1:
                print("\nState floor: frames/s at which reading + writing the whole state once per frame takes "
                      "the copy bandwidth. XLA flops/bytes: cost analysis of the compiled loop, each loop body "
                      "counted once (bytes: every op's operands and results, not DRAM traffic).", flush=True)

        return Group(jobs.prepare, report)

    return [make(i, m) for i, m in enumerate(maps)]


PROFILE_VARIANTS = [
    # (label, options); exact = TickOptions.is_reference
    ("substeps in a fori_loop", TickOptions(unroll_substeps=False)),
    ("depenetration: fixed 32-step loop with a done mask", TickOptions(depen_loop="fixed")),
    ("depenetration: 2 steps inline, then the while-loop", TickOptions(depen_unroll=2)),
    ("logical collisions as the row loop (no vectorised pass)", TickOptions(vector_logical=False)),
    ("no entity passes", TickOptions(entities=False)),
    ("no entity passes, no sweep", TickOptions(entities=False, sweep=False)),
    ("no entity passes, no tile collision", TickOptions(entities=False, tiles=False)),
] + [(f"depenetration cap {c}", TickOptions(depen_cap=c)) for c in (1, 2, 4, 8, 16)]


def _hist_stats(h):
    total = h[1:].sum()                 # 0: the ninja's physics did not run (dead)
    k = np.arange(len(h))
    frac = lambda sel: h[1:][sel[1:]].sum() / max(total, 1)
    return {"total": int(total), "mean": float((h[1:] * k[1:]).sum() / max(total, 1)),
            "max": (f">={len(h) - 1}" if h[-1] else str(int(k[h > 0].max()))) if total else "0",
            "eq": {c: frac(k == c) for c in (1, 2, 3)}, "over": {c: frac(k > c) for c in (1, 2, 4, 8)}}


def profile_groups(args):
    n = args.profile_envs
    maps = names(args.profile_maps or args.maps)
    variants = [v for v in PROFILE_VARIANTS if not args.variants or any(x in v[0] for x in names(args.variants))]
    cols, hists = {}, {}

    def make(idx, name):
        specs = [(REF, n, None)] + [(o, n, None) for _, o in variants]
        cap = None if name.startswith("gen:") else fitted_capacity(args, name)
        if cap is not None:
            specs.append((REF, n, cap))
        jobs = PhysicsJobs(args, name, specs)

        def report(results):
            res = jobs.time(results)
            ref = res[(REF, n, None)]
            hists[name] = ref["hist"]
            rel = lambda r: f"{fmt_rate(r['fps'])} ({r['sec'] / ref['sec']:.0%}, {r['compile_s']:.0f}s)"
            cells = [rel(ref)] + [rel(res[(o, n, None)]) for _, o in variants]
            if cap is None:
                cells.append("–")
            else:
                r = res[(REF, n, cap)]
                cells.append(f"{fmt_rate(r['fps'])} ({r['sec'] / ref['sec']:.0%}; cap {cap}: {r['state_b']:,} B)")
            cols[name] = cells
            print(f"(profile: {name} done)", flush=True)
            if idx == len(maps) - 1:
                print_profile(args, n, maps, variants, cols, hists)

        return Group(jobs.prepare, report)

    return [make(i, m) for i, m in enumerate(maps)]


def print_profile(args, n, maps, variants, cols, hists):
    print(f"\n### profile: frames/s of `tick` variants at {n:,} envs ({args.frames} frames per call; in brackets: "
          f"time relative to the reference and compile s, {args.compile_workers} compiles at a time)\n")
    print("| variant | exact | " + " | ".join(maps) + " |")
    print("|---|---|" + "---|" * len(maps))
    rows = [("reference (substeps unrolled, depenetration while-loop, cap 32)", "yes")]
    rows += [(label, "yes" if o.is_reference else "no") for label, o in variants]
    rows.append((f"entity capacity fitted to the map (was {args.max_entities})", "yes"))
    for k, (label, exact) in enumerate(rows):
        print(f"| {label} | {exact} | " + " | ".join(cols[m][k] for m in maps if m in cols) + " |")
    print(f"\n### depenetration: closest-point searches per substep (reference runs above: {n:,} envs x "
          f"{args.frames} frames x 4 substeps, random actions, frames of a live ninja)\n")
    print("A cap of k changes a substep only where the reference needed more than k searches (columns > k).\n")
    print("| map | substeps | mean | max | =1 | =2 | =3 | >1 | >2 | >4 | >8 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for m in maps:
        if m not in hists:
            continue
        s = _hist_stats(hists[m])
        print(f"| {m} | {s['total']:,} | {s['mean']:.4f} | {s['max']} | {s['eq'][1]:.3%} | {s['eq'][2]:.3%} | "
              f"{s['eq'][3]:.4%} | {s['over'][1]:.3%} | {s['over'][2]:.4%} | {s['over'][4]:.5%} | "
              f"{s['over'][8]:.5%} |", flush=True)


# ============================================================================= env


def _env_loop(env, params, reset, n, P, steps):
    def run(states, key):
        def body(c, k):
            states, acc, frames = c
            ka, ks, kr = jax.random.split(k, 3)
            act = jax.random.randint(ka, (n, 1), 0, 6)
            o, states, r, term, trunc, info = jax.vmap(env.step_env, in_axes=(0, 0, 0, None))(
                jax.random.split(ks, n), states, act, params)
            done = (term | trunc)[:, 0]
            po, ps = reset(jax.random.split(kr, P), params)
            pick = (jnp.cumsum(done) - 1) % P

            def sel(fresh, old):
                return jnp.where(done.reshape((n,) + (1,) * (old.ndim - 1)), fresh[pick], old)

            states = jax.tree.map(sel, ps, states)
            o = jax.tree.map(sel, po, o)
            acc = acc + r.sum() + sum(x.astype(jnp.float32).sum() for x in jax.tree.leaves(o))
            frames = frames + info["frames_executed"].sum()
            return (states, acc, frames), None

        (states, acc, frames), _ = jax.lax.scan(body, (states, jnp.float32(0), jnp.int32(0)),
                                                jax.random.split(key, steps))
        return states, acc, frames

    return run


def env_groups(args):
    from jaxrl_arena.config import Config, EnvConfig, NppConfig
    from jaxrl_arena.registry import make
    from jaxrl_arena.rollout import reset_pool_size

    steps = args.env_steps
    stages = names(args.stages)

    def make_group(idx, stage):
        def prepare():
            envs, resets, keys = {}, {}, jax.random.split(jax.random.PRNGKey(0), max(ints(args.env_envs)))
            for obs in names(args.obs):
                cfg = Config(env=EnvConfig(name="npp", obs_kind=obs),
                             npp=NppConfig(stage=stage, max_frames=20_000))
                env = make(cfg)
                params = env.named_tasks()[stage]
                reset = jax.vmap(env.reset_env, in_axes=(0, None))
                envs[obs] = (cfg, env, params, reset)
                resets[obs] = jax.jit(reset).lower(keys, params)
            resets = compile_now(resets)                  # first states: one reset program per obs kind
            jobs = {}
            for obs, (cfg, env, params, reset) in envs.items():
                obs_all, st_all = resets[obs](keys, params)
                for n in ints(args.env_envs):
                    P = reset_pool_size(cfg.env, n)
                    obs0, st0 = jax.tree.map(lambda x, n=n: x[:n], (obs_all, st_all))
                    low = jax.jit(_env_loop(env, params, reset, n, P, steps)).lower(st0, jax.random.PRNGKey(1))
                    jobs[(obs, n)] = (low, (st0, tree_bytes(obs0) // n, P))
            return jobs

        def report(results):
            if idx == 0:
                print(f"\n### env: `step_env` (frame skip 4) with the trainer's optimistic auto-reset, random "
                      f"actions, {steps} steps per call\n")
                print("| stage | obs | envs | env-steps/s | frames/s | compile s | reset pool | obs B/env | "
                      "state B/env |")
                print("|---|---|---|---|---|---|---|---|---|")
            for (obs, n), (exe, compile_s, (st0, obs_b, P)) in results.items():
                for i in range(-(-args.env_warmup // steps)):   # reach running episodes first
                    st0 = exe(st0, jax.random.PRNGKey(100 + i))[0]
                sec = median_seconds(exe, (st0, jax.random.PRNGKey(2)), args.repeats)
                _, _, frames = exe(st0, jax.random.PRNGKey(2))
                print(f"| {stage} | {obs} | {n:,} | {fmt_rate(n * steps / sec)} | {fmt_rate(int(frames) / sec)} | "
                      f"{compile_s:.0f} | {P} | {obs_b:,} | {tree_bytes(st0) // n:,} |", flush=True)
            if idx == len(stages) - 1:
                print("\nEach step: vmapped `step_env`, P fresh resets (new generated levels) selected into the "
                      "envs that finished (as `jaxrl_arena.rollout`), every observation leaf and the rewards summed "
                      "into the carry. frames/s: frames actually simulated (none after a win/death).", flush=True)

        return Group(prepare, report)

    return [make_group(i, s) for i, s in enumerate(stages)]


# ============================================================================= train


TRAIN_VARIANTS = {
    "mlp": ("npp_simplest", "MLP 256-256-128, `state_local`", []),
    "cnn": ("npp_simplest", "CNN (64,64) + MLP, `grid`", ["env.obs_kind=grid", "policy.kind=cnn"]),
    "grid": ("npp_grid", "recipe `npp_grid`: 4x4-patch conv (64, no bias) + 256, bf16, `grid`", []),
    "grid_f32": ("npp_grid", "`npp_grid` in float32", ["policy.compute_dtype=float32"]),
    "grid_bias": ("npp_grid", "`npp_grid` with a conv bias", ["policy.cnn_bias=true"]),
    "grid_e4": ("npp_grid", "`npp_grid`, 4 epochs", ["ppo.update_epochs=4"]),
    # a 2x2-patch torso (convs (32, 64) with biases), to compare with npp_grid's 4x4-patch conv
    "grid_2x2": ("npp_grid", "2x2-patch CNN (32, 64) with biases + 256, bf16, `grid`", [
        "policy.cnn_channels=[32,64]", "policy.cnn_kernels=[2,2]", "policy.cnn_strides=[2,2]", "policy.cnn_bias=true"]),
    "grid_2x2_nb": ("npp_grid", "2x2-patch CNN (32, 64) without biases", [
        "policy.cnn_channels=[32,64]", "policy.cnn_kernels=[2,2]", "policy.cnn_strides=[2,2]"]),
}


def train_groups(args):
    from jaxrl_arena import config as C
    from jaxrl_arena.train import make_train

    u = args.updates
    kinds = names(args.policies)

    def prepare():
        progs, inits = {}, {}
        for kind in kinds:
            recipe, label, extra = TRAIN_VARIANTS[kind]
            for n in ints(args.train_envs):
                cfg = C.apply_overrides(C.get_recipe(recipe), [
                    f"ppo.num_envs={n}", f"run.updates_per_chunk={u}", "run.total_timesteps=100_000_000_000",
                    *extra, *args.train_override])
                prog = make_train(cfg, devices=jax.devices()[:1])
                progs[(kind, n)] = (label, cfg, prog)
                inits[(kind, n)] = jax.jit(prog.init).lower()
        inits = compile_now(inits)                        # initial train states, compiled in parallel
        jobs = {}
        for key, (label, cfg, prog) in progs.items():
            state = inits[key]()
            for learn in ((True,) if args.skip_rollout_only else (True, False)):
                jobs[key + (learn,)] = (prog.chunk_for(u, learn=learn).lower(state), (label, cfg, prog, state))
        return jobs

    def report(results):
        print(f"\n### training: PPO end to end (generated `simplest` levels; recipe `npp_simplest` unless the "
              f"row names another; {u} updates per compiled chunk)\n")
        print("| policy | envs | T | agent-steps/update | compile s | train agent-steps/s | "
              "rollout-only agent-steps/s | rollout+GAE share | compiled bytes/env |")
        print("|---|---|---|---|---|---|---|---|---|")
        for kind in kinds:
            for n in ints(args.train_envs):
                exe, compile_s, (label, cfg, prog, state) = results[(kind, n, True)]
                roll_exe = results[(kind, n, False)][0] if (kind, n, False) in results else None
                mem = exe.memory_analysis()
                total_b = (mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes
                           - mem.alias_size_in_bytes) if mem is not None else float("nan")
                full = median_chunk_seconds(exe, state, args.repeats)
                roll = median_chunk_seconds(roll_exe, state, args.repeats) if roll_exe is not None else None
                steps = u * prog.agent_steps_per_update
                print(f"| {label} | {n:,} | {cfg.ppo.num_steps} | {prog.agent_steps_per_update:,} | {compile_s:.0f} "
                      f"| {fmt_rate(steps / full)} | {fmt_rate(steps / roll) if roll else '–'} | "
                      f"{f'{roll / full:.0%}' if roll else '–'} | {total_b / n / 1024:,.0f} KiB |", flush=True)
                if args.trace_dir and (not args.trace_only or f"{kind}:{n}" in names(args.trace_only)):
                    save_trace(exe, state, Path(args.trace_dir) / f"train_{kind}_{n}.xplane.pb.gz")
                del state
        print("\nTrain: the compiled chunk (rollout with auto-reset, GAE, the recipe's epochs x minibatches), median "
              "of warm calls; rollout-only: the same chunk with the learner off.", flush=True)

    return [Group(prepare, report, exclusive=True)]


def save_trace(chunk, state, path: Path):
    """Profile one warm call of ``chunk`` and write the device trace (gzipped xplane) to
    ``path``; ``experiments/trace_summary.py`` turns it into a table by named scope."""
    import gzip
    import shutil
    import tempfile

    state = jax.tree.map(jnp.copy, state)
    state, metrics = chunk(state)
    jax.block_until_ready(metrics)
    with tempfile.TemporaryDirectory() as tmp:
        jax.profiler.start_trace(tmp)
        state, metrics = chunk(state)
        jax.block_until_ready(metrics)
        jax.profiler.stop_trace()
        found = sorted(Path(tmp).rglob("*.xplane.pb"))
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(found[-1], "rb") as src, gzip.open(path, "wb") as dst:
            shutil.copyfileobj(src, dst)
    try:   # the optimized HLO maps op names to their jax scopes (metadata op_name)
        with gzip.open(str(path).replace(".xplane.pb.gz", ".hlo.txt.gz"), "wt") as f:
            f.write(chunk.as_text())
    except Exception as e:   # noqa: BLE001 (optional)
        print(f"(no HLO text: {e})")
    print(f"(trace: {path}, {path.stat().st_size / 1e6:.1f} MB)", flush=True)


# ============================================================================= main


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", nargs="?", default="physics",
                   help="physics, profile, env, train, all, or a comma-separated list (run in that order)")
    p.add_argument("--map-dir", default=None, help="folder of map files (default .benchdata/maps or the golden maps)")
    p.add_argument("--map", default=None, help="one map file (short for --map-dir DIR --maps NAME); overrides both")
    p.add_argument("--maps", default=DEFAULT_MAPS, help="physics maps: file names and/or gen:STAGE")
    p.add_argument("--envs", default="4096,16384,65536", help="physics: num_envs list")
    p.add_argument("--frames", type=int, default=100, help="physics/profile: frames per timed call")
    p.add_argument("--repeats", type=int, default=3, help="timed warm calls (median)")
    p.add_argument("--compile-workers", type=int, default=min(8, os.cpu_count() or 1))
    p.add_argument("--deadline", type=float, default=0, help="seconds; start no new group after (0: none)")
    p.add_argument("--max-entities", type=int, default=npp.level.DEFAULT_MAX_ENTITIES, help="human maps' capacity")
    p.add_argument("--float64", action="store_true")
    p.add_argument("--bandwidth", type=float, default=3.0e12, help="device copy B/s (read + write)")
    p.add_argument("--profile-envs", type=int, default=16384)
    p.add_argument("--profile-maps", default="gen:simplest,minefield,complex-path-switch-required")
    p.add_argument("--variants", default="", help="profile: only variants whose label contains one of these")
    p.add_argument("--stages", default="simplest,complex", help="env: generator stages")
    p.add_argument("--obs", default="state,state_local,grid")
    p.add_argument("--env-envs", default="4096,16384")
    p.add_argument("--env-steps", type=int, default=50)
    p.add_argument("--policies", default="mlp,cnn")
    p.add_argument("--train-envs", default="1024,4096")
    p.add_argument("--updates", type=int, default=2)
    p.add_argument("--train-override", nargs="*", default=[], help="config overrides key=value")
    p.add_argument("--trace-dir", default="", help="train: also write a device trace of one call per program")
    p.add_argument("--trace-only", default="", help="train: trace only these 'kind:envs' programs (e.g. grid:16384)")
    p.add_argument("--skip-rollout-only", action="store_true", help="train: no learner-off programs")
    p.add_argument("--env-warmup", type=int, default=0,
                   help="env: untimed steps first, so the timed ones start from running episodes")
    args = p.parse_args(argv)
    modes = list(MODES) if args.mode == "all" else names(args.mode)
    if any(m not in MODES for m in modes):
        p.error(f"mode must be one of {', '.join(MODES)} or all")
    if args.float64:
        jax.config.update("jax_enable_x64", True)
    if args.map:
        args.map_dir, args.maps = str(Path(args.map).parent), Path(args.map).name
    dev = jax.devices()[0]
    print(f"device: {dev.device_kind} ({dev.platform}), jax {jax.__version__}, maps from {map_dir(args.map_dir)}",
          flush=True)
    t0 = time.perf_counter()
    build = {"physics": physics_groups, "profile": profile_groups, "env": env_groups, "train": train_groups}
    groups = [g for m in modes for g in build[m](args)]
    run_pipeline(groups, args.compile_workers, args.deadline, t0)
    print(f"\n(total {time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
