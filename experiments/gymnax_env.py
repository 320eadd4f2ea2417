"""Train PPO on any gymnax environment.

    python experiments/gymnax_env.py --env CartPole-v1 --config-override ppo.num_envs=512
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxrl_arena import cli  # noqa: E402


def main() -> int:
    p = cli.parser(__doc__.strip().splitlines()[0], default_recipe="cartpole")
    p.add_argument("--env", default=None, help="gymnax env name (e.g. CartPole-v1, Breakout-MinAtar)")
    args = p.parse_args()
    extra = [f"env.name={args.env}"] if args.env else []
    cfg = cli.build_config(args, extra)
    if args.env:
        from jaxrl_arena.registry import gymnax_names

        if args.env not in gymnax_names():
            raise cli.ConfigError(f"unknown gymnax env {args.env!r}; known: {', '.join(gymnax_names())}")
    if args.print_config:
        cli.print_config(cfg)
        return 0
    return cli.train_and_report(cfg, args, "gymnax", "overview/reward", "last reward")


if __name__ == "__main__":
    cli.main_guard(main)
