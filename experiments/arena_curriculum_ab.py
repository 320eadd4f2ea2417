"""A/B of arena curricula: the single easy task vs uniform over the 640,000 bucketed tasks vs
learning progress over them, each with several seeds vmapped in one jit, evaluated on the
held-out suites ``arena/basic`` and ``arena/combat`` (arena.md §12.1).

    python experiments/arena_curriculum_ab.py train --out runs/curriculum_ab --num-seeds 2 \\
        --timesteps 200000000 --config-override policy.kind=cnn ppo.num_envs=1024
    python experiments/arena_curriculum_ab.py plot --out runs/curriculum_ab --png docs/arena_curriculum_ab.png

``train`` runs the variants one after another in this process (their compiled programs
differ) into ``<out>/<variant>/``; ``plot`` draws ``eval/heart.get/<suite>`` against
agent-steps per variant (thin lines: seeds; thick: their mean) and prints a table.

Section marks (§) cite docs/specs/arena.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

VARIANTS = {  # name -> (recipe, label, overrides)
    "single": ("arena_basic_easy_shaped", "single easy task", ()),
    "uniform": ("arena_uniform", "uniform over 640k tasks", ()),
    "lp": ("arena_lp", "learning progress over 640k tasks", ()),
    # The spec's EMA rate (0.001 per refresh) barely moves at the arena's data rate (a 1000-step
    # episode per env every 16 updates spread over a 256-task pool): a 100x faster one.
    "lp_fast": ("arena_lp", "learning progress, ema_timescale 0.1",
                ("curriculum.ema_timescale=0.1",)),
}
SUITES = ("arena/basic", "arena/combat")
METRIC = "heart.get"


def train(args) -> int:
    from jaxrl_arena import config as config_lib
    from jaxrl_arena.loop import train as train_loop

    for name in args.variants:
        recipe, label, overrides = VARIANTS[name]
        cfg = config_lib.get_recipe(recipe)
        cfg = config_lib.apply_overrides(cfg, [*overrides,
            f"run.total_timesteps={args.timesteps}", f"run.num_seeds={args.num_seeds}",
            f"run.seed={args.seed}", f"run.dir={Path(args.out) / name}", "logging.progress=false",
            "logging.tensorboard=false", *args.config_override])
        print(f"== {name}: {label} (recipe {recipe})", flush=True)
        result = train_loop(cfg, experiment="arena_ab", recipe=recipe, fresh=args.fresh)
        last = {k: v for k, v in result.last_metrics.items() if k.startswith("eval/heart.get")}
        print(f"   {result.agent_steps:,} agent-steps, {result.compile_seconds:.0f} s compile; {last}",
              flush=True)
    return 0


def curves(run_dir: Path, suite: str):
    """(steps, mean over seeds, {seed label: values}) of eval/heart.get/<suite>."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()
            if line.strip()]
    key = f"eval/{METRIC}/{suite}"
    rows = [r for r in rows if r.get(key) is not None]
    steps = [r["step"] for r in rows]
    per_seed: dict[str, list[float]] = {}
    for r in rows:
        for k, v in r.items():
            if k.startswith("runs/") and k.endswith("/" + key):
                per_seed.setdefault(k.split("/")[1], []).append(v)
    return steps, [r[key] for r in rows], per_seed


def plot(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(args.out)
    fig, axes = plt.subplots(1, len(SUITES), figsize=(12, 4.2), sharey=True)
    print("| variant | agent-steps per seed | " + " | ".join(
        f"{METRIC} {s} (last; best)" for s in SUITES) + " |")
    print("|---|---|" + "---|" * len(SUITES))
    for i, (name, (recipe, label, _)) in enumerate(VARIANTS.items()):
        if not (out / name / "metrics.jsonl").exists():
            continue
        cells = []
        for ax, suite in zip(axes, SUITES):
            steps, mean, per_seed = curves(out / name, suite)
            x = [s / 1e6 for s in steps]
            color = f"C{i}"
            for values in per_seed.values():
                ax.plot(x, values, color=color, alpha=0.3, lw=1)
            ax.plot(x, mean, color=color, lw=2.2, label=f"{label} ({len(per_seed) or 1} seeds)")
            cells.append(f"{mean[-1]:.2f}; {max(mean):.2f}" if mean else "-")
        print(f"| {label} | {steps[-1] / 1e6 if steps else 0:.0f}M | " + " | ".join(cells) + " |")
    for ax, suite in zip(axes, SUITES):
        ax.set_title(f"held-out eval: {suite}")
        ax.set_xlabel("agent-steps per seed (millions)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"{METRIC} per agent per episode")
    axes[0].legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(args.png, dpi=110)
    print(f"wrote {args.png}")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--out", default="runs/curriculum_ab")
    t.add_argument("--variants", nargs="+", default=["single", "uniform", "lp"],
                   choices=list(VARIANTS))
    t.add_argument("--num-seeds", type=int, default=2)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--timesteps", type=int, default=200_000_000, help="agent-steps per seed")
    t.add_argument("--config-override", nargs="+", action="extend", default=[])
    t.add_argument("--fresh", action="store_true")
    q = sub.add_parser("plot")
    q.add_argument("--out", default="runs/curriculum_ab")
    q.add_argument("--png", default="docs/arena_curriculum_ab.png")
    args = p.parse_args()
    return train(args) if args.cmd == "train" else plot(args)


if __name__ == "__main__":
    from jaxrl_arena import cli

    cli.main_guard(main)
