"""Pure-JAX rasteriser for N++ levels (jittable, vmappable).

* ``render(state, level=None, downsample=4) -> uint8[600 // ds, 1056 // ds, 3]`` (rows = y):
  tiles from the exact per-tile solid masks (``observations.TILE_MASKS``), toggle mines (red
  deadly / grey safe), exit switch (yellow until hit), exit door (dark green, bright once the
  switch is hit), locked/trap door switches (blue) and closed door segments, the ninja (white
  disc of radius 10 px). ``state`` is an ``NppState`` (its level is used) or a ``SimState``
  plus ``level``.
* ``render_indexed(state, level=None, downsample=4) -> uint8[600 // ds, 1056 // ds]``: the
  same picture as indices into ``PALETTE`` (``PALETTE[render_indexed(s)] == render(s)``), drawn
  by stamping each entity's few pixels instead of testing every pixel against every entity:
  cheap enough to render every step of an episode on device (the trainer's evaluation GIFs);
  ``tile_indices`` draws the tiles once for all of an episode's frames.
  ``ending(state, truncated)`` says how an episode ended, an index into ``ENDINGS``.
* ``global_view(state)`` -> uint8[176, 100, 1] and ``player_frame(state)`` -> uint8[84, 84, 1]:
  the grayscale visual observations with the geometry of spec §8.4 ((x, y)-major, 1/6 area
  average; 84 x 84 crop around the ninja clipped to the level and zero-padded evenly). Pixel
  values are this project's own (upstream's cairo renderer is not reproduced).
* ``save_gif(frames, path, fps)`` writes a list/array of RGB frames (host side, needs Pillow).
* ``render_episode(env, params, key, steps, policy)`` plays one episode (a policy or uniform
  random actions) and returns its frames and how it ended; ``render_episode_gif(env, path)``
  does so on a level of the config's stage and writes the GIF (``--render-episode``).

Section marks (§) cite docs/specs/npp.md.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from envs.npp import constants as C
from envs.npp.observations import TILE_MASKS

LEVEL_W, LEVEL_H = C.GRID_W * C.CELL, C.GRID_H * C.CELL   # padded level in px (1056 x 600)
BG = np.array([30, 32, 40], np.uint8)
SOLID = np.array([150, 150, 160], np.uint8)


def _split(state, level):
    sim = getattr(state, "sim", state)
    if level is None:
        level = state.level
    return sim, level


def _pixel_centres(ds: float, h: int, w: int, oy=0.0, ox=0.0):
    """Level coordinates ``(py, px)`` [h, w] of the pixel centres
    ``(ox + (j + .5) ds, oy + (i + .5) ds)``."""
    ys = oy + (jnp.arange(h, dtype=jnp.float32) + 0.5) * ds
    xs = ox + (jnp.arange(w, dtype=jnp.float32) + 0.5) * ds
    return jnp.meshgrid(ys, xs, indexing="ij")


def _solid(level, py, px):
    """Whether the level is solid at the points ``(py, px)`` (outside the level: solid)."""
    inside = (px >= 0) & (px < LEVEL_W) & (py >= 0) & (py < LEVEL_H)
    cx = jnp.clip(jnp.floor(px / C.CELL), 0, C.GRID_W - 1).astype(jnp.int32)
    cy = jnp.clip(jnp.floor(py / C.CELL), 0, C.GRID_H - 1).astype(jnp.int32)
    tid = level.tiles.astype(jnp.int32)[cx, cy]
    u = jnp.clip(jnp.floor(px - C.CELL * cx), 0, C.CELL - 1).astype(jnp.int32)
    v = jnp.clip(jnp.floor(py - C.CELL * cy), 0, C.CELL - 1).astype(jnp.int32)
    return jnp.asarray(TILE_MASKS)[tid, v, u] | ~inside


def _raster(sim, level, ds: float, h: int, w: int, oy=0.0, ox=0.0):
    """RGB float planes [h, w, 3] for pixel centres ``(ox + (j + .5) ds, oy + (i + .5) ds)``."""
    py, px = _pixel_centres(ds, h, w, oy, ox)
    solid = _solid(level, py, px)
    img = jnp.where(solid[..., None], jnp.asarray(SOLID, jnp.float32), jnp.asarray(BG, jnp.float32))

    t = level.ent_type
    e = sim.ents
    pos = e.pos.astype(jnp.float32)
    d2 = (px[..., None] - pos[:, 0]) ** 2 + (py[..., None] - pos[:, 1]) ** 2      # [h, w, E]
    mine = (t == C.T_MINE) | (t == C.T_MINE_SAFE)
    hit = sim.switch_hit

    def disc(img, mask_e, radius, colour):
        m = jnp.any(mask_e & (d2 <= jnp.maximum(radius, ds / 2) ** 2), axis=-1)
        return jnp.where(m[..., None], jnp.asarray(colour, jnp.float32), img)

    img = disc(img, mine & e.active & (e.state != 0), 3.5, (110, 110, 110))
    img = disc(img, mine & e.active & (e.state == 0), 4.0, (230, 40, 40))
    img = disc(img, (t == C.T_EXIT) & hit, 12.0, (60, 230, 90))
    img = disc(img, (t == C.T_EXIT) & ~hit, 12.0, (30, 90, 40))
    img = disc(img, (t == C.T_SWITCH) & e.active, 6.0, (250, 220, 40))
    img = disc(img, ((t == C.T_DOOR_LOCKED) | (t == C.T_DOOR_TRAP)) & e.active, 5.0, (70, 120, 250))
    # closed door segments: distance to the segment < max(2, ds / 2)
    seg = level.door_seg.astype(jnp.float32)
    is_door = ((t == C.T_DOOR_REGULAR) | (t == C.T_DOOR_LOCKED) | (t == C.T_DOOR_TRAP)) & e.door_closed
    ax, ay, bx, by = seg[:, 0], seg[:, 1], seg[:, 2], seg[:, 3]
    ddx, ddy = bx - ax, by - ay
    L2 = jnp.maximum(ddx ** 2 + ddy ** 2, 1e-6)
    uu = jnp.clip(((px[..., None] - ax) * ddx + (py[..., None] - ay) * ddy) / L2, 0, 1)
    sd2 = (px[..., None] - ax - uu * ddx) ** 2 + (py[..., None] - ay - uu * ddy) ** 2
    dm = jnp.any(is_door & (sd2 <= jnp.maximum(2.0, ds / 2) ** 2), axis=-1)
    img = jnp.where(dm[..., None], jnp.asarray((70, 120, 250), jnp.float32), img)
    nx = jnp.asarray(sim.ninja.x, jnp.float32)
    ny = jnp.asarray(sim.ninja.y, jnp.float32)
    nin = (px - nx) ** 2 + (py - ny) ** 2 <= jnp.maximum(10.0, ds / 2) ** 2
    colour = jnp.where(sim.dead, jnp.array([200, 60, 200], jnp.float32), jnp.array([245, 245, 245], jnp.float32))
    img = jnp.where(nin[..., None], colour, img)
    return img


def render(state, level=None, downsample: int = 4):
    """uint8[600 // ds, 1056 // ds, 3] RGB frame of the whole level (rows = y)."""
    sim, level = _split(state, level)
    ds = int(downsample)
    img = _raster(sim, level, float(ds), LEVEL_H // ds, LEVEL_W // ds)
    return jnp.clip(jnp.round(img), 0, 255).astype(jnp.uint8)


# ``render_indexed``'s colours: the background, then one entry per layer of ``_raster`` in its
# drawing order, so that where layers overlap the highest index is the one drawn last.
PALETTE = np.array([
    BG, SOLID,
    (110, 110, 110),   # safe toggle mine
    (230, 40, 40),     # deadly toggle mine
    (60, 230, 90),     # exit door, switch hit
    (30, 90, 40),      # exit door, switch not hit
    (250, 220, 40),    # exit switch
    (70, 120, 250),    # locked / trap door switch
    (70, 120, 250),    # closed door segment
    (245, 245, 245),   # ninja
    (200, 60, 200),    # dead ninja
], np.uint8)
(_SAFE_MINE, _MINE, _EXIT_OPEN, _EXIT_SHUT, _SWITCH, _DOOR_SWITCH, _DOOR, _NINJA,
 _NINJA_DEAD) = range(2, 11)
DOOR_HALF_LENGTH = C.CELL / 2   # a door segment is one cell edge (envs/npp/level.py)
ENDINGS = ("won", "died", "timed out", "ended")


def _stamp_pixels(cy, cx, half: int, ds: float, h: int, w: int):
    """The ``(2 half + 1)^2`` pixels around level points ``(cy, cx)`` [N]: row and column indices
    [N, S, S] (``h`` / ``w`` where off the image, for a dropping scatter) and their centres."""
    off = jnp.arange(-half, half + 1, dtype=jnp.int32)
    rows = jnp.floor(cy / ds).astype(jnp.int32)[:, None, None] + off[None, :, None]
    cols = jnp.floor(cx / ds).astype(jnp.int32)[:, None, None] + off[None, None, :]
    py = (rows.astype(jnp.float32) + 0.5) * ds
    px = (cols.astype(jnp.float32) + 0.5) * ds
    rows = jnp.where((rows >= 0) & (rows < h), rows, h)
    cols = jnp.where((cols >= 0) & (cols < w), cols, w)
    rows, cols = jnp.broadcast_arrays(rows, cols)
    return rows, cols, py, px


def tile_indices(state, level=None, downsample: int = 4):
    """uint8[600 // ds, 1056 // ds]: the tiles alone as ``PALETTE`` indices (0 BG, 1 SOLID);
    fixed through an episode, so an episode's frames can share one (``render_indexed``)."""
    _, level = _split(state, level)
    ds = int(downsample)
    py, px = _pixel_centres(float(ds), LEVEL_H // ds, LEVEL_W // ds)
    return _solid(level, py, px).astype(jnp.uint8)


def render_indexed(state, level=None, downsample: int = 4, tiles=None):
    """uint8[600 // ds, 1056 // ds] indices into ``PALETTE``: ``render``'s frame, pixel for pixel.

    Each entity, door segment and the ninja is stamped on the tile background over the few
    pixels its disc (or segment) can reach, with the same pixel-centre tests as ``_raster``;
    where stamps overlap the one ``_raster`` draws last wins (scatter-max of the layer index).
    ``tiles``: this level's ``tile_indices`` at this downsample, drawn once for a whole
    episode (they are most of the work); default: drawn here."""
    sim, level = _split(state, level)
    ds = float(int(downsample))
    h, w = LEVEL_H // int(downsample), LEVEL_W // int(downsample)
    img = tile_indices(sim, level, downsample) if tiles is None else tiles

    t = level.ent_type
    e = sim.ents
    pos = e.pos.astype(jnp.float32)
    hit = sim.switch_hit
    mine = (t == C.T_MINE) | (t == C.T_MINE_SAFE)
    door_switch = ((t == C.T_DOOR_LOCKED) | (t == C.T_DOOR_TRAP)) & e.active
    # One disc per entity at most: its layer (0: none) and radius, as _raster tests them.
    cases = (
        (mine & e.active & (e.state != 0), _SAFE_MINE, 3.5),
        (mine & e.active & (e.state == 0), _MINE, 4.0),
        ((t == C.T_EXIT) & hit, _EXIT_OPEN, 12.0),
        ((t == C.T_EXIT) & ~hit, _EXIT_SHUT, 12.0),
        ((t == C.T_SWITCH) & e.active, _SWITCH, 6.0),
        (door_switch, _DOOR_SWITCH, 5.0),
    )
    layer = jnp.select([c for c, _, _ in cases], [jnp.uint8(k) for _, k, _ in cases],
                       jnp.uint8(0))
    r2 = jnp.select([c for c, _, _ in cases],
                    [jnp.maximum(r, ds / 2) ** 2 for _, _, r in cases], 0.0)
    half = math.ceil(max(12.0, ds / 2) / ds) + 1
    rows, cols, sy, sx = _stamp_pixels(pos[:, 1], pos[:, 0], half, ds, h, w)
    d2 = (sx - pos[:, 0, None, None]) ** 2 + (sy - pos[:, 1, None, None]) ** 2
    disc = jnp.where(d2 <= r2[:, None, None], layer[:, None, None], jnp.uint8(0))
    img = img.at[rows, cols].max(disc, mode="drop")

    seg = level.door_seg.astype(jnp.float32)
    is_door = ((t == C.T_DOOR_REGULAR) | (t == C.T_DOOR_LOCKED) | (t == C.T_DOOR_TRAP)) & e.door_closed
    ax, ay, bx, by = (seg[:, i, None, None] for i in range(4))
    half = math.ceil((DOOR_HALF_LENGTH + max(2.0, ds / 2)) / ds) + 1
    rows, cols, sy, sx = _stamp_pixels((seg[:, 1] + seg[:, 3]) / 2, (seg[:, 0] + seg[:, 2]) / 2,
                                       half, ds, h, w)
    ddx, ddy = bx - ax, by - ay
    L2 = jnp.maximum(ddx ** 2 + ddy ** 2, 1e-6)
    uu = jnp.clip(((sx - ax) * ddx + (sy - ay) * ddy) / L2, 0, 1)
    sd2 = (sx - ax - uu * ddx) ** 2 + (sy - ay - uu * ddy) ** 2
    door = is_door[:, None, None] & (sd2 <= jnp.maximum(2.0, ds / 2) ** 2)
    img = img.at[rows, cols].max(jnp.where(door, jnp.uint8(_DOOR), jnp.uint8(0)), mode="drop")

    nx = jnp.asarray(sim.ninja.x, jnp.float32).reshape(1)
    ny = jnp.asarray(sim.ninja.y, jnp.float32).reshape(1)
    half = math.ceil(max(10.0, ds / 2) / ds) + 1
    rows, cols, sy, sx = _stamp_pixels(ny, nx, half, ds, h, w)
    nin = (sx - nx[:, None, None]) ** 2 + (sy - ny[:, None, None]) ** 2 <= jnp.maximum(10.0, ds / 2) ** 2
    colour = jnp.where(sim.dead, jnp.uint8(_NINJA_DEAD), jnp.uint8(_NINJA))
    return img.at[rows, cols].max(jnp.where(nin, colour, jnp.uint8(0)), mode="drop")


def ending(state, truncated):
    """int32 index into ``ENDINGS`` of how an episode that ended in ``state`` ended."""
    sim = getattr(state, "sim", state)
    return jnp.select([sim.won, sim.dead, jnp.any(truncated)], [0, 1, 2], 3).astype(jnp.int32)


def _gray(img):
    return img @ jnp.array([0.299, 0.587, 0.114], jnp.float32)


def global_view(state, level=None):
    """uint8[176, 100, 1]: the full level at 1/6 scale (area average of 6 x 6 px), (x, y)-major."""
    sim, level = _split(state, level)
    # 3 x 3 supersampling per 6 px output pixel approximates the area average
    img = _gray(_raster(sim, level, 2.0, LEVEL_H // 2, LEVEL_W // 2))
    img = img.reshape(100, 3, 176, 3).mean((1, 3))
    return jnp.round(img).astype(jnp.uint8).T[..., None]


def player_frame(state, level=None):
    """uint8[84, 84, 1]: the 84 x 84 px crop around the ninja ((x, y)-major), clipped to the level
    and zero-padded evenly (floor on the near side), spec §8.4."""
    sim, level = _split(state, level)
    x = jnp.asarray(sim.ninja.x, jnp.float32)
    y = jnp.asarray(sim.ninja.y, jnp.float32)
    x0 = jnp.floor(x - 42)
    y0 = jnp.floor(y - 42)
    cx0, cx1 = jnp.clip(x0, 0, LEVEL_W), jnp.clip(x0 + 84, 0, LEVEL_W)
    cy0, cy1 = jnp.clip(y0, 0, LEVEL_H), jnp.clip(y0 + 84, 0, LEVEL_H)
    wx, wy = cx1 - cx0, cy1 - cy0
    padx, pady = jnp.floor((84 - wx) / 2), jnp.floor((84 - wy) / 2)
    # output pixel (i = x, j = y) shows level pixel (cx0 + i - padx, cy0 + j - pady) if in the crop
    img = _gray(_raster(sim, level, 1.0, 84, 84, oy=cy0 - pady, ox=cx0 - padx))   # [y, x]
    ii = jnp.arange(84, dtype=jnp.float32)
    okx = (ii >= padx) & (ii < padx + wx)
    oky = (ii >= pady) & (ii < pady + wy)
    img = jnp.where(oky[:, None] & okx[None, :], img, 0.0)
    return jnp.round(img).astype(jnp.uint8).T[..., None]


def save_gif(frames, path, fps: int = 15, hold_last: float = 0.0):
    """Write RGB ``frames`` as a looping GIF; the last frame stays ``hold_last`` extra seconds."""
    from PIL import Image

    frames = [np.asarray(f) for f in frames]
    ims = [Image.fromarray(f) for f in frames]
    duration = [int(1000 / fps)] * len(ims)
    duration[-1] += int(1000 * hold_last)
    ims[0].save(path, save_all=True, append_images=ims[1:], duration=duration, loop=0)


# ---------------------------------------------------------------------- episodes -> GIFs
class EpisodeRender(NamedTuple):
    frames: np.ndarray  # uint8[n + 1, H, W, 3]: the reset state, then one frame per agent step
    outcome: str  # "won", "died", "timed out" (frame limit) or "running" (``steps`` reached)
    steps: int  # agent steps played (n)
    max_frames: int

    @property
    def summary(self) -> str:
        if self.outcome == "running":
            return f"still running after {self.steps} steps"
        limit = f" (frame limit {self.max_frames})" if self.outcome == "timed out" else ""
        return f"{self.outcome} at step {self.steps}{limit}"


def render_episode(env, params, key, steps: int, policy=None, policy_carry=None,
                   downsample: int = 2) -> EpisodeRender:
    """Play one episode of ``env`` (an ``NppEnv``) under ``params`` for at most ``steps`` agent
    steps and render every step (one frame per agent step, i.e. per ``frame_skip`` frames).

    ``policy(key, obs) -> int32[1]`` picks the actions; default: uniform random. A recurrent
    policy passes its initial ``policy_carry`` and is called as
    ``policy(key, obs, carry) -> (int32[1], carry)`` (``jaxrl_arena.policy_io``). One jitted
    scan; the steps after the episode ends are neither simulated nor rendered.
    """
    n_actions = env.action_space(params).n
    if policy is None:

        def policy(k, obs):
            return jax.random.randint(k, (env.num_agents,), 0, n_actions, dtype=jnp.int32)

    ds = int(downsample)
    blank = jnp.zeros((LEVEL_H // ds, LEVEL_W // ds, 3), jnp.uint8)

    def run(key, obs, state, params, carry):
        def body(c, k):
            obs, state, pc, done = c

            def live(_):
                k_act, k_step = jax.random.split(k)
                if policy_carry is None:
                    a, pc2 = policy(k_act, obs), pc
                else:
                    a, pc2 = policy(k_act, obs, pc)
                obs2, s2, _, te, tr, _ = env.step_env(k_step, state, a, params)
                flags = jnp.stack([(te[0] | tr[0]).astype(jnp.int32), ending(s2, tr)])
                return (obs2, s2, pc2), flags, render(s2, downsample=ds)

            def idle(_):
                return (obs, state, pc), jnp.zeros(2, jnp.int32), blank

            (obs, state, pc), flags, frame = jax.lax.cond(done, idle, live, None)
            return (obs, state, pc, done | (flags[0] > 0)), (frame, flags)

        _, (frames, flags) = jax.lax.scan(body, (obs, state, carry, jnp.array(False)),
                                          jax.random.split(key, steps))
        return render(state, downsample=ds), frames, flags

    # The reset (level generation) is its own program: the same for every policy, so the
    # persistent compilation cache serves it across runs.
    key, k_reset = jax.random.split(key)
    obs, state = jax.jit(env.reset_env)(k_reset, params)
    first, frames, flags = jax.device_get(jax.jit(run)(key, obs, state, params, policy_carry))
    ends = np.flatnonzero(flags[:, 0])
    if ends.size:
        i = int(ends[0])
        outcome = ENDINGS[int(flags[i, 1])]
        n = i + 1
    else:
        outcome, n = "running", int(steps)
    frames = np.concatenate([np.asarray(first)[None], np.asarray(frames[:n])], axis=0)
    return EpisodeRender(frames, outcome, n, int(params.max_frames))


def caption(frame, text: str):
    """``frame`` with ``text`` drawn in its top-left corner on a dark box (host side)."""
    from PIL import Image, ImageDraw, ImageFont

    im = Image.fromarray(np.asarray(frame))
    draw = ImageDraw.Draw(im)
    try:
        font = ImageFont.load_default(size=max(10, im.height // 18))
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        font = ImageFont.load_default()
    x0, y0, x1, y1 = draw.textbbox((6, 4), text, font=font)
    draw.rectangle((x0 - 4, y0 - 3, x1 + 4, y1 + 3), fill=(0, 0, 0))
    draw.text((6, 4), text, fill=(255, 255, 255), font=font)
    return np.asarray(im)


def episode_params(env):
    """The params an episode is rendered under: the env's first named task (its curriculum's
    first task: the config's ``env.stage``, or the first stage when it is empty)."""
    return next(iter(env.named_tasks().values()))


def render_episode_gif(env, path, steps: int = 300, policy=None, policy_carry=None,
                       key=None, seed: int = 0, params=None, downsample: int = 2, fps: int = 15,
                       hold_last: float = 1.0) -> tuple[str, EpisodeRender]:
    """Write a GIF of one N++ episode (see ``render_episode``) of ``env`` (an ``NppEnv``) on a
    level generated by its reset under ``params`` (default ``episode_params``: its first named
    stage). The last frame is captioned with how the episode ended. Returns
    ``(path, EpisodeRender)``.

    At frame skip 4 an agent step is 4 frames of the 60 fps game: ``fps=15`` is real time.
    """
    params = episode_params(env) if params is None else params
    key = jax.random.PRNGKey(seed) if key is None else key
    ep = render_episode(env, params, key, int(steps), policy, policy_carry, downsample)
    frames = list(ep.frames)
    frames[-1] = caption(frames[-1], ep.summary)
    save_gif(frames, path, fps=fps, hold_last=hold_last)
    return str(path), ep
