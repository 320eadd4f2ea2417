"""Observations of the N++ environment (spec §8), computed after a step's last frame.

* ``game_state(sim, level)`` -> float32[26], exactly the table of spec §8.1 (including the
  reference's constant dims 14 = -1, 16 = +1, 17 = 0, kept so checkpoints/BC stats line up).
* ``reachability(sim, level, labels)`` -> float32[8], spec §8.2 with the reference's one-cell
  offset **fixed**: the reference flood-fills the *inner* 42 x 23 tile array with centres
  ``24 col + 12`` but looks the ninja up in *padded* pixels, so its fill is shifted one cell up
  and left. Here the fill runs over the padded 44 x 25 grid (border = solid) and every point is
  looked up with ``floor(p / 24)`` in that same grid, so the ninja's own cell is the start.
  Components are computed once per level at reset (``levels.component_labels``), so each step
  only indexes them.
* ``entity_positions`` -> float32[6] (spec §8.3).
* ``grid(...)`` -> uint8[C, 25, 44] (channels first): an egocentric local grid at 12 px
  resolution (25 x 44 half-cells = 300 x 528 px around the ninja) and the coarse global grid
  (the whole level, one pixel per 24 px cell), plus one channel carrying the 34 state features
  quantised to uint8 so a CNN gets velocity/contacts too (see ``GRID_CHANNELS``).
* ``action_mask`` -> bool[6].

Section marks (§) cite docs/specs/npp.md.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from envs.npp import constants as C
from envs.npp.levels import cell_of_px, exit_rows

DIAG = 1214.55            # sqrt(1056^2 + 600^2), spec §8.1
GAME_STATE_DIM = 26
REACH_DIM = 8
ENTITY_POS_DIM = 6

GRID_H, GRID_W = 25, 44
GRID_CHANNELS = (
    "local_solid",        # 0: solid fraction of each 12 px half-cell (0..255); outside the level = 255
    "local_mine",         # 1: deadly toggle mines 255, safe/toggling 96
    "local_goal",         # 2: exit switch 255 until hit; exit door 128 before, 255 after the switch
    "local_door",         # 3: closed doors (segment cells) 255, locked/trap door switches 160
    "global_solid",       # 4: solid fraction of each 24 px cell
    "global_mine",        # 5
    "global_goal",        # 6
    "global_ninja",       # 7: 255 at the ninja's cell
    "global_visited",     # 8: cells visited this episode (exploration grid) 255
    "state",              # 9: row-major first 34 entries = round((feature + 1) * 127.5) of
                          #    game_state (26) + reachability (8, in [0, 1] -> 2x - 1 first)
)
NUM_GRID_CHANNELS = len(GRID_CHANNELS)

# ----------------------------------------------------------------------------- tile occupancy


def _solid(tid, u, v):
    """Is tile-local point (u, v) (px, x right / y down, in [0, 24)) inside tile ``tid``'s solid?"""
    if tid == 0 or tid >= 34:
        return False
    if tid == 1:
        return True
    table = {
        2: v < 12, 3: u >= 12, 4: v >= 12, 5: u < 12,
        6: u + v < 24, 7: u > v, 8: u + v > 24, 9: v > u,
        10: u * u + v * v < 576, 11: (u - 24) ** 2 + v * v < 576, 12: (u - 24) ** 2 + (v - 24) ** 2 < 576,
        13: u * u + (v - 24) ** 2 < 576,
        14: (u - 24) ** 2 + (v - 24) ** 2 > 576, 15: u * u + (v - 24) ** 2 > 576, 16: u * u + v * v > 576,
        17: (u - 24) ** 2 + v * v > 576,
        18: v < 12 - u / 2, 19: v < u / 2, 20: v > 24 - u / 2, 21: v > 12 + u / 2,
        22: v < 24 - u / 2, 23: v < 12 + u / 2, 24: v > 12 - u / 2, 25: v > u / 2,
        26: u < 12 - v / 2, 27: u > 12 + v / 2, 28: u > 24 - v / 2, 29: u < v / 2,
        30: u < 24 - v / 2, 31: u > v / 2, 32: u > 12 - v / 2, 33: u < 12 + v / 2,
    }
    return bool(table[tid])


def _tile_masks():
    m = np.zeros((C.NUM_TILE_IDS, 24, 24), bool)   # [tid, v(row), u(col)]
    for t in range(C.NUM_TILE_IDS):
        for v in range(24):
            for u in range(24):
                m[t, v, u] = _solid(t, u + 0.5, v + 0.5)
    return m


TILE_MASKS = _tile_masks()                                          # bool[38, 24, 24] (rows = y)
TILE_OCC_HALF = (TILE_MASKS.reshape(C.NUM_TILE_IDS, 2, 12, 2, 12).mean((2, 4)) * 255).round().astype(np.uint8)
TILE_OCC = (TILE_MASKS.mean((1, 2)) * 255).round().astype(np.uint8)   # [38]


