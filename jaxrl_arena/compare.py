"""Compare configs and runs: what differs, and what it did.

    python -m jaxrl_arena.compare arena_ff arena_basic_easy_shaped     # two recipes
    python -m jaxrl_arena.compare runs/a/config.json runs/b            # two saved configs
    python -m jaxrl_arena.compare runs/a --recipe                      # a run against its recipe
    python -m jaxrl_arena.compare runs/a runs/b --metrics overview/reward overview/sps --png out.png
    python -m jaxrl_arena.compare runs/a::ppo.lr=0.001 runs/a::ppo.lr=0.0003   # vmapped variants

Each argument is a recipe name, a ``config.json`` or a run directory. The config diff lists
every key whose value differs (markdown). With two or more run directories it also compares
their metrics: each run's ``metrics.jsonl`` aligned by agent-steps on a common grid (linear
interpolation inside each run's range), a run with several seeds (``runs/<label>/<metric>``
columns) summarised as mean ± standard deviation over its seeds; a markdown table at 25, 50,
75 and 100% of the shortest run, and with ``--png`` one panel per metric.

``DIR::ITEMS`` selects some of a multi-run directory's runs (seeds × ``--ab`` variants vmapped
in one program, logged per run with ``logging.per_run_metrics``): those whose label holds every
comma-separated item, e.g. ``ppo.lr=0.001`` (its seeds) or ``ppo.lr=0.001,seed=1``; items that
set a config key also set it in the config the diff shows. A metric logged for the whole
directory only (``overview/sps``: one program, one speed) is the same for each selection.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from jaxrl_arena import config as config_lib
from jaxrl_arena.config import Config, ConfigError

DEFAULT_METRICS = ("overview/reward", "overview/sps")
SELECT = "::"  # DIR::ITEMS: some runs of a multi-run directory


@dataclasses.dataclass(frozen=True)
class RunRef:
    """A run directory's metrics, or those of its runs whose label holds every item of
    ``select`` (``ppo.lr=0.001``); ``name`` labels it in tables and plots."""

    path: Path
    select: str | None = None
    name: str | None = None

    @property
    def label(self) -> str:
        if self.name is not None:
            return self.name
        return f"{self.path}{SELECT}{self.select}" if self.select else str(self.path)


def parse_ref(ref: str) -> RunRef:
    """``DIR`` or ``DIR::ITEMS`` (any other argument: its path is the whole text)."""
    path, sep, select = ref.partition(SELECT)
    return RunRef(Path(path), select.strip(",") or None, ref if sep else None)


def selected(label: str, select: str | None) -> bool:
    """Whether a run's label (``ppo.lr=0.001,seed=0``) holds every item of ``select``."""
    return select is None or set(select.split(",")) <= set(label.split(","))


def load_config(ref: str) -> tuple[Config, str, dict]:
    """``(config, label, resolved info)`` of a recipe name, a config.json or a run directory
    (``DIR::ITEMS``: with the items that name config keys set)."""
    run = parse_ref(ref)
    path = run.path
    if path.is_dir():
        path = path / "config.json"
    if path.suffix == ".json" and path.exists():
        data = json.loads(path.read_text())
        resolved = data.pop("_resolved", None) or {}
        cfg = config_lib.from_dict(data)
        keys = config_lib.all_keys()
        for item in (run.select or "").split(","):
            key, _, text = item.partition("=")
            if key in keys:
                cfg = config_lib.replace(cfg, key, config_lib.parse_value(key, text))
        return cfg, ref if run.select else str(run.path), resolved
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


def run_curves(run_dir: Path, metric: str, select: str | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """``(agent_steps [n], values [n, seeds])`` of one metric of a run (NaN where not logged).
    ``select``: only the runs whose label holds its items. A metric without per-run columns
    is the directory's own, the same for every selection, unless the directory logged no run
    apart (no ``runs/`` column at all): then a selection has nothing."""
    from jaxrl_arena.logging import read_metrics

    rows = read_metrics(run_dir)
    steps = np.asarray([r["step"] for r in rows], np.float64)
    suffix = "/" + metric
    per_run = {k for r in rows for k in r if k.startswith("runs/") and k.endswith(suffix)
               and "/" not in k[len("runs/"):-len(suffix)]}  # a label holds no "/"
    if per_run:
        keys = sorted(k for k in per_run if selected(k[len("runs/"):-len(suffix)], select))
    elif select is None or any(k.startswith("runs/") for r in rows for k in r):
        keys = [metric]
    else:
        keys = []
    values = np.asarray([[r.get(k, np.nan) for k in keys] for r in rows], np.float64)
    return steps, values.reshape(len(rows), len(keys))


def aligned(curves: dict[str, tuple[np.ndarray, np.ndarray]], points: int = 50):
    """Each run's seeds interpolated onto one agent-step grid over the range every run logged
    the metric in (a metric logged every n-th update, like an evaluation, starts late: before
    its first value there is nothing to draw, not its first value extended back)."""
    spans = [s[np.isfinite(v).any(1)] for s, v in curves.values()]
    spans = [s for s in spans if len(s)] or [s for s, _ in curves.values() if len(s)]
    end = min(s[-1] for s in spans)
    start = max(s[0] for s in spans)
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


def metrics_table(run_dirs: list[Path | RunRef], metrics) -> tuple[str, dict]:
    """The markdown tables of ``metrics`` (one per metric, a row per run or selection) and
    their aligned curves, ``{metric: (grid, {label: values [points, seeds]})}``."""
    lines, data = [], {}
    refs = [d if isinstance(d, RunRef) else RunRef(Path(d)) for d in run_dirs]
    for metric in metrics:
        curves = {}
        for ref in refs:
            steps, values = run_curves(ref.path, metric, ref.select)
            if np.isfinite(values).any():
                curves[ref.label] = (steps, values)
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


def check_selection(ref: RunRef) -> None:
    """A selection must name some of its directory's runs (``_resolved.runs`` of its
    config.json): a mistyped one is an error, not an empty row."""
    if ref.select is None or not (ref.path / "config.json").exists():
        return
    resolved = json.loads((ref.path / "config.json").read_text()).get("_resolved") or {}
    labels = [label for label in resolved.get("runs") or [] if label]
    if not any(selected(label, ref.select) for label in labels):
        raise ConfigError(f"{ref.label} selects none of the runs of {ref.path} "
                          f"({', '.join(labels) or 'it holds a single run'})")


def write_png(path: str, data: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(len(data), 4)  # many metrics wrap into rows: a figure stays readable
    rows = -(-len(data) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
    for ax in axes.flat[len(data):]:
        ax.set_visible(False)
    for ax, (metric, (grid, al)) in zip(axes.flat, data.items()):
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
    p.add_argument("refs", nargs="+", help="recipe names, config.json files or run directories "
                   "(DIR::ITEMS: the runs of DIR whose label holds the items, e.g. ppo.lr=0.001)")
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
    runs = [ref for ref in map(parse_ref, a.refs) if (ref.path / "metrics.jsonl").exists()]
    for ref in runs:
        check_selection(ref)
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
