"""Compare configs and runs: what differs, and what it did.

    python -m jaxrl_arena.compare arena_ff arena_basic_easy_shaped     # two recipes
    python -m jaxrl_arena.compare runs/a/config.json runs/b            # two saved configs
    python -m jaxrl_arena.compare runs/a --recipe                      # a run against its recipe
    python -m jaxrl_arena.compare runs/a runs/b --metrics overview/reward overview/sps --png out.png

Each argument is a recipe name, a ``config.json`` or a run directory. The config diff lists
every key whose value differs (markdown). With two or more run directories it also compares
their metrics: each run's ``metrics.jsonl`` aligned by agent-steps on a common grid (linear
interpolation inside each run's range), a run with several seeds (``runs/<label>/<metric>``
columns) summarised as mean ± standard deviation over its seeds; a markdown table at 25, 50,
75 and 100% of the shortest run, and with ``--png`` one panel per metric.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from jaxrl_arena import config as config_lib
from jaxrl_arena.config import Config, ConfigError

DEFAULT_METRICS = ("overview/reward", "overview/sps")


def load_config(ref: str) -> tuple[Config, str, dict]:
    """``(config, label, resolved info)`` of a recipe name, a config.json or a run directory."""
    path = Path(ref)
    if path.is_dir():
        path = path / "config.json"
    if path.suffix == ".json" and path.exists():
        data = json.loads(path.read_text())
        resolved = data.pop("_resolved", None) or {}
        return config_lib.from_dict(data), str(Path(ref)), resolved
    if ref in config_lib.RECIPES:
        return config_lib.get_recipe(ref), f"recipe {ref}", {}
    raise ConfigError(f"{ref!r} is neither a recipe ({', '.join(sorted(config_lib.RECIPES))}), "
                      "a config.json nor a run directory")


def config_diff_table(a: Config, b: Config, label_a: str, label_b: str) -> str:
    diff = config_lib.diff(a, b)
    if not diff:
        return f"`{label_a}` and `{label_b}`: identical configs\n"
    rows = [f"| key | {label_a} | {label_b} |", "|---|---|---|"]
    rows += [f"| `{k}` | {va!r} | {vb!r} |" for k, (va, vb) in sorted(diff.items())]
    return "\n".join(rows) + "\n"


def run_curves(run_dir: Path, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """``(agent_steps [n], values [n, seeds])`` of one metric of a run (NaN where not logged)."""
    from jaxrl_arena.logging import read_metrics

    rows = read_metrics(run_dir)
    steps = np.asarray([r["step"] for r in rows], np.float64)
    per_seed = sorted({k for r in rows for k in r
                       if k.startswith("runs/") and k.endswith("/" + metric)})
    keys = per_seed or [metric]
    values = np.asarray([[r.get(k, np.nan) for k in keys] for r in rows], np.float64)
    return steps, values


def aligned(curves: dict[str, tuple[np.ndarray, np.ndarray]], points: int = 50):
    """Each run's seeds interpolated onto one agent-step grid over the shortest run's range."""
    end = min(s[-1] for s, _ in curves.values() if len(s))
    start = max(s[0] for s, _ in curves.values() if len(s))
    grid = np.linspace(start, end, points) if end > start else np.asarray([end])
    out = {}
    for name, (steps, values) in curves.items():
        cols = []
        for j in range(values.shape[1]):
            ok = np.isfinite(values[:, j])
            cols.append(np.interp(grid, steps[ok], values[ok, j]) if ok.any()
                        else np.full(len(grid), np.nan))
        out[name] = np.stack(cols, 1)
    return grid, out


def metrics_table(run_dirs: list[Path], metrics) -> tuple[str, dict]:
    lines, data = [], {}
    for metric in metrics:
        curves = {}
        for d in run_dirs:
            steps, values = run_curves(d, metric)
            if np.isfinite(values).any():
                curves[str(d)] = (steps, values)
        if len(curves) < 1:
            lines.append(f"`{metric}`: not logged by these runs\n")
            continue
        grid, al = aligned(curves)
        data[metric] = (grid, al)
        marks = [round(f * (len(grid) - 1)) for f in (0.25, 0.5, 0.75, 1.0)]
        lines.append(f"`{metric}` (mean ± std over seeds, at agent-steps)\n")
        lines.append("| run | seeds | " + " | ".join(f"{grid[i]:,.0f}" for i in marks) + " |")
        lines.append("|---|---|" + "---|" * len(marks))
        for name, v in al.items():
            cells = []
            for i in marks:
                mean, std = np.nanmean(v[i]), np.nanstd(v[i])
                cells.append(f"{mean:.4g} ± {std:.2g}" if v.shape[1] > 1 else f"{mean:.4g}")
            lines.append(f"| {name} | {v.shape[1]} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines), data


def write_png(path: str, data: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(data), figsize=(5 * len(data), 3.6), squeeze=False)
    for ax, (metric, (grid, al)) in zip(axes[0], data.items()):
        for name, v in al.items():
            mean, std = np.nanmean(v, 1), np.nanstd(v, 1)
            ax.plot(grid, mean, label=Path(name).name)
            if v.shape[1] > 1:
                ax.fill_between(grid, mean - std, mean + std, alpha=0.2)
        ax.set_title(metric)
        ax.set_xlabel("agent-steps")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("refs", nargs="+", help="recipe names, config.json files or run directories")
    p.add_argument("--recipe", action="store_true",
                   help="with one run directory: compare its config with the recipe it came from")
    p.add_argument("--metrics", nargs="+", default=list(DEFAULT_METRICS))
    p.add_argument("--png", default=None, help="write the metric curves here")
    a = p.parse_args(argv)
    loaded = [load_config(r) for r in a.refs]
    out: list[str] = []
    if a.recipe:
        if len(loaded) != 1 or not loaded[0][2].get("recipe"):
            raise ConfigError("--recipe takes one run directory (its config.json names its recipe)")
        cfg, label, resolved = loaded[0]
        recipe = resolved["recipe"]
        if recipe not in config_lib.RECIPES:
            raise ConfigError(f"{label} came from recipe {recipe!r}, which no longer exists")
        out.append(config_diff_table(config_lib.get_recipe(recipe), cfg, f"recipe {recipe}", label))
    elif len(loaded) >= 2:
        base_cfg, base_label, _ = loaded[0]
        for cfg, label, _ in loaded[1:]:
            out.append(config_diff_table(base_cfg, cfg, base_label, label))
    runs = [Path(r) for r in a.refs if (Path(r) / "metrics.jsonl").exists()]
    if runs:
        text, data = metrics_table(runs, a.metrics)
        out.append(text)
        if a.png and data:
            write_png(a.png, data)
            out.append(f"wrote {a.png}")
    print("\n".join(out))
    return 0


def _entry() -> None:
    try:
        sys.exit(main())
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    _entry()
