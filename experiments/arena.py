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
        cli.print_config(cfg)
        return 0
    if args.render_episode:
        path, source = render_run_episode(cfg, args.recipe, args.render_episode, args.render_steps)
        print(f"wrote {path} ({source})")
        return 0
    return cli.train_and_report(cfg, args, "arena", "env_agent/heart.get",
                                "heart.get per agent per episode")


def render_run_episode(cfg, recipe: str, out: str, steps: int) -> tuple[str, str]:
    """A GIF of one episode played by the run's latest checkpoint (sampling its policy), or by
    a uniform random policy when the run dir holds no checkpoint."""
    import jax
    import jax.numpy as jnp

    from envs.arena.render import render_episode_gif
    from jaxrl_arena import config as config_lib
    from jaxrl_arena.checkpoint import Checkpointer
    from jaxrl_arena.loop import run_dir
    from jaxrl_arena.train import make_train

    directory = run_dir(cfg, "arena", recipe)
    checkpoints = Checkpointer(directory / "checkpoints")
    if checkpoints.latest_step() is None or not (directory / "config.json").exists():
        return render_episode_gif(cfg, out, steps=steps), "uniform random policy: no checkpoint in " + str(directory)
    # Rebuild the run exactly as saved (resolved num_envs etc.) to restore its state.
    saved = json.loads((directory / "config.json").read_text())
    saved.pop("_resolved", None)
    run_cfg = config_lib.from_dict(saved)
    program = make_train(run_cfg, devices=jax.devices()[:1])
    restored = checkpoints.restore(jax.eval_shape(program.init))
    state, _, step = restored
    params = jax.tree.map(lambda x: x[0], state.params)  # the first run (seed)
    policy = program.policy
    A = program.env.num_agents

    def act(key, obs, carry):
        carry, logits, _ = policy.apply(params, obs, carry, jnp.zeros(A, bool))
        return jax.random.categorical(key, logits).astype(jnp.int32), carry

    path = render_episode_gif(run_cfg, out, steps=steps, policy=act,
                              policy_carry=policy.initial_carry(A))
    return path, f"policy of {directory} at update {step}"


if __name__ == "__main__":
    cli.main_guard(main)
