"""Train PPO on the Era-B MettaGrid arena (24 agents, converters, combat).

    python experiments/arena.py                                   # the quickstart for this device
    python experiments/arena.py --recipe arena_basic_easy_shaped  # Metta's LSTM recipe
    python experiments/arena.py --config-override run.seed=3 ppo.lr=3e-4
    python experiments/arena.py --recipe arena_ff                 # feed-forward CNN policy
    python experiments/arena.py --config-override arena.combat=false   # attacks cost 100 lasers
    python experiments/arena.py --render-episode out.gif          # render one episode (random policy or the run's checkpoint)
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxrl_arena import cli  # noqa: E402


def quickstart_recipe() -> str:
    """Without --recipe: a run that shows learning in minutes on this machine's device
    (``arena_quickstart_gpu`` or ``arena_quickstart_cpu``; the banner says what it does)."""
    import jax

    return "arena_quickstart_cpu" if jax.default_backend() == "cpu" else "arena_quickstart_gpu"


def main() -> int:
    p = cli.parser(__doc__.strip().splitlines()[0], default_recipe=quickstart_recipe())
    cli.add_render_args(p, default_steps=200)
    args, cfg = cli.parse_entry(p, "arena", "experiments/arena.py")
    if args.print_config:
        cli.print_config(cfg)
        return 0
    if args.render_episode:
        path, source = render_run_episode(cfg, args.recipe, args.render_episode, args.render_steps)
        print(f"wrote {path} ({source})")
        return 0
    return cli.train_and_report(cfg, args, "arena", "env_agent/heart.get",
                                "heart.get per agent per episode",
                                trend=("overview/reward", "reward per agent per episode"))


def render_run_episode(cfg, recipe: str, out: str, steps: int) -> tuple[str, str]:
    """A GIF of one episode played by the run's latest checkpoint (sampling its policy), or by
    a uniform random policy when the run dir holds no checkpoint."""
    from envs.arena.render import render_episode_gif
    from jaxrl_arena.loop import run_dir
    from jaxrl_arena.policy_io import load_run_policy
    from jaxrl_arena.train import make_env

    run = load_run_policy(cfg, "arena", recipe)
    if run is None:
        return (render_episode_gif(make_env(cfg), out, steps=steps),
                f"uniform random policy: no checkpoint in {run_dir(cfg, 'arena', recipe)}")
    path = render_episode_gif(run.env, out, steps=steps, policy=run.act,
                              policy_carry=run.initial_carry)
    return path, run.description


if __name__ == "__main__":
    cli.main_guard(main)