def static_grids(level):
    """Per-level static planes (computed at reset): half-cell occupancy uint8[50, 88] (rows y)
    and cell occupancy uint8[25, 44]."""
    t = level.tiles.astype(jnp.int32).T                                # [25, 44] rows = y
    half = jnp.asarray(TILE_OCC_HALF)[t]                               # [25, 44, 2, 2] (vy, ux)
    half = half.transpose(0, 2, 1, 3).reshape(2 * C.GRID_H, 2 * C.GRID_W)
    return half, jnp.asarray(TILE_OCC)[t]


# ----------------------------------------------------------------------------- vectors


def _dist(ax, ay, bx, by):
    return jnp.sqrt((ax - bx) ** 2 + (ay - by) ** 2)


def goal_positions(sim, level):
    sw, door = exit_rows(level)
    return level.ent_pos[sw].astype(jnp.float32), level.ent_pos[door].astype(jnp.float32)


def game_state(sim, level):
    n = sim.ninja
    f = lambda x: jnp.asarray(x, jnp.float32)
    vx, vy = f(n.vx), f(n.vy)
    speed = jnp.sqrt(vx * vx + vy * vy)
    safe = jnp.maximum(speed, 1e-6)
    dirx = jnp.where(speed < 1e-6, 0.0, vx / safe)
    diry = jnp.where(speed < 1e-6, 0.0, vy / safe)
    st = n.state
    pm = lambda b: jnp.where(b, 1.0, -1.0)
    buf = lambda b: jnp.maximum(f(b), 0.0) / 5.0 * 2.0 - 1.0
    x, y = f(n.x), f(n.y)
    t = level.ent_type
    mines = ((t == C.T_MINE) | (t == C.T_MINE_SAFE)) & sim.ents.active & (sim.ents.state == 0)
    ep = sim.ents.pos.astype(jnp.float32)
    dm = jnp.where(mines, _dist(ep[:, 0], ep[:, 1], x, y), jnp.inf)
    dmin = jnp.min(dm)
    mine_feat = jnp.where(jnp.isfinite(dmin), dmin / DIAG * 2 - 1, 1.0)
    sw_pos, _ = goal_positions(sim, level)
    d_sw = _dist(sw_pos[0], sw_pos[1], x, y)
    hit = sim.switch_hit
    feats = [
        jnp.minimum(speed / (2 * 3.333), 1.0) * 2 - 1, dirx, diry,
        pm((st == 0) | (st == 1) | (st == 2)), pm((st == 3) | (st == 4)), pm(st == 5), pm(st >= 6),
        pm(n.airborn), f(n.hor_input), pm(n.jump_input > 0),
        buf(n.jump_buffer), buf(n.floor_buffer), buf(n.wall_buffer),
        jnp.minimum(f(n.floor_count), 1.0) * 2 - 1,
        -1.0,                                        # 14: wall contact (always -1 in the reference)
        jnp.minimum(f(n.ceil_count), 1.0) * 2 - 1,
        jnp.sqrt(f(n.floor_nx) ** 2 + f(n.floor_ny) ** 2) * 2 - 1,
        0.0,                                         # 17: wall normal (always 0 in the reference)
        f(n.floor_ny),
        jnp.clip((vx - f(n.vx_old)) / 3.333, -1, 1), jnp.clip((vy - f(n.vy_old)) / 3.333, -1, 1),
        mine_feat, d_sw / DIAG * 2 - 1,
        f(n.jump_duration) / 45 * 2 - 1,
        jnp.where(hit, 1.0, (1 - d_sw / DIAG) * 2 - 1),
        pm(hit),
    ]
    return jnp.stack([jnp.asarray(v, jnp.float32) for v in feats])


def reach_static(level, labels):
    """Per-level static parts of the reachability features (computed at reset)."""
    big = 1 << 20
    flat = labels.reshape(-1)
    sizes = jnp.zeros(flat.shape[0] + 1, jnp.int32).at[jnp.where(flat < big, flat, flat.shape[0])].add(1)
    ex, ey = cell_of_px(level.ent_pos.astype(jnp.float32))
    return dict(comp_size=sizes[:-1], ent_label=labels[ex, ey])


def _start_label(sim, labels):
    """The component of the ninja's cell, or of the nearest empty cell centre (spec §8.2)."""
    x = jnp.asarray(sim.ninja.x, jnp.float32)
    y = jnp.asarray(sim.ninja.y, jnp.float32)
    cx, cy = cell_of_px(jnp.stack([x, y]))
    own = labels[cx, cy]
    gx, gy = np.meshgrid(np.arange(C.GRID_W) * 24 + 12, np.arange(C.GRID_H) * 24 + 12, indexing="ij")
    d = jnp.where(labels < (1 << 20), (gx - x) ** 2 + (gy - y) ** 2, jnp.inf)
    near = labels.reshape(-1)[jnp.argmin(d.reshape(-1))]
    return jnp.where(own < (1 << 20), own, near)


