"""Segment gathers and the collision primitives of spec §3.8 (vectorised over candidates).

A *candidate set* is what nclone's ``gather_segments_from_region`` returns, as masked arrays in
the same order: cells x outer / y inner, each cell's tile slots in list order, then the door
segments registered in that cell (load order). Invalid rows are masked out. Operation order in
every formula follows nclone exactly (float64 bit-exactness depends on it).

Section marks (§) cite docs/specs/npp.md.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from envs.npp import constants as C


def sqrt(x):
    """``jnp.sqrt`` that XLA may not fold into a following division (``a / sqrt(b)`` would become
    ``a * rsqrt(b)``, which is not correctly rounded); keeps float64 bit-exact with nclone.

    Only float64 gets the barrier: it also ends XLA's fusions, and float32 (training) is not
    bit-exact with the float64 reference anyway, so there XLA may fuse the physics freely."""
    x = jnp.asarray(x)
    if x.dtype == jnp.float64:
        return lax.optimization_barrier(jnp.sqrt(x))
    return jnp.sqrt(x)


class Segs(NamedTuple):
    valid: jax.Array     # bool[K]
    arc: jax.Array       # bool[K]
    geom: jax.Array      # float[K, 4]: x1 y1 x2 y2 | cx cy hor ver
    convex: jax.Array    # bool[K]
    oriented: jax.Array  # bool[K]  (doors are un-oriented: never back-facing)
    stride: int = 1      # static: rows per cell; only each cell's first row (its tile slot 0) can be an arc


def _arc_rows(x, stride):
    """The rows that may hold an arc (every ``stride``-th, from 0)."""
    return x if stride == 1 else x.reshape((-1, stride) + x.shape[1:])[:, 0]


def _merge_arc_rows(full, part, stride):
    """``full`` with its arc-capable rows replaced by ``part``."""
    if stride == 1:
        return part
    f = full.reshape((-1, stride) + full.shape[1:])
    return f.at[:, 0].set(part).reshape(full.shape)


def cell_index(v, hi):
    """``clamp(floor(v / 24), 0, hi)`` as int32."""
    return jnp.clip(jnp.floor(v / 24), 0, hi).astype(jnp.int32)


def gather_segments(level, door_closed, x1, y1, x2, y2, width: int, dtype) -> Segs:
    """Active segments of the cells overlapped by the box, in nclone order.

    ``width`` is the static number of cells examined per axis; the box must span at most that
    many cells (3 for the sweep: |displacement| < 36 px; 2 for the +-10 / 10.1 boxes).
    """
    cx_lo, cx_hi = cell_index(x1, C.GRID_W - 1), cell_index(x2, C.GRID_W - 1)
    cy_lo, cy_hi = cell_index(y1, C.GRID_H - 1), cell_index(y2, C.GRID_H - 1)
    sx = jnp.clip(cx_lo, 0, C.GRID_W - width)
    sy = jnp.clip(cy_lo, 0, C.GRID_H - width)
    cxs = sx + jnp.arange(width)
    cys = sy + jnp.arange(width)
    cell_ok = ((cxs >= cx_lo) & (cxs <= cx_hi))[:, None] & ((cys >= cy_lo) & (cys <= cy_hi))[None, :]

    def sl(a):
        zero = jnp.zeros((), jnp.int32)
        return lax.dynamic_slice(a, (sx, sy) + (zero,) * (a.ndim - 2), (width, width) + a.shape[2:])

    kind = sl(level.seg_kind).astype(jnp.int32)                        # [W, W, 8], -1 empty
    t_valid = (kind >= 0) & cell_ok[..., None]
    k = jnp.maximum(kind, 0)
    t_arc = jnp.asarray(C.SEG_KIND_ARC)[k]
    t_convex = jnp.asarray(C.SEG_KIND_CONVEX)[k]
    # tile-local geometry + the cell's origin (integers: exact in any float dtype)
    origin = jnp.stack(jnp.broadcast_arrays(24 * cxs[:, None], 24 * cys[None, :]), -1)   # [W, W, 2]
    origin = jnp.concatenate([origin, origin], -1)[:, :, None, :]                       # [W, W, 1, 4]
    t_geom = (jnp.asarray(C.SEG_KIND_LOCAL)[k] + jnp.asarray(C.SEG_KIND_SHIFT)[k] * origin).astype(dtype)

    if not {C.T_DOOR_REGULAR, C.T_DOOR_LOCKED, C.T_DOOR_TRAP} & set(level.entity_types):
        # static: a level without door types has only tile segments
        flat = lambda a: a.reshape((-1,) + a.shape[3:])
        return Segs(valid=flat(t_valid), arc=flat(t_arc), geom=flat(t_geom), convex=flat(t_convex),
                    oriented=flat(jnp.ones_like(t_valid)), stride=C.SEG_SLOTS)

    # Doors: the D door slots (load order) appended to every cell, masked to their own cell.
    ds = level.door_slots
    d_cell = level.door_cell[ds]                                       # [D, 2]
    d_on = level.door_slot_valid & door_closed[ds]
    d_valid = (cell_ok[..., None] & d_on[None, None, :]
               & (d_cell[None, None, :, 0] == cxs[:, None, None])
               & (d_cell[None, None, :, 1] == cys[None, :, None]))     # [W, W, D]
    D = ds.shape[0]
    d_geom = jnp.broadcast_to(level.door_seg[ds].astype(dtype), (width, width, D, 4))
    false = jnp.zeros((width, width, D), bool)

    cat = lambda a, b: jnp.concatenate([a, b], axis=2).reshape((-1,) + a.shape[3:])
    return Segs(
        valid=cat(t_valid, d_valid), arc=cat(t_arc, false), geom=cat(t_geom, d_geom),
        convex=cat(t_convex, false),
        oriented=cat(jnp.ones_like(t_valid), false), stride=C.SEG_SLOTS + D,
    )


# ----------------------------------------------------------------------------- closest point


def _arc_closest(g, convex, px, py):
    cx, cy, hor, ver = g[:, 0], g[:, 1], g[:, 2], g[:, 3]
    dx, dy = px - cx, py - cy
    in_quad = (dx * hor > 0) & (dy * ver > 0)
    dist = sqrt(dx * dx + dy * dy)
    dist_safe = jnp.where(dist == 0, 1, dist)
    ca = cx + dx * C.ARC_RADIUS / dist_safe
    cb = cy + dy * C.ARC_RADIUS / dist_safe
    cback = jnp.where(convex, dist < C.ARC_RADIUS, dist > C.ARC_RADIUS)
    pick_hor = dx * hor > dy * ver
    ea = jnp.where(pick_hor, cx + hor * C.ARC_RADIUS, cx)
    eb = jnp.where(pick_hor, cy, cy + ver * C.ARC_RADIUS)
    use_circle = in_quad & (dist != 0)
    return use_circle & cback, jnp.where(use_circle, ca, ea), jnp.where(use_circle, cb, eb)


def closest_points(segs: Segs, px, py):
    """Per candidate: (back_facing, a, b) as in nclone's ``get_closest_point``."""
    g = segs.geom
    x1, y1, x2, y2 = g[:, 0], g[:, 1], g[:, 2], g[:, 3]
    # linear
    sx, sy = x2 - x1, y2 - y1
    seg_lensq = sx * sx + sy * sy
    seg_lensq_safe = jnp.where(segs.arc | (seg_lensq == 0), 1, seg_lensq)
    u = ((px - x1) * sx + (py - y1) * sy) / seg_lensq_safe
    u = jnp.where(u > 1, 1, jnp.where(u < 0, 0, u))
    la = x1 + u * sx
    lb = y1 + u * sy
    lback = ((py - y1) * sx - (px - x1) * sy < 0) & segs.oriented
    # arc (centre (x1, y1), quadrant (x2, y2)): only on the rows that can hold one
    k = segs.stride
    arc = _arc_rows(segs.arc, k)
    aback, aa, ab = _arc_closest(_arc_rows(g, k), _arc_rows(segs.convex, k), px, py)
    back = _merge_arc_rows(lback, jnp.where(arc, aback, _arc_rows(lback, k)), k)
    a = _merge_arc_rows(la, jnp.where(arc, aa, _arc_rows(la, k)), k)
    b = _merge_arc_rows(lb, jnp.where(arc, ab, _arc_rows(lb, k)), k)
    return back, a, b


