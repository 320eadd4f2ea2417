"""Train PPO on N++ levels (generated per stage, or the staged curriculum).

    python experiments/npp.py                                   # recipe npp_simplest
    python experiments/npp.py --config-override run.seed=3 ppo.lr=3e-4
    python experiments/npp.py --recipe npp_curriculum           # the staged curriculum
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxrl_arena import cli  # noqa: E402


def main() -> int:
    p = cli.parser(__doc__.strip().splitlines()[0], default_recipe="npp_simplest")
    args = p.parse_args()
    cfg = cli.build_config(args)
    if cfg.env.name != "npp":
        raise cli.ConfigError(f"experiments/npp.py trains env.name=npp, got {cfg.env.name!r}")
    if args.print_config:
        cli.print_config(cfg)
        return 0
    return cli.train_and_report(cfg, args, "npp", "env_agent/success", "success rate")


if __name__ == "__main__":
    cli.main_guard(main)
