"""Plot N++ training runs: held-out success per stage (``eval/success_rate/<stage>``) and the
curriculum stage against wall-clock minutes and agent-steps.

    python experiments/plot_npp.py runs/NAME/metrics.jsonl out.png [--per-run]

``--per-run`` draws one line per vmapped run (seeds / A/B variants) of the first stage
instead of one line per stage.
"""

from __future__ import annotations

import argparse
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

PREFIX = "eval/success_rate/"
STAGE_ORDER = ("simplest", "simplest_few_mines", "simplest_with_mines", "simpler", "simple",
               "medium", "complex", "exploration", "mine_heavy")  # envs/npp/generators.py


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("metrics")
    p.add_argument("out")
    p.add_argument("--per-run", action="store_true")
    p.add_argument("--title", default=None)
    args = p.parse_args()
    with open(args.metrics) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    evals = [r for r in rows if any(k.startswith(PREFIX) for k in r)]
    stages = [k[len(PREFIX):] for k in evals[0] if k.startswith(PREFIX)]
    order = {name: i for i, name in enumerate(STAGE_ORDER)}  # the curriculum's order
    stages.sort(key=lambda s: order.get(s, len(order)))
    has_stage = any(r.get("curriculum/stage") is not None for r in rows) and len(stages) > 1
    fig, axes = plt.subplots(1, 2 if has_stage else 1, figsize=(13 if has_stage else 7, 4.2),
                             squeeze=False)
    ax = axes[0, 0]
    minutes = [r["wall_time"] / 60 for r in evals]
    if args.per_run:
        key = PREFIX + stages[0]
        labels = sorted({k.split("/")[1] for r in evals for k in r
                         if k.startswith("runs/") and k.endswith("/" + key)})
        for label in labels:
            ax.plot(minutes, [r.get(f"runs/{label}/{key}") for r in evals], marker=".",
                    label=label.replace(",seed=0", ""))
        ax.set_title(f"held-out {stages[0]} levels (fixed set), per A/B run")
    else:
        for stage in stages:
            ax.plot(minutes, [r[PREFIX + stage] for r in evals], marker=".", label=stage)
        ax.set_title("held-out success per stage (fixed sets)")
    ax.set_xlabel("wall-clock minutes of training (after compile)")
    ax.set_ylabel("success rate")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    if has_stage:
        ax = axes[0, 1]
        pts = [(r["wall_time"] / 60, r["curriculum/stage"]) for r in rows
               if r.get("curriculum/stage") is not None]
        ax.step([x for x, _ in pts], [y for _, y in pts], where="post")
        ax.set_yticks(range(len(stages)))
        ax.set_yticklabels(stages, fontsize=7)
        ax.set_xlabel("wall-clock minutes")
        ax.set_title("curriculum stage")
        ax.grid(alpha=0.3)
    fig.suptitle(args.title or args.metrics, fontsize=9)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