def single_closest_point(segs: Segs, px, py):
    """nclone ``get_single_closest_point``: (result in {-1, 0, 1}, a, b); first of equal scores."""
    back, a, b = closest_points(segs, px, py)
    score = (px - a) ** 2 + (py - b) ** 2
    score = jnp.where(back, score, score - 0.1)
    score = jnp.where(segs.valid, score, jnp.inf)
    i = jnp.argmin(score)
    found = segs.valid.any() & (score[i] < jnp.inf)
    result = jnp.where(found, jnp.where(back[i], -1, 1), 0)
    return result, a[i], b[i]


# ----------------------------------------------------------------------------- sweep


def _toi_circle_vs_point(px, py, vx, vy, a, b, r):
    dx, dy = px - a, py - b
    dist_sq = dx ** 2 + dy ** 2
    vel_sq = vx ** 2 + vy ** 2
    dot = dx * vx + dy * vy
    rad = dot ** 2 - vel_sq * (dist_sq - r ** 2)
    ok = (vel_sq > 0.0001) & (dot < 0) & (rad >= 0)
    t = (-dot - sqrt(jnp.where(ok, rad, 0))) / jnp.where(ok, vel_sq, 1)
    return jnp.where(dist_sq - r ** 2 > 0, jnp.where(ok, t, 1), 0)


