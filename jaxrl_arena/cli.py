"""Command line shared by every experiment: --recipe, --config-override, --fresh, seeds, A/B."""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from jaxrl_arena import config as config_lib
from jaxrl_arena.config import Config, ConfigError


def parser(description: str, default_recipe: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--recipe", default=default_recipe,
                   help=f"named config to start from (default: {default_recipe}); "
                        f"known: {', '.join(sorted(config_lib.RECIPES))}")
    p.add_argument("--config-override", nargs="+", action="extend", default=[],
                   metavar="KEY=VALUE", help="dotted.key=value, one or more; may repeat")
    p.add_argument("--fresh", action="store_true",
                   help="start over even if the run dir holds a checkpoint")
    p.add_argument("--num-seeds", type=int, default=None,
                   help="train N seeds vmapped in one jit (= run.num_seeds)")
    p.add_argument("--ab", nargs="+", action="extend", default=[], metavar="KEY=V1,V2",
                   help="A/B variants of vmappable hyperparameters, all in one jit")
    p.add_argument("--init-from", default=None, metavar="RUN_OR_ARTEFACT",
                   help="start from the policy of a run dir or a policy artefact "
                        "(= run.init_from; every parameter must match)")
    p.add_argument("--print-config", action="store_true", help="print the config (recipe and overrides; auto values as set) and exit")
    return p


def add_render_args(p: argparse.ArgumentParser, default_steps: int) -> None:
    """``--render-episode OUT.gif`` / ``--render-steps N`` of the env entry points."""
    p.add_argument("--render-episode", metavar="OUT.gif", default=None,
                   help="write a GIF of one episode instead of training")
    p.add_argument("--render-steps", type=int, default=default_steps,
                   help="agent steps to render at most (the episode may end sooner)")


def parse_entry(p: argparse.ArgumentParser, env_name: str, script: str
                ) -> tuple[argparse.Namespace, Config]:
    """Parse an env entry point's arguments into its config; one-line errors for another env
    or a bad ``--render-steps``."""
    args = p.parse_args()
    cfg = build_config(args)
    if cfg.env.name != env_name:
        raise ConfigError(f"{script} trains env.name={env_name}, got {cfg.env.name!r}")
    if getattr(args, "render_steps", 1) < 1:
        raise ConfigError(f"--render-steps must be >= 1, got {args.render_steps}")
    return args, cfg


def build_config(args: argparse.Namespace, extra: Sequence[str] = ()) -> Config:
    cfg = config_lib.get_recipe(args.recipe)
    cfg = config_lib.apply_overrides(cfg, list(extra) + list(args.config_override))
    if args.num_seeds is not None:
        cfg = config_lib.replace(cfg, "run.num_seeds", args.num_seeds)
    if getattr(args, "init_from", None):
        cfg = config_lib.replace(cfg, "run.init_from", args.init_from)
    return cfg


def main_guard(fn: Callable[[], int | None]) -> None:
    """Run ``fn``; configuration mistakes become one line on stderr and exit status 2."""
    try:
        code = fn()
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except RuntimeError as err:
        from jaxrl_arena.loop import TrainingStopped

        if not isinstance(err, TrainingStopped):
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(3)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)


def print_config(cfg: Config) -> None:
    """``--print-config``: the config as JSON (``auto`` values are resolved when a run starts)."""
    import json

    print(json.dumps(config_lib.to_dict(cfg), indent=2))


def train_and_report(cfg: Config, args: argparse.Namespace, experiment: str,
                     metric: str, label: str) -> int:
    """Train (or resume) ``cfg`` and print one closing line with ``metric``'s last value and
    the last held-out evaluation of the same statistic (``eval/<stat>/<task>``)."""
    from jaxrl_arena.evaluation import metric_name
    from jaxrl_arena.loop import train

    result = train(cfg, experiment=experiment, recipe=args.recipe, fresh=args.fresh, ab=args.ab)
    value = result.last_metrics.get(metric)
    prefix = f"eval/{metric_name(metric.rsplit('/', 1)[-1])}/"
    held_out = {k[len(prefix):]: v for k, v in result.last_metrics.items() if k.startswith(prefix)}
    print(f"done: {result.agent_steps:,} agent-steps in {result.run_dir}"
          + (f", {label} {value:.3f}" if value is not None else "")
          + ("; held-out " + ", ".join(f"{t} {v:.3f}" for t, v in held_out.items())
             if held_out else ""))
    return 0
