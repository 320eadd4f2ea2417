"""Plot metrics from a run's metrics.jsonl to a PNG.

    python experiments/plot_metrics.py runs/NAME/metrics.jsonl out.png env_agent/heart.get overview/reward
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__)
        return 2
    path, out, *names = argv
    rows = [json.loads(line) for line in open(path) if line.strip()]
    fig, axes = plt.subplots(len(names), 1, figsize=(7, 2.6 * len(names)), sharex=True, squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        pts = [(r["step"], r[name]) for r in rows if r.get(name) is not None]
        ax.plot([p[0] / 1e6 for p in pts], [p[1] for p in pts])
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("agent-steps (millions)")
    fig.suptitle(path)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
