"""Train PPO on N++ levels (generated per stage, or the staged curriculum).

    python experiments/npp.py                                   # recipe npp_simplest
    python experiments/npp.py --config-override run.seed=3 ppo.lr=3e-4
    python experiments/npp.py --recipe npp_curriculum           # the staged curriculum
    python experiments/npp.py --render-episode out.gif          # render one episode (random policy or the run's checkpoint)
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxrl_arena import cli  # noqa: E402


def main() -> int:
    p = cli.parser(__doc__.strip().splitlines()[0], default_recipe="npp_simplest")
    cli.add_render_args(p, default_steps=300)
    args, cfg = cli.parse_entry(p, "npp", "experiments/npp.py")
    if args.print_config:
        cli.print_config(cfg)
        return 0
    if args.render_episode:
        path, source = render_run_episode(cfg, args.recipe, args.render_episode, args.render_steps)
        print(f"wrote {path} ({source})")
        return 0
    return cli.train_and_report(cfg, args, "npp", "overview/success_rate", "success rate")


def render_run_episode(cfg, recipe: str, out: str, steps: int) -> tuple[str, str]:
    """A GIF of one episode on a level of the config's stage (the first stage when
    ``npp.stage`` is empty), played by the run's latest checkpoint (sampling its policy) or by
    a uniform random policy when the run dir holds no checkpoint; the source says which and
    how the episode ended."""
    from envs.npp.render import render_episode_gif
    from jaxrl_arena.loop import run_dir
    from jaxrl_arena.policy_io import load_run_policy
    from jaxrl_arena.train import make_env

    run = load_run_policy(cfg, "npp", recipe)
    if run is None:
        path, ep = render_episode_gif(make_env(cfg), out, steps=steps)
        return path, (f"uniform random policy: no checkpoint in {run_dir(cfg, 'npp', recipe)}; "
                      f"{ep.summary}")
    path, ep = render_episode_gif(run.env, out, steps=steps, policy=run.act,
                                  policy_carry=run.initial_carry)
    return path, f"{run.description}; {ep.summary}"


if __name__ == "__main__":
    cli.main_guard(main)