def reachability(sim, level, labels, rstat):
    lab = _start_label(sim, labels)
    valid = lab < (1 << 20)
    n_reach = jnp.where(valid, rstat["comp_size"][jnp.clip(lab, 0, labels.size - 1)], 0).astype(jnp.float32)
    t = level.ent_type
    present = t > 0
    reach_e = present & (rstat["ent_label"] == lab) & valid
    x = jnp.asarray(sim.ninja.x, jnp.float32)
    y = jnp.asarray(sim.ninja.y, jnp.float32)
    ep = level.ent_pos.astype(jnp.float32)
    d = _dist(ep[:, 0], ep[:, 1], x, y)
    is_sw = (t == C.T_DOOR_LOCKED) | (t == C.T_DOOR_TRAP)
    is_exit = (t == C.T_EXIT) | (t == C.T_SWITCH)
    hazard = (t == 1) | (t == 14) | (t == 20) | (t == 25) | (t == 26)
    dsw = jnp.min(jnp.where(is_sw, d, 1000.0))
    dex = jnp.min(jnp.where(is_exit, d, 1000.0))
    f3 = jnp.clip(jnp.sum(is_sw & reach_e) / 5.0, 0, 1)
    f6 = jnp.any(is_exit & reach_e).astype(jnp.float32)
    return jnp.stack([
        jnp.clip(n_reach / 1100.0, 0, 1), jnp.clip(dsw / 1000.0, 0, 1), jnp.clip(dex / 1000.0, 0, 1), f3,
        jnp.clip(jnp.sum(hazard & reach_e) / 10.0, 0, 1), jnp.minimum(n_reach / 100.0, 1.0), f6,
        ((f3 > 0) & (f6 > 0)).astype(jnp.float32)]).astype(jnp.float32)


def entity_positions(sim, level):
    sw, door = goal_positions(sim, level)
    x = jnp.asarray(sim.ninja.x, jnp.float32)
    y = jnp.asarray(sim.ninja.y, jnp.float32)
    return jnp.stack([x / 1056, y / 600, sw[0] / 1056, sw[1] / 600, door[0] / 1056, door[1] / 600])


# ----------------------------------------------------------------------------- grids


def _entity_marks(sim, level, rows, cols, scale, oy, ox):
    """Where entities mark a [rows, cols] grid at ``scale`` px per pixel with origin (ox, oy):
    ``(iy, ix, value)`` per plane (mines, goals, doors), uint8 values, 0 = no mark; marks outside
    the grid point at the spare row/column ``(rows, cols)`` (see :func:`_scatter_planes`)."""
    t = level.ent_type
    e = sim.ents
    pos = e.pos.astype(jnp.float32)
    iy = jnp.floor((pos[:, 1] - oy) / scale).astype(jnp.int32)
    ix = jnp.floor((pos[:, 0] - ox) / scale).astype(jnp.int32)
    inside = (iy >= 0) & (iy < rows) & (ix >= 0) & (ix < cols)
    iy = jnp.where(inside, iy, rows)
    ix = jnp.where(inside, ix, cols)
    mine = (t == C.T_MINE) | (t == C.T_MINE_SAFE)
    mine_v = jnp.where(mine & e.active, jnp.where(e.state == 0, 255, 96), 0)
    goal_v = jnp.where((t == C.T_SWITCH) & e.active, 255,
                       jnp.where(t == C.T_EXIT, jnp.where(sim.switch_hit, 255, 128), 0))
    door_sw = ((t == C.T_DOOR_LOCKED) | (t == C.T_DOOR_TRAP)) & e.active
    door_v = jnp.where(door_sw, 160, 0)
    # closed door segments mark the door plane too (at the segment's centre)
    dseg = level.door_seg.astype(jnp.float32)
    is_door = (t == C.T_DOOR_REGULAR) | (t == C.T_DOOR_LOCKED) | (t == C.T_DOOR_TRAP)
    cxd = (dseg[:, 0] + dseg[:, 2]) / 2
    cyd = (dseg[:, 1] + dseg[:, 3]) / 2
    dy_ = jnp.floor((cyd - oy) / scale).astype(jnp.int32)
    dx_ = jnp.floor((cxd - ox) / scale).astype(jnp.int32)
    ok = is_door & e.door_closed & (dy_ >= 0) & (dy_ < rows) & (dx_ >= 0) & (dx_ < cols)
    u8 = lambda v: v.astype(jnp.uint8)
    return [(iy, ix, u8(mine_v)), (iy, ix, u8(goal_v)),
            (jnp.concatenate([iy, jnp.where(ok, dy_, rows)]), jnp.concatenate([ix, jnp.where(ok, dx_, cols)]),
             jnp.concatenate([u8(door_v), u8(jnp.where(ok, 255, 0))]))]


