"""The pure-JAX renderer draws every cell with the right sprite."""

import jax
import numpy as np

from envs.arena import from_ascii
from envs.arena.render import (
    COLOR_AGENT,
    COLOR_AGENT_FROZEN,
    COLOR_CONV,
    COLOR_EMPTY,
    COLOR_NOSE,
    COLOR_WALL,
    render,
)

ROWS = ["######", "#@m..#", "#.@_.#", "######"]
S = 8


def _cell(img, r, c):
    return img[r * S : (r + 1) * S, c * S : (c + 1) * S]


def test_render_sprites():
    state = from_ascii(ROWS)
    # agent 1 faces east and is frozen
    state = state.replace(
        agent_ori=state.agent_ori.at[1].set(3), agent_frozen=state.agent_frozen.at[1].set(5)
    )
    img = np.asarray(jax.jit(render, static_argnums=1)(state, S))
    assert img.shape == (4 * S, 6 * S, 3) and img.dtype == np.uint8
    assert (_cell(img, 0, 0) == COLOR_WALL).all()
    assert (_cell(img, 1, 3) == COLOR_EMPTY).all()
    # the mine converts at t = 0: dimmed mine colour
    assert (_cell(img, 1, 2)[0, 0] == (COLOR_CONV[0].astype(int) * 3 // 5)).all()
    assert (_cell(img, 2, 3)[0, 0] == COLOR_CONV[2]).all()  # idle altar
    a0, a1 = _cell(img, 1, 1), _cell(img, 2, 2)
    assert (a0[S - 1, 0] == COLOR_AGENT).all() and (a1[0, 0] == COLOR_AGENT_FROZEN).all()
    # noses: agent 0 faces north (top edge), agent 1 east (right edge)
    assert (a0[0, S // 2] == COLOR_NOSE).all() and not (a0[S - 1, S // 2] == COLOR_NOSE).all()
    assert (a1[S // 2, S - 1] == COLOR_NOSE).all() and not (a1[0, S // 2] == COLOR_NOSE).all()


def test_render_episode_gif(tmp_path):
    import imageio.v2 as imageio

    from envs.arena import ArenaEnv
    from envs.arena.render import render_episode_gif

    path = render_episode_gif(ArenaEnv(num_agents=6), tmp_path / "ep.gif", steps=3)
    frames = imageio.mimread(path)
    assert len(frames) == 4 and frames[0].shape[:2] == (37 * 6, 37 * 6)
