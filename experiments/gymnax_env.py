"""Train PPO on any gymnax environment.

    python experiments/gymnax_env.py --env CartPole-v1 --config-override ppo.num_envs=512
"""

from __future__ import annotations

import json
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
        from envs.registry import gymnax_names

        if args.env not in gymnax_names():
            raise cli.ConfigError(f"unknown gymnax env {args.env!r}; known: {', '.join(gymnax_names())}")
    if args.print_config:
        from jaxrl_arena.config import to_dict

        print(json.dumps(to_dict(cfg), indent=2))
        return 0
    from jaxrl_arena.loop import train

    result = train(cfg, experiment="gymnax", recipe=args.recipe, fresh=args.fresh, ab=args.ab)
    reward = result.last_metrics.get("overview/reward")
    print(f"done: {result.agent_steps:,} agent-steps in {result.run_dir}"
          + (f", last reward {reward:.2f}" if reward is not None else ""))
    return 0


if __name__ == "__main__":
    cli.main_guard(main)