def _scatter_planes(marks, rows, cols):
    """uint8[len(marks), rows, cols]: each plane the max of its marks (0 where none), all planes
    in one uint8 scatter rather than one int32 scatter per plane (each zero-filled, then read
    back at 4 bytes per pixel): ~3% of an `npp_grid` update on the H100 (docs/BENCHMARKS.md)."""
    plane = jnp.concatenate([jnp.full(iy.shape, p, jnp.int32) for p, (iy, _, _) in enumerate(marks)])
    iy = jnp.concatenate([m[0] for m in marks])
    ix = jnp.concatenate([m[1] for m in marks])
    v = jnp.concatenate([m[2] for m in marks])
    planes = jnp.zeros((len(marks), rows + 1, cols + 1), jnp.uint8).at[plane, iy, ix].max(v)
    return planes[:, :rows, :cols]


def _entity_planes(sim, level, rows, cols, scale, oy, ox):
    """The entity planes (mines, goals, doors) of a [rows, cols] grid, uint8 (see ``GRID_CHANNELS``)."""
    return list(_scatter_planes(_entity_marks(sim, level, rows, cols, scale, oy, ox), rows, cols))


def state_plane(vec):
    """Features in [-1, 1] -> uint8 in the first ``len(vec)`` row-major pixels of a [25, 44] plane."""
    q = jnp.round((jnp.clip(vec, -1, 1) + 1) * 127.5).astype(jnp.uint8)
    return jnp.concatenate([q, jnp.zeros(GRID_H * GRID_W - vec.shape[0], jnp.uint8)]).reshape(GRID_H, GRID_W)


def grid(sim, level, half_occ, cell_occ, visited, state_vec):
    """uint8[10, 25, 44] (see ``GRID_CHANNELS``)."""
    x = jnp.asarray(sim.ninja.x, jnp.float32)
    y = jnp.asarray(sim.ninja.y, jnp.float32)
    hx = jnp.floor(x / 12).astype(jnp.int32)
    hy = jnp.floor(y / 12).astype(jnp.int32)
    # local window: rows hy-12 .. hy+12, cols hx-22 .. hx+21 of the half-cell grid, solid outside
    # (a masked gather: padding the grid first would write a 4x larger copy per env and step)
    rows = hy - 12 + jnp.arange(GRID_H)
    cols = hx - 22 + jnp.arange(GRID_W)
    inside = ((rows >= 0) & (rows < half_occ.shape[0]))[:, None] & ((cols >= 0) & (cols < half_occ.shape[1]))[None, :]
    local_solid = jnp.where(inside, half_occ[jnp.clip(rows, 0, half_occ.shape[0] - 1)[:, None],
                                             jnp.clip(cols, 0, half_occ.shape[1] - 1)[None, :]], jnp.uint8(255))
    oy = (hy - 12).astype(jnp.float32) * 12
    ox = (hx - 22).astype(jnp.float32) * 12
    local = _entity_marks(sim, level, GRID_H, GRID_W, 12.0, oy, ox)
    glob = _entity_marks(sim, level, GRID_H, GRID_W, 24.0, 0.0, 0.0)[:2]       # no global door plane
    l_mine, l_goal, l_door, g_mine, g_goal = _scatter_planes(local + glob, GRID_H, GRID_W)
    cx, cy = cell_of_px(jnp.stack([x, y]))
    ninja = jnp.where((jnp.arange(GRID_H)[:, None] == cy) & (jnp.arange(GRID_W)[None, :] == cx),
                      jnp.uint8(255), jnp.uint8(0))
    vis = jnp.where(visited.T, 255, 0).astype(jnp.uint8)
    return jnp.stack([local_solid, l_mine, l_goal, l_door, cell_occ, g_mine, g_goal, ninja, vis,
                      state_plane(state_vec)])


# ----------------------------------------------------------------------------- action mask


def action_mask(sim):
    """bool[6]: jump actions (3, 4, 5) are masked when they cannot differ from their non-jump
    counterparts: the jump input is already held (no rising edge, spec §3.11), the ninja is not
    in the jumping state (holding jump only matters while state 3 extends the jump), and no
    jump/floor/wall buffer is active. Non-jump actions are always valid."""
    n = sim.ninja
    useless = (n.jump_input_old > 0) & (n.state != C.ST_JUMPING) & (n.jump_buffer < 0) & \
        (n.floor_buffer < 0) & (n.wall_buffer < 0)
    return jnp.array([True, True, True, False, False, False]) | ~useless