def _toi_circle_vs_lineseg(px, py, dx, dy, a1, b1, a2, b2, r):
    wx, wy = a2 - a1, b2 - b1
    seg_len = sqrt(wx ** 2 + wy ** 2)
    seg_len_s = jnp.where(seg_len == 0, 1, seg_len)
    nx, ny = wx / seg_len_s, wy / seg_len_s
    normal_proj = (px - a1) * ny - (py - b1) * nx
    hor_proj = (px - a1) * nx + (py - b1) * ny
    d = dx * ny - dy * nx
    toward = d * normal_proj < 0
    t = jnp.minimum((jnp.abs(normal_proj) - r) / jnp.where(toward, jnp.abs(d), 1), 1)
    hor_proj2 = hor_proj + t * (dx * nx + dy * ny)
    far = jnp.where(toward & (0 <= hor_proj2) & (hor_proj2 <= seg_len), t, 1)
    near = jnp.where((0 <= hor_proj) & (hor_proj <= seg_len), 0, 1)
    return jnp.where(jnp.abs(normal_proj) >= r, far, near)


def _toi_circle_vs_arc(px, py, vx, vy, a, b, hor, ver, radius_arc, r):
    dx, dy = px - a, py - b
    dist_sq = dx ** 2 + dy ** 2
    vel_sq = vx ** 2 + vy ** 2
    dot = dx * vx + dy * vy
    r1 = radius_arc + r
    r2 = radius_arc - r
    rad1 = dot ** 2 - vel_sq * (dist_sq - r1 ** 2)
    ok1 = (vel_sq > 0.0001) & (dot < 0) & (rad1 >= 0)
    t1 = jnp.where(ok1, (-dot - sqrt(jnp.where(ok1, rad1, 0))) / jnp.where(ok1, vel_sq, 1), 1)
    rad2 = dot ** 2 - vel_sq * (dist_sq - r2 ** 2)
    ok2 = vel_sq > 0.0001
    t2 = jnp.where(ok2, jnp.minimum((-dot + sqrt(jnp.where(ok2, rad2, 0))) / jnp.where(ok2, vel_sq, 1), 1), 1)
    t = jnp.where(dist_sq > r1 ** 2, t1, jnp.where(dist_sq < r2 ** 2, t2, 0))
    hit = ((dx + t * vx) * hor > 0) & ((dy + t * vy) * ver > 0)
    return jnp.where(hit, t, 1)


def ray_times(segs: Segs, px, py, dx, dy, r):
    """``segment.intersect_with_ray`` for every candidate (1 where invalid)."""
    g = segs.geom
    x1, y1, x2, y2 = g[:, 0], g[:, 1], g[:, 2], g[:, 3]
    # lines: min(point p1, point p2, line); arcs: min(point p_hor, point p_ver, arc)
    hor, ver = x2, y2
    e1x = jnp.where(segs.arc, x1 + hor * C.ARC_RADIUS, x1)
    e1y = jnp.where(segs.arc, y1, y1)
    e2x = jnp.where(segs.arc, x1, x2)
    e2y = jnp.where(segs.arc, y1 + ver * C.ARC_RADIUS, y2)
    t1 = _toi_circle_vs_point(px, py, dx, dy, e1x, e1y, r)
    t2 = _toi_circle_vs_point(px, py, dx, dy, e2x, e2y, r)
    tl = _toi_circle_vs_lineseg(px, py, dx, dy, x1, y1, x2, y2, r)
    k = segs.stride   # arcs only on each cell's first row
    ga = _arc_rows(g, k)
    ta = _toi_circle_vs_arc(px, py, dx, dy, ga[:, 0], ga[:, 1], ga[:, 2], ga[:, 3], C.ARC_RADIUS, r)
    t3 = _merge_arc_rows(tl, jnp.where(_arc_rows(segs.arc, k), ta, _arc_rows(tl, k)), k)
    t = jnp.minimum(jnp.minimum(t1, t2), t3)
    return jnp.where(segs.valid, t, 1)


def sweep_circle_vs_tiles(level, door_closed, x_old, y_old, dx, dy, radius, dtype):
    """Shortest time of impact of a circle moving from (x_old, y_old) by (dx, dy), spec §3.8.1."""
    x_new = x_old + dx
    y_new = y_old + dy
    w = radius + 1
    segs = gather_segments(level, door_closed, jnp.minimum(x_old, x_new) - w, jnp.minimum(y_old, y_new) - w,
                           jnp.maximum(x_old, x_new) + w, jnp.maximum(y_old, y_new) + w, 3, dtype)
    return jnp.minimum(jnp.min(ray_times(segs, x_old, y_old, dx, dy, radius)), 1)
