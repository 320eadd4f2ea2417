"""Behaviour cloning of a PPO recipe's N++ policy from human replays, then PPO from it.

    python experiments/npp_bc.py                                     # golden replays, npp_grid
    python experiments/npp_bc.py --replays DIR --config-override bc.epochs=50
    python experiments/npp_bc.py --recipe npp_simplest               # another recipe's network
    python experiments/npp.py --recipe npp_grid --init-from runs/bc_npp_grid_seed0

Prints its plan, one line per skipped replay, one line per epoch (train loss, val loss, val
accuracy), and closes with the run dir, its artefact (``<run dir>/policy``) and the exact
``experiments/npp.py`` command that continues with PPO. Rerunning resumes; ``--fresh`` starts
over. Keys: ``bc.*`` (jaxrl_arena/config/schema.py, ``BCConfig``), and any key of the recipe
(e.g. ``policy.obs_norm=true``: standardised inputs, the statistics of the training set).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--replays", default=None, metavar="DIR",
                   help="folder of .replay files (= bc.replays; default: the golden replays)")
    p.add_argument("--recipe", default=None,
                   help="the PPO recipe whose network and observation are cloned (= bc.recipe; "
                        "default npp_grid)")
    p.add_argument("--config-override", nargs="+", action="extend", default=[],
                   metavar="KEY=VALUE", help="dotted.key=value, one or more; may repeat")
    p.add_argument("--fresh", action="store_true",
                   help="start over even if the run dir holds a checkpoint")
    p.add_argument("--print-config", action="store_true", help="print the config and exit")
    args = p.parse_args()

    from jaxrl_arena import bc, cli
    from jaxrl_arena.logging import print_banner

    overrides = list(args.config_override)
    if args.replays is not None:
        overrides.append(f"bc.replays={args.replays}")
    cfg = bc.bc_config(overrides, recipe=args.recipe)
    if args.print_config:
        cli.print_config(cfg)
        return 0
    program = bc.make_bc(cfg)
    print_banner(None, title=f"jaxrl_arena · {bc.EXPERIMENT} · {cfg.bc.recipe}",
                 rows=bc.plan(cfg, program))
    result = bc.train_bc(cfg, fresh=args.fresh)
    if result.stopped_by_signal:
        return 0
    from jaxrl_arena.policy_artifact import export_run

    artefact = export_run(result.run_dir, result.run_dir / "policy")
    acc = result.last_metrics.get("bc/val_accuracy", float("nan"))
    print(f"done: {result.epochs} epochs in {result.run_dir} (val accuracy {acc:.3f}), artefact "
          f"{artefact}; PPO from it: {bc.ppo_command(cfg, result.run_dir)}")
    return 0


if __name__ == "__main__":
    from jaxrl_arena.cli import main_guard

    main_guard(main)
