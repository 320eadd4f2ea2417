"""Watch a run: ``python -m jaxrl_arena.play RUN [--out FILE.gif|.mp4] [--steps N]``.

Plays one episode with the latest checkpoint's policy of the run directory ``RUN`` (its first
seed, sampling its actions) and writes it as a GIF (or an MP4 when imageio's ffmpeg plugin is
installed), for every env with a renderer (the arena, N++). The policy comes from
``policy_io.load_run_policy`` and the episode from the env package's ``render_episode_gif``:
the same path as the entry points' ``--render-episode``. Mistakes (no run directory, no
checkpoint yet, an env without a renderer, another output format) are one line on stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

from jaxrl_arena import config as config_lib
from jaxrl_arena.config import Config, ConfigError

FORMATS = (".gif", ".mp4")


@dataclasses.dataclass(frozen=True)
class Renderer:
    """An env package's episode writer: ``write(env, path, steps, policy, carry) -> summary``
    ("" or how the episode ended), and the entry point's default number of steps."""

    write: Callable[..., str]
    default_steps: int


def _write_arena(env, path, steps, policy, carry) -> str:
    from envs.arena.render import render_episode_gif

    render_episode_gif(env, path, steps=steps, policy=policy, policy_carry=carry)
    return ""


def _write_npp(env, path, steps, policy, carry) -> str:
    from envs.npp.render import render_episode_gif

    _, episode = render_episode_gif(env, path, steps=steps, policy=policy, policy_carry=carry)
    return episode.summary


# The envs with a renderer, by ``env.name`` (as experiments/arena.py and npp.py render them).
RENDERERS = {"arena": Renderer(_write_arena, 200), "npp": Renderer(_write_npp, 300)}


def run_config(run: Path) -> Config:
    """The saved config of a run directory, pointed at that directory."""
    path = run / "config.json"
    if not path.is_file():
        raise ConfigError(f"{run} has no config.json: not a run directory (runs/<name>/ of a "
                          "training run)")
    cfg = config_lib.from_dict(json.loads(path.read_text()))
    return config_lib.replace(cfg, "run.dir", str(run))


def play(run: str | Path, out: str | Path | None = None, steps: int | None = None
         ) -> tuple[Path, str]:
    """Write one episode of ``run``'s latest policy to ``out`` (default ``RUN/play.gif``);
    returns ``(path, what played and how it ended)``."""
    from jaxrl_arena.policy_io import load_run_policy

    run = Path(run)
    if not run.is_dir():
        raise ConfigError(f"{run} is not a directory; give a run directory (runs/<name>/)")
    out = Path(out) if out is not None else run / "play.gif"
    if out.suffix.lower() not in FORMATS:
        raise ConfigError(f"--out {out}: unknown format {out.suffix or '(none)'}; "
                          f"allowed: {', '.join(FORMATS)}")
    if steps is not None and steps < 1:
        raise ConfigError(f"--steps must be >= 1, got {steps}")
    cfg = run_config(run)
    renderer = RENDERERS.get(cfg.env.name)
    if renderer is None:
        raise ConfigError(f"{run} is a run of env {cfg.env.name!r}, which has no renderer; "
                          f"envs with one: {', '.join(RENDERERS)}")
    # run.dir names the directory, so the experiment and recipe labels of a run name are unused.
    policy = load_run_policy(cfg, cfg.env.name, "play")
    if policy is None:
        raise ConfigError(f"{run} holds no checkpoint yet; train it (or wait for its first "
                          "checkpoint) and play again")
    steps = renderer.default_steps if steps is None else steps
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".gif":
        ending = renderer.write(policy.env, out, steps, policy.act, policy.initial_carry)
    else:
        with tempfile.TemporaryDirectory() as scratch:
            gif = Path(scratch) / "episode.gif"
            ending = renderer.write(policy.env, gif, steps, policy.act, policy.initial_carry)
            gif_to_mp4(gif, out)
    return out, policy.description + (f"; {ending}" if ending else "")


def gif_to_mp4(gif: Path, mp4: Path) -> None:
    """Re-encode the renderer's GIF as an MP4 (imageio's ffmpeg plugin; even frame sizes)."""
    import imageio.v2 as imageio
    import numpy as np

    frames = [np.asarray(f)[..., :3] for f in imageio.mimread(gif)]
    h, w = (d - d % 2 for d in frames[0].shape[:2])
    try:
        writer = imageio.get_writer(mp4, fps=10, macro_block_size=1)
    except (ImportError, ValueError, RuntimeError) as err:
        raise ConfigError(f"--out {mp4}: writing MP4 needs imageio's ffmpeg plugin "
                          f"(pip install 'jaxrl_arena[video]', or imageio-ffmpeg) "
                          f"({type(err).__name__}); .gif needs "
                          "nothing more") from None
    with writer:
        for frame in frames:
            writer.append_data(frame[:h, :w])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m jaxrl_arena.play",
                                description="Write one episode of a run's latest policy as a "
                                            "GIF or MP4 (envs with a renderer: "
                                            f"{', '.join(RENDERERS)}).")
    p.add_argument("run", metavar="RUN", help="a run directory (runs/<name>/)")
    p.add_argument("--out", default=None, metavar="FILE.gif|FILE.mp4",
                   help="where to write the episode (default: RUN/play.gif)")
    p.add_argument("--steps", type=int, default=None,
                   help="agent steps at most (the episode may end sooner; default: "
                        + ", ".join(f"{n} {r.default_steps}" for n, r in RENDERERS.items()) + ")")
    args = p.parse_args(argv)
    path, source = play(args.run, args.out, args.steps)
    print(f"wrote {path} ({source})")
    return 0


if __name__ == "__main__":
    from jaxrl_arena.cli import main_guard

    main_guard(main)
