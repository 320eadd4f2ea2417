"""Train PPO on the Era-B MettaGrid arena (24 agents, converters, combat).

    python experiments/arena.py                                   # recipe arena_basic_easy_shaped
    python experiments/arena.py --config-override run.seed=3 ppo.lr=3e-4
    python experiments/arena.py --recipe arena_ff                 # feed-forward CNN policy
    python experiments/arena.py --render-episode out.gif          # render one episode (random policy or the run's checkpoint)
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxrl_arena import cli  # noqa: E402


def main() -> int:
    p = cli.parser(__doc__.strip().splitlines()[0], default_recipe="arena_basic_easy_shaped")
    p.add_argument("--render-episode", metavar="OUT.gif", default=None,
                   help="write a GIF of one episode instead of training")
    p.add_argument("--render-steps", type=int, default=200, help="steps to render")
    args = p.parse_args()
    cfg = cli.build_config(args)
    if cfg.env.name != "arena":
        raise cli.ConfigError(f"experiments/arena.py trains env.name=arena, got {cfg.env.name!r}")
    if args.print_config:
        from jaxrl_arena.config import to_dict

        print(json.dumps(to_dict(cfg), indent=2))
        return 0
    if args.render_episode:
        from envs.arena.render import render_episode_gif

        path = render_episode_gif(cfg, args.render_episode, steps=args.render_steps)
        print(f"wrote {path}")
        return 0
    from jaxrl_arena.loop import train

    result = train(cfg, experiment="arena", recipe=args.recipe, fresh=args.fresh, ab=args.ab)
    hearts = result.last_metrics.get("env_agent/heart.get")
    print(f"done: {result.agent_steps:,} agent-steps in {result.run_dir}"
          + (f", heart.get per agent per episode {hearts:.3f}" if hearts is not None else ""))
    return 0


if __name__ == "__main__":
    cli.main_guard(main)
