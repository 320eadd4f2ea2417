"""Entities (spec §6.4): move/think phases, physical and logical collisions with the ninja.

Order is part of the physics, so the phases walk entity rows in nclone's order with a
``lax.while_loop`` that picks the next row by a few reductions over the table (no sort):

* move / think: table (= update) order, restricted to the rows of the phase's types;
* physical / logical collisions: the 3 x 3 cells around the ninja (x outer, y inner, by each
  entity's *registered* cell) then insertion stamp (spec §6.3, §6.4.1).

Toggle mines, the most numerous type, think with one vectorised op (their think touches only
themselves). Each per-row function takes and returns the carry ``(ninja, ents, stamp_counter,
...)`` and acts on row ``i``; ``lax.switch`` dispatches on a per-row behaviour id (logical
collisions on a two-row window of the table, so the dispatch copies two rows, not the table).
Levels whose traced types are only mines, gold, exit doors and switches (generated levels) run
the logical collisions as one vectorised pass instead of the loop.

Section marks (§) cite docs/specs/npp.md.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from envs.npp import constants as C
from envs.npp.geometry import gather_segments, ray_times, single_closest_point, sqrt
from envs.npp.ninja import add_contact, is_valid_target, kill, win
from envs.npp.state import Entities, Ninja

# ----------------------------------------------------------------------------- small helpers


def cell_of(x, y):
    return jnp.stack([jnp.clip(jnp.floor(x / 24), 0, C.GRID_W - 1),
                      jnp.clip(jnp.floor(y / 24), 0, C.GRID_H - 1)], -1).astype(jnp.int32)


def ifloor(v):
    return jnp.floor(v).astype(jnp.int32)


def overlap(ax, ay, ar, bx, by, br):
    return sqrt((ax - bx) ** 2 + (ay - by) ** 2) < ar + br


def square_pen(sx, sy, px, py, semi):
    """(hit, nx, ny, d1, d2) of ``penetration_square_vs_point``; n has integer components."""
    dx = px - sx
    dy = py - sy
    penx = semi - jnp.abs(dx)
    peny = semi - jnp.abs(dy)
    hit = (penx > 0) & (peny > 0)
    vert = peny <= penx
    nx = jnp.where(vert, 0.0, jnp.where(dx < 0, -1.0, 1.0)).astype(px.dtype)
    ny = jnp.where(vert, jnp.where(dy < 0, -1.0, 1.0), 0.0).astype(px.dtype)
    d1 = jnp.where(vert, peny, penx)
    d2 = jnp.where(vert, penx, peny)
    return hit, nx, ny, d1, d2


def overlap_circle_segment(cx, cy, r, ax, ay, bx, by):
    px, py = bx - ax, by - ay
    dx, dy = cx - ax, cy - ay
    u = (dx * px + dy * py) / (px ** 2 + py ** 2)
    u = jnp.maximum(u, 0)
    u = jnp.minimum(u, 1)
    a = ax + u * px
    b = ay + u * py
    return (cx - a) ** 2 + (cy - b) ** 2 < r ** 2


def orient_vec(o, dtype):
    v = jnp.asarray(C.ORIENT_VEC, dtype)
    return v[jnp.clip(o, 0, 7)]


def grid_move(e: Entities, i, counter):
    """Re-register row i in the cell of its position (re-appended at the end of that cell)."""
    c = cell_of(e.pos[i, 0], e.pos[i, 1])
    changed = jnp.any(c != e.cell[i])
    e = e.replace(cell=e.cell.at[i].set(c), stamp=e.stamp.at[i].set(jnp.where(changed, counter, e.stamp[i])))
    return e, counter + changed.astype(counter.dtype)


def set_door(e: Entities, i, closed):
    return e.replace(door_closed=e.door_closed.at[i].set(closed),
                     door_cnt=e.door_cnt.at[i].add(jnp.where(closed, 1, -1)))


# ----------------------------------------------------------------------------- grid edges


def edge_tables(level, e: Entities):
    """Grid-edge tables (tile XOR part + signed door counts), recomputed when doors may change."""
    ds = level.door_slots
    dc = level.door_cell[ds]
    vert = level.door_vertical[ds]
    cnt = jnp.where(level.door_slot_valid, e.door_cnt[ds], 0)
    h_cnt = jnp.where(vert, 0, cnt)
    v_cnt = jnp.where(vert, cnt, 0)
    hor = level.edge_hor.astype(jnp.int32).at[2 * dc[:, 0], 2 * dc[:, 1] + 2].add(h_cnt, mode="drop")
    hor = hor.at[2 * dc[:, 0] + 1, 2 * dc[:, 1] + 2].add(h_cnt, mode="drop")
    ver = level.edge_ver.astype(jnp.int32).at[2 * dc[:, 0] + 2, 2 * dc[:, 1]].add(v_cnt, mode="drop")
    ver = ver.at[2 * dc[:, 0] + 2, 2 * dc[:, 1] + 1].add(v_cnt, mode="drop")
    return hor, ver


_K4 = np.arange(4, dtype=np.int32)   # numpy: no device work at import time


def is_empty_row(tab, x1, x2, y, d):
    """No blocking horizontal half-edge on the ``d`` side of half-cell row y, columns x1..x2."""
    ky = jnp.where(d == 1, y + 1, y)
    kx = x1 + _K4
    vals = tab[0][jnp.clip(kx, 0, 87), jnp.clip(ky, 0, 49)]
    return jnp.all((kx > x2) | (vals == 0))


def is_empty_column(tab, x, y1, y2, d):
    kx = jnp.where(d == 1, x + 1, x)
    ky = y1 + _K4
    vals = tab[1][jnp.clip(kx, 0, 87), jnp.clip(ky, 0, 49)]
    return jnp.all((ky > y2) | (vals == 0))


# ----------------------------------------------------------------------------- row iteration


class RowOrder(NamedTuple):
    """The rows of ``mask`` in gather order, visited by :func:`for_rows` without sorting: by cell
    rank ``rc`` (x outer, y inner), then insertion ``stamp``, then row index; or, when ``rc``
    is None, by row index (table order). The keys are the values when the order was taken."""

    mask: jax.Array
    rc: jax.Array | None = None
    stamp: jax.Array | None = None


def rows_in_order(mask):
    """The rows of ``mask`` in table order, and their count."""
    return RowOrder(mask), jnp.sum(mask).astype(jnp.int32)


def _lex_first(mask, rc, stamp):
    """Index of the first row of ``mask`` in gather order (cell rank, then stamp, then row)."""
    big = jnp.iinfo(jnp.int32).max
    rc_min = jnp.min(jnp.where(mask, rc, big))
    m = mask & (rc == rc_min)
    st_min = jnp.min(jnp.where(m, stamp, big))
    return jnp.argmax(m & (stamp == st_min)).astype(jnp.int32)


def _next_row(order: RowOrder, left):
    if order.rc is None:
        return jnp.argmax(left).astype(jnp.int32)
    return _lex_first(left, order.rc, order.stamp)


def for_rows(order: RowOrder, count, fn, carry):
    """``carry = fn(carry, i)`` for the first ``count`` rows of ``order``; each step picks the
    next row with a few reductions over the table (a handful of rows per call: cheaper than
    sorting the whole table)."""
    def cond(c):
        return c[0] < count

    def body(c):
        k, left, inner = c
        i = _next_row(order, left)
        return k + 1, left.at[i].set(False), fn(inner, i)

    return lax.while_loop(cond, body, (jnp.int32(0), order.mask, carry))[2]


def neighbourhood_rows(level, e: Entities, x, y, type_mask):
    """Active grid entities of the 3 x 3 cells around (x, y), in nclone gather order."""
    c = cell_of(x, y)
    near = (jnp.abs(e.cell[:, 0] - c[0]) <= 1) & (jnp.abs(e.cell[:, 1] - c[1]) <= 1)
    mask = near & e.in_grid & e.active & type_mask & (level.ent_type > 0)
    rc = (e.cell[:, 0] - c[0] + 1) * 3 + (e.cell[:, 1] - c[1] + 1)     # cell rank: x outer, y inner
    return RowOrder(mask, rc, e.stamp), jnp.sum(mask).astype(jnp.int32)


def type_in(level, types):
    m = jnp.zeros_like(level.ent_type, dtype=bool)
    for t in types:
        m = m | (level.ent_type == t)
    return m


# ============================================================================= move phase
# carry: (n, e, counter)


def _move_bounce_block(level, carry, i):
    n, e, counter = carry
    ox, oy = level.ent_pos[i, 0], level.ent_pos[i, 1]
    vx = e.vel[i, 0] * 0.98
    vy = e.vel[i, 1] * 0.98
    x = e.pos[i, 0] + vx
    y = e.pos[i, 1] + vy
    fx = 0.02222222222222222 * (ox - x)
    fy = 0.02222222222222222 * (oy - y)
    x = x + fx
    y = y + fy
    vx = vx + fx
    vy = vy + fy
    e = e.replace(pos=e.pos.at[i].set(jnp.stack([x, y])), vel=e.vel.at[i].set(jnp.stack([vx, vy])))
    e, counter = grid_move(e, i, counter)
    return n, e, counter


def _thwump_axes(level, i):
    o = level.ent_orient[i]
    horizontal = (o == 0) | (o == 4)
    d = jnp.where((o == 0) | (o == 2), 1, -1)
    return horizontal, d


def _move_thwump(level, tab, carry, i):
    n, e, counter = carry
    horizontal, d = _thwump_axes(level, i)
    st = e.state[i]
    x, y = e.pos[i, 0], e.pos[i, 1]
    ox, oy = level.ent_pos[i, 0], level.ent_pos[i, 1]
    a = jnp.where(horizontal, x, y)
    b = jnp.where(horizontal, y, x)
    a_origin = jnp.where(horizontal, ox, oy)
    speed = jnp.where(st == 1, C.THWUMP_FORWARD_SPEED, C.THWUMP_BACKWARD_SPEED)
    sd = d * st
    a_new = a + speed * sd
    snap = (st == -1) & ((a_new - a_origin) * (a - a_origin) < 0)
    c = ifloor((a + sd * 11) / 12)
    c_new = ifloor((a_new + sd * 11) / 12)
    k1 = ifloor((b - 11) / 12)
    k2 = ifloor((b + 11) / 12)
    empty = jnp.where(horizontal, is_empty_column(tab, c, k1, k2, sd), is_empty_row(tab, k1, k2, c, sd))
    blocked = (c != c_new) & ~empty
    moving = st != 0
    a_out = jnp.where(snap, a_origin, jnp.where(blocked, a, a_new))
    st_out = jnp.where(snap, 0, jnp.where(blocked, -1, st))
    do_move = moving & ~snap & ~blocked
    a_fin = jnp.where(moving, a_out, a)
    newpos = jnp.where(horizontal, jnp.stack([a_fin, y]), jnp.stack([x, a_fin]))
    e2 = e.replace(pos=e.pos.at[i].set(newpos), state=e.state.at[i].set(jnp.where(moving, st_out, st)))
    e3, counter3 = grid_move(e2, i, counter)
    e = jax.tree.map(lambda p, q: jnp.where(do_move, p, q), e3, e2)
    return n, e, jnp.where(do_move, counter3, counter)


def _move_boost_pad(level, carry, i):
    n, e, counter = carry
    valid = is_valid_target(n)
    ov = overlap(e.pos[i, 0], e.pos[i, 1], C.BOOST_PAD_RADIUS, n.x, n.y, C.NINJA_RADIUS)
    first = valid & ov & ~e.touching[i]
    s = sqrt(n.vx ** 2 + n.vy ** 2)
    boost = first & (s > 0)
    s_s = jnp.where(s > 0, s, 1)
    bx = 2 * n.vx / s_s
    by = 2 * n.vy / s_s
    n = n.replace(vx=jnp.where(boost, n.vx + bx, n.vx), vy=jnp.where(boost, n.vy + by, n.vy))
    e = e.replace(touching=e.touching.at[i].set(valid & ov))
    return n, e, counter


def _drone_try_dir(tab, d, x, y, R, G):
    """Can the drone move one grid step in direction d from (x, y)? (and the new target)"""
    dirs = jnp.asarray(C.DRONE_DIRS)
    ux, uy = dirs[d, 0], dirs[d, 1]
    nx = x + G * ux
    ny = y + G * uy
    horiz = uy == 0
    c0 = jnp.where(horiz, ifloor((x + ux * R) / 12), ifloor((y + uy * R) / 12))
    c_end = jnp.where(horiz, ifloor((nx + ux * R) / 12), ifloor((ny + uy * R) / 12))
    q1 = jnp.where(horiz, ifloor((y - R) / 12), ifloor((x - R) / 12))
    q2 = jnp.where(horiz, ifloor((y + R) / 12), ifloor((x + R) / 12))
    step = jnp.where(horiz, ux, uy)
    # while c != c_end: test c, c += step  (c_end - c0 has the sign of step; <= 3 steps)
    cs = c0 + _K4 * step
    go = _K4 < jnp.abs(c_end - c0)
    empty = jax.vmap(lambda c: jnp.where(horiz, is_empty_column(tab, c, q1, q2, ux),
                                         is_empty_row(tab, q1, q2, c, uy)))(cs)
    return jnp.all(~go | empty), nx, ny


def _move_drone(level, tab, carry, i):
    n, e, counter = carry
    t = level.ent_type[i]
    zap = t == C.T_DRONE_ZAP
    R = jnp.where(zap, C.DRONE_RADIUS[14], C.DRONE_RADIUS[26]).astype(n.x.dtype)
    G = jnp.where(zap, C.DRONE_GRID[14], C.DRONE_GRID[26]).astype(n.x.dtype)
    speed = jnp.where(zap, C.DRONE_SPEED[14], C.DRONE_SPEED[26]).astype(n.x.dtype)
    dirs = jnp.asarray(C.DRONE_DIRS)
    d = e.dir[i]
    ux, uy = dirs[d, 0], dirs[d, 1]
    sx, sy = speed * ux, speed * uy
    x, y = e.pos[i, 0], e.pos[i, 1]
    tx, ty = e.target[i, 0], e.target[i, 1]
    dx, dy = tx - x, ty - y
    dist = sqrt(dx ** 2 + dy ** 2)
    arrive = (dist < 0.000001) | (dx * (tx - (x + sx)) + dy * (ty - (y + sy)) < 0)
    # arrival branch: snap to target, choose a new direction (may fail: wait)
    mode = jnp.clip(level.ent_mode[i], 0, 3)
    pref = jnp.asarray(C.DRONE_PREF)[mode]
    found = jnp.array(False)
    nd = d
    ntx, nty = tx, ty
    cands = (d + pref) % 4
    oks, cxs, cys = jax.vmap(lambda c: _drone_try_dir(tab, c, tx, ty, R, G))(cands)
    for k in range(4):
        cand, ok, cx, cy = cands[k], oks[k], cxs[k], cys[k]
        take = ok & ~found
        nd = jnp.where(take, cand, nd)
        ntx = jnp.where(take, cx, ntx)
        nty = jnp.where(take, cy, nty)
        found = found | ok
    rem = speed - dist
    ax_ = jnp.where(found, tx + rem * dirs[nd, 0], tx)
    ay_ = jnp.where(found, ty + rem * dirs[nd, 1], ty)
    arr_e = e.replace(pos=e.pos.at[i].set(jnp.stack([ax_, ay_])), dir=e.dir.at[i].set(nd),
                      target=e.target.at[i].set(jnp.stack([ntx, nty])))
    # travel branch
    trav = e.replace(pos=e.pos.at[i].set(jnp.stack([x + speed * ux, y + speed * uy])))
    trav, counter2 = grid_move(trav, i, counter)
    e = jax.tree.map(lambda p, q: jnp.where(arrive, p, q), arr_e, trav)
    return n, e, jnp.where(arrive, counter, counter2)


def _dispatch(level, order, count, carry, table, ent_type=None):
    """Walk ``order[:count]``; row i runs ``table[type_i](carry, i)``. Only the types the level
    declares (``level.entity_types``, static) are traced, so plain levels compile small."""
    ent_type = level.ent_type if ent_type is None else ent_type
    present = [t for t in table if t in level.entity_types]
    if not present:
        return carry
    if len(present) == 1:
        return for_rows(order, count, table[present[0]], carry)
    kind = jnp.zeros_like(ent_type)
    for k, t in enumerate(present):
        kind = jnp.where(ent_type == t, k, kind)
    branches = [table[t] for t in present]
    return for_rows(order, count, lambda c, i: lax.switch(kind[i], branches, c, i), carry)


def move_phase(level, n, e, counter):
    types = (C.T_DRONE_ZAP, C.T_BOUNCE_BLOCK, C.T_THWUMP, C.T_BOOST_PAD, C.T_DRONE_MINI)
    if not set(types) & set(level.entity_types):
        return n, e, counter
    order, count = rows_in_order(type_in(level, types) & e.active)
    tab = edge_tables(level, e)   # doors do not change during the move phase
    drone = lambda c, i: _move_drone(level, tab, c, i)
    table = {C.T_DRONE_ZAP: drone, C.T_BOUNCE_BLOCK: lambda c, i: _move_bounce_block(level, c, i),
             C.T_THWUMP: lambda c, i: _move_thwump(level, tab, c, i),
             C.T_BOOST_PAD: lambda c, i: _move_boost_pad(level, c, i), C.T_DRONE_MINI: drone}
    ent_type = level.ent_type
    if C.T_DRONE_ZAP in level.entity_types and C.T_DRONE_MINI in level.entity_types:
        table.pop(C.T_DRONE_MINI)     # one branch serves both drone types
        ent_type = jnp.where(ent_type == C.T_DRONE_MINI, C.T_DRONE_ZAP, ent_type)
    return _dispatch(level, order, count, (n, e, counter), table, ent_type)


# ============================================================================= think phase


def _think_mines(level, n, e):
    is_mine = type_in(level, (C.T_MINE, C.T_MINE_SAFE)) & e.active
    s = e.state
    r = jnp.asarray(C.MINE_RADII, n.x.dtype)[jnp.clip(s, 0, 2)]
    ov = overlap(e.pos[:, 0], e.pos[:, 1], r, n.x, n.y, C.NINJA_RADIUS)
    valid = is_valid_target(n)
    s_valid = jnp.where((s == 1) & ov, 2, jnp.where((s == 2) & ~ov, 0, s))
    s_invalid = jnp.where((s == 2) & (n.state == 6), 1, s)
    new = jnp.where(valid, s_valid, s_invalid)
    return e.replace(state=jnp.where(is_mine, new, s))


def _think_regular_door(level, carry, i):
    n, e, counter = carry
    opened = ~e.door_closed[i]
    timer = jnp.where(opened, e.open_timer[i] + 1, e.open_timer[i])
    e = e.replace(open_timer=e.open_timer.at[i].set(timer))
    close = opened & (timer > 5)
    e = jax.tree.map(lambda p, q: jnp.where(close, p, q), set_door(e, i, True), e)
    return n, e, counter


def _think_thwump(level, tab, carry, i):
    n, e, counter = carry
    horizontal, d = _thwump_axes(level, i)
    x, y = e.pos[i, 0], e.pos[i, 1]
    a = jnp.where(horizontal, x, y)
    b = jnp.where(horizontal, y, x)
    na = jnp.where(horizontal, n.x, n.y)
    nb = jnp.where(horizontal, n.y, n.x)
    go = (e.state[i] == 0) & is_valid_target(n) & (jnp.abs(b - nb) < 2 * (C.THWUMP_SEMI + C.NINJA_RADIUS))
    nc = ifloor(na / 12)
    t0 = ifloor((a - d * 11) / 12)
    k1 = ifloor((b - 11) / 12)
    k2 = ifloor((b + 11) / 12)
    dd0 = nc - t0

    def empty(t):
        return jnp.where(horizontal, is_empty_column(tab, t, k1, k2, d), is_empty_row(tab, k1, k2, t, d))

    # for i in range(100): if not empty(t): dd = nc - t; break; t += d
    def cond(c):
        it, t, broke, dd = c
        return (it < 100) & ~broke

    def body(c):
        it, t, broke, dd = c
        blocked = ~empty(t)
        return (jnp.where(blocked, it, it + 1), jnp.where(blocked, t, t + d), blocked,
                jnp.where(blocked, nc - t, dd))

    scan_ok = go & (dd0 * d >= 0)
    it, _, broke, dd = lax.while_loop(cond, body, (jnp.int32(0), t0, ~scan_ok, dd0))
    last_i = jnp.where(broke, it, 99)
    charge = scan_ok & (last_i > 0) & (dd * d <= 0)
    e = e.replace(state=e.state.at[i].set(jnp.where(charge, 1, e.state[i])))
    return n, e, counter


def _ball_closest(level, e, x, y, dtype):
    r = C.DEATH_BALL_RADIUS_TILES
    segs = gather_segments(level, e.door_closed, x - r, y - r, x + r, y + r, 2, dtype)
    return single_closest_point(segs, x, y)


def _think_death_ball(level, carry, i):
    n, e, counter = carry
    dtype = n.x.dtype
    x, y = e.pos[i, 0], e.pos[i, 1]
    vx, vy = e.vel[i, 0], e.vel[i, 1]
    valid = is_valid_target(n)
    # steering
    dx = n.x - x
    dy = n.y - y
    dist = sqrt(dx ** 2 + dy ** 2)
    dist_s = jnp.where(dist > 0, dist, 1)
    dx = jnp.where(dist > 0, dx / dist_s, dx)
    dy = jnp.where(dist > 0, dy / dist_s, dy)
    tvx = vx + dx * 0.04
    tvy = vy + dy * 0.04
    s = sqrt(tvx ** 2 + tvy ** 2)
    m = (s - 0.85) * 0.9
    m = jnp.where(m <= 0.01, 0, m)
    m = m + 0.85
    s_s = jnp.where(s > 0.85, s, 1)
    tvx = jnp.where(s > 0.85, tvx / s_s * m, tvx)
    tvy = jnp.where(s > 0.85, tvy / s_s * m, tvy)
    vx = jnp.where(valid, tvx, vx * 0.95)
    vy = jnp.where(valid, tvy, vy * 0.95)
    # sweep against tiles (radius 4, box +-5)
    xn, yn = x + vx, y + vy
    segs = gather_segments(level, e.door_closed, jnp.minimum(x, xn) - 5, jnp.minimum(y, yn) - 5,
                           jnp.maximum(x, xn) + 5, jnp.maximum(y, yn) + 5, 3, dtype)
    t = jnp.minimum(jnp.min(ray_times(segs, x, y, vx, vy, 4)), 1)
    x = x + t * vx
    y = y + t * vy

    # depenetration, segments re-gathered each iteration
    def cond(c):
        it, stop, abort, x, y, sx, sy = c
        return (it < 16) & ~stop

    def body(c):
        it, stop, abort, x, y, sx, sy = c
        res, a, b = _ball_closest(level, e, x, y, dtype)
        ddx = x - a
        ddy = y - b
        dist = sqrt(ddx ** 2 + ddy ** 2)
        pen = C.DEATH_BALL_RADIUS_TILES - dist * res
        brk = (res == 0) | (pen < 0.0000001)
        ab = ~brk & (dist == 0)
        go = ~brk & ~ab
        dist_s = jnp.where(dist == 0, 1, dist)
        ux = ddx / dist_s
        uy = ddy / dist_s
        return (it + 1, brk | ab, ab,
                jnp.where(go, x + ux * pen, x), jnp.where(go, y + uy * pen, y),
                jnp.where(go, sx + ux, sx), jnp.where(go, sy + uy, sy))

    z = jnp.zeros_like(x)
    _, _, abort, x, y, sx, sy = lax.while_loop(cond, body, (jnp.int32(0), jnp.array(False), jnp.array(False),
                                                            x, y, z, z))
    L = sqrt(sx ** 2 + sy ** 2)
    L_s = jnp.where(L > 0, L, 1)
    ux = sx / L_s
    uy = sy / L_s
    dot = vx * ux + vy * uy
    bounce = (L > 0) & (dot < 0)
    k = jnp.where(sqrt(vx ** 2 + vy ** 2) <= 1.35, 1, 2)
    vx_b = jnp.where(bounce, vx - ux * dot * k, vx)
    vy_b = jnp.where(bounce, vy - uy * dot * k, vy)
    # abort (dist == 0 during depenetration): position/velocity so far, no bounce/push/grid_move
    e_abort = e.replace(pos=e.pos.at[i].set(jnp.stack([x, y])), vel=e.vel.at[i].set(jnp.stack([vx, vy])))
    e2 = e.replace(pos=e.pos.at[i].set(jnp.stack([x, y])), vel=e.vel.at[i].set(jnp.stack([vx_b, vy_b])))
    # push later balls (their positions are still last frame's)
    idx = level.ent_ball_index[i]
    push_on = idx + 1 < level.death_ball_count
    later = (level.ent_type == C.T_DEATH_BALL) & (level.ent_ball_index > idx) & e.active & push_on
    order, count = rows_in_order(later)           # later balls in load order

    def push(c, j):
        e2, bvx, bvy = c
        qx, qy = e2.pos[j, 0], e2.pos[j, 1]
        ddx = x - qx
        ddy = y - qy
        dist = sqrt(ddx ** 2 + ddy ** 2)
        hit = dist < 16
        dist_s = jnp.where(dist == 0, 1, dist)
        px = ddx / dist_s * 4
        py = ddy / dist_s * 4
        bvx = jnp.where(hit, bvx + px, bvx)
        bvy = jnp.where(hit, bvy + py, bvy)
        e2 = e2.replace(vel=e2.vel.at[j].set(jnp.where(hit, e2.vel[j] - jnp.stack([px, py]), e2.vel[j])))
        return e2, bvx, bvy

    e2, bvx, bvy = for_rows(order, count, push, (e2, vx_b, vy_b))
    e2 = e2.replace(vel=e2.vel.at[i].set(jnp.stack([bvx, bvy])))
    e3, counter3 = grid_move(e2, i, counter)
    e = jax.tree.map(lambda p, q: jnp.where(abort, p, q), e_abort, e3)
    return n, e, jnp.where(abort, counter, counter3)


def _shwump_step(level, tab, e, i, counter, sx, sy, speed):
    x, y = e.pos[i, 0], e.pos[i, 1]
    horiz = e.m[i, 1] == 0          # the stored contact normal picks the axis
    x_new = x + sx * speed
    y_new = y + sy * speed
    cx, cx_new = ifloor(x / 12), ifloor(x_new / 12)
    cy, cy_new = ifloor(y / 12), ifloor(y_new / 12)
    blocked_h = (cx != cx_new) & ~is_empty_column(tab, cx, ifloor((y - 8) / 12), ifloor((y + 8) / 12), sx)
    blocked_v = (cy != cy_new) & ~is_empty_row(tab, ifloor((x - 8) / 12), ifloor((x + 8) / 12), cy, sy)
    blocked = jnp.where(horiz, blocked_h, blocked_v)
    newpos = jnp.where(horiz, jnp.stack([x_new, y]), jnp.stack([x, y_new]))
    e_b = e.replace(state=e.state.at[i].set(3))
    e_m = e.replace(pos=e.pos.at[i].set(newpos))
    e_m, counter_m = grid_move(e_m, i, counter)
    e = jax.tree.map(lambda p, q: jnp.where(blocked, p, q), e_b, e_m)
    return e, jnp.where(blocked, counter, counter_m)


def _think_shwump(level, tab, carry, i):
    n, e, counter = carry
    st = e.state[i]
    # state 1: armed waits one think; otherwise becomes 2 and falls through
    wait = (st == 1) & e.armed[i]
    e = e.replace(armed=e.armed.at[i].set(jnp.where(wait, False, e.armed[i])),
                  state=e.state.at[i].set(jnp.where((st == 1) & ~wait, 2, st)))
    st = e.state[i]
    ox, oy = level.ent_pos[i, 0], level.ent_pos[i, 1]
    x, y = e.pos[i, 0], e.pos[i, 1]
    mx, my = e.m[i, 0], e.m[i, 1]
    far = jnp.abs(x - ox) + jnp.abs(y - oy) >= 1
    e_ret, c_ret = _shwump_step(level, tab, e, i, counter, mx, my, 1)
    e_home = e.replace(pos=e.pos.at[i].set(jnp.stack([ox, oy])), state=e.state.at[i].set(0))
    e_launch, c_launch = _shwump_step(level, tab, e, i, counter, -mx, -my, 4)
    pick = lambda p, q, c: jax.tree.map(lambda a, b: jnp.where(c, a, b), p, q)
    e3 = pick(e_ret, e_home, far)
    c3 = jnp.where(far, c_ret, counter)
    e_out = pick(e3, pick(e_launch, e, st == 2), (st == 3) & ~wait)
    c_out = jnp.where((st == 3) & ~wait, c3, jnp.where((st == 2) & ~wait, c_launch, counter))
    e_out = pick(e, e_out, wait)
    return n, e_out, c_out


def think_phase(level, n, e, counter):
    types = level.entity_types
    if C.T_MINE in types or C.T_MINE_SAFE in types:
        e = _think_mines(level, n, e)
    # Regular doors think first (type 5 < 20, 25, 28); the others then read the updated edges.
    if C.T_DOOR_REGULAR in types:
        order, count = rows_in_order((level.ent_type == C.T_DOOR_REGULAR) & e.active)
        n, e, counter = for_rows(order, count, lambda c, i: _think_regular_door(level, c, i), (n, e, counter))
    later = (C.T_THWUMP, C.T_DEATH_BALL, C.T_SHOVE_THWUMP)
    if not set(later) & set(types):
        return n, e, counter
    tab = edge_tables(level, e)
    order, count = rows_in_order(type_in(level, later) & e.active)
    table = {C.T_THWUMP: lambda c, i: _think_thwump(level, tab, c, i),
             C.T_DEATH_BALL: lambda c, i: _think_death_ball(level, c, i),
             C.T_SHOVE_THWUMP: lambda c, i: _think_shwump(level, tab, c, i)}
    return _dispatch(level, order, count, (n, e, counter), table)


# ============================================================================= physical collisions

PHYSICAL_TYPES = (C.T_ONE_WAY, C.T_BOUNCE_BLOCK, C.T_THWUMP, C.T_SHOVE_THWUMP)


def _one_way_depen(level, n: Ninja, e, i):
    nv = orient_vec(level.ent_orient[i], n.x.dtype)
    nx, ny = nv[0], nv[1]
    x, y = e.pos[i, 0], e.pos[i, 1]
    dx = n.x - x
    dy = n.y - y
    lat = dy * nx - dx * ny
    toward = (n.vy * nx - n.vx * ny) * lat
    reach = jnp.where(toward < 0, 0.91, 0.51) * 10 + 12
    nd = dx * nx + dy * ny
    nd_old = (n.x_old - x) * nx + (n.y_old - y) * ny
    hit = (jnp.abs(lat) < reach) & (0 < nd) & (nd <= 10) & (n.vx * nx + n.vy * ny <= 0) & (10 - nd_old <= 1.1)
    return hit, nx, ny, 10 - nd


def _physical_one(level, carry, i):
    """One entity's physical collision and the ninja's response (spec §3.7)."""
    n, e = carry
    t = level.ent_type[i]
    x, y = e.pos[i, 0], e.pos[i, 1]
    semi_bb = C.BOUNCE_SEMI + C.NINJA_RADIUS
    # one-way
    ow_hit, ow_nx, ow_ny, ow_d = _one_way_depen(level, n, e, i)
    # squares
    semi = jnp.where(t == C.T_SHOVE_THWUMP, C.SHWUMP_SEMI + C.NINJA_RADIUS, semi_bb)
    sq_hit, sq_nx, sq_ny, sq_d1, _ = square_pen(x, y, n.x, n.y, semi.astype(n.x.dtype))
    mx, my = e.m[i, 0], e.m[i, 1]
    sh_ok = (e.state[i] <= 1) & ((e.state[i] == 0) | (mx * sq_nx + my * sq_ny >= 0.01))
    is_ow = t == C.T_ONE_WAY
    is_bb = t == C.T_BOUNCE_BLOCK
    is_th = t == C.T_THWUMP
    is_sh = t == C.T_SHOVE_THWUMP
    hit = jnp.where(is_ow, ow_hit, sq_hit & jnp.where(is_sh, sh_ok, True))
    nx = jnp.where(is_ow, ow_nx, sq_nx)
    ny = jnp.where(is_ow, ow_ny, sq_ny)
    d1 = jnp.where(is_ow, ow_d, jnp.where(is_bb, sq_d1 * 0.2, sq_d1))
    # bounce block takes 80 % of the push
    bb = hit & is_bb
    push = jnp.stack([nx * sq_d1 * 0.8, ny * sq_d1 * 0.8])
    e = e.replace(pos=e.pos.at[i].set(jnp.where(bb, e.pos[i] - push, e.pos[i])),
                  vel=e.vel.at[i].set(jnp.where(bb, e.vel[i] - push, e.vel[i])))
    pop_x = nx * d1
    pop_y = ny * d1
    crush = hit & ~is_bb
    vel_add = hit & (is_bb | is_th | is_sh)
    k = n.vx * ny - n.vy * nx
    ow_v = hit & is_ow
    n = n.replace(
        x=jnp.where(hit, n.x + pop_x, n.x), y=jnp.where(hit, n.y + pop_y, n.y),
        x_crush=jnp.where(crush, n.x_crush + pop_x, n.x_crush),
        y_crush=jnp.where(crush, n.y_crush + pop_y, n.y_crush),
        crush_len=jnp.where(crush, n.crush_len + d1, n.crush_len),
        is_crushable=n.is_crushable | (hit & is_th),
        vx=jnp.where(vel_add, n.vx + pop_x, jnp.where(ow_v, k * ny, n.vx)),
        vy=jnp.where(vel_add, n.vy + pop_y, jnp.where(ow_v, k * (-nx), n.vy)),
    )
    n = add_contact(n, hit, nx, ny, ny)
    return n, e


def collide_vs_objects(level, n, e, order, count):
    return for_rows(order, count, lambda c, i: _physical_one(level, c, i), (n, e))


# ============================================================================= logical collisions
# carry: (n, e, counter, wall_sum, switch_hit)


def _lg_mine(level, c, i):
    n, e, counter, wall, sw = c
    hit = is_valid_target(n) & (e.state[i] == 0) & overlap(e.pos[i, 0], e.pos[i, 1], C.MINE_RADII[0], n.x, n.y,
                                                            C.NINJA_RADIUS)
    e = e.replace(state=e.state.at[i].set(jnp.where(hit, 1, e.state[i])))
    return kill(n, hit), e, counter, wall, sw


def _lg_gold(level, c, i):
    n, e, counter, wall, sw = c
    hit = (n.state != 8) & overlap(e.pos[i, 0], e.pos[i, 1], C.GOLD_RADIUS, n.x, n.y, C.NINJA_RADIUS)
    n = n.replace(gold_collected=n.gold_collected + hit.astype(n.gold_collected.dtype))
    e = e.replace(active=e.active.at[i].set(e.active[i] & ~hit))
    return n, e, counter, wall, sw


def _lg_exit(level, c, i):
    n, e, counter, wall, sw = c
    hit = overlap(e.pos[i, 0], e.pos[i, 1], C.EXIT_RADIUS, n.x, n.y, C.NINJA_RADIUS)
    return win(n, hit), e, counter, wall, sw


def _lg_switch(level, c, i):
    n, e, counter, wall, sw = c
    hit = overlap(e.pos[i, 0], e.pos[i, 1], C.SWITCH_RADIUS, n.x, n.y, C.NINJA_RADIUS)
    door = i - 1   # the switch follows its door in list 3
    e = e.replace(active=e.active.at[i].set(e.active[i] & ~hit),
                  in_grid=e.in_grid.at[door].set(e.in_grid[door] | hit),
                  stamp=e.stamp.at[door].set(jnp.where(hit, counter, e.stamp[door])),
                  state=e.state.at[door].set(jnp.where(hit, 1, e.state[door])))
    return n, e, counter + hit.astype(counter.dtype), wall, sw | hit


def _lg_door_regular(level, c, i):
    n, e, counter, wall, sw = c
    hit = overlap(e.pos[i, 0], e.pos[i, 1], C.REGULAR_DOOR_RADIUS, n.x, n.y, C.NINJA_RADIUS)
    e2 = set_door(e, i, jnp.array(False))
    e2 = e2.replace(open_timer=e2.open_timer.at[i].set(0))
    e = jax.tree.map(lambda p, q: jnp.where(hit, p, q), e2, e)
    return n, e, counter, wall, sw


def _lg_door_locked(level, c, i):
    n, e, counter, wall, sw = c
    hit = overlap(e.pos[i, 0], e.pos[i, 1], C.DOOR_SWITCH_RADIUS, n.x, n.y, C.NINJA_RADIUS)
    e2 = set_door(e, i, jnp.array(False))
    e2 = e2.replace(active=e2.active.at[i].set(False))
    e = jax.tree.map(lambda p, q: jnp.where(hit, p, q), e2, e)
    n = n.replace(doors_opened=n.doors_opened + hit.astype(n.doors_opened.dtype))
    return n, e, counter, wall, sw


def _lg_door_trap(level, c, i):
    n, e, counter, wall, sw = c
    hit = overlap(e.pos[i, 0], e.pos[i, 1], C.DOOR_SWITCH_RADIUS, n.x, n.y, C.NINJA_RADIUS)
    e2 = set_door(e, i, jnp.array(True))
    e2 = e2.replace(active=e2.active.at[i].set(False))
    e = jax.tree.map(lambda p, q: jnp.where(hit, p, q), e2, e)
    return n, e, counter, wall, sw


def _lg_launch_pad(level, c, i):
    n, e, counter, wall, sw = c
    nv = orient_vec(level.ent_orient[i], n.x.dtype)
    nx, ny = nv[0], nv[1]
    x, y = e.pos[i, 0], e.pos[i, 1]
    hit = is_valid_target(n) & overlap(x, y, C.LAUNCH_PAD_RADIUS, n.x, n.y, C.NINJA_RADIUS) & \
        ((x - (n.x - 10 * nx)) * nx + (y - (n.y - 10 * ny)) * ny >= -0.1)
    k = jnp.where(ny < 0, 1 - ny, 1)
    bx = nx * C.LAUNCH_PAD_BOOST
    by = ny * C.LAUNCH_PAD_BOOST * k
    xb = bx * 2 / 3
    yb = by * 2 / 3
    s = sqrt(xb ** 2 + yb ** 2)
    s = jnp.where(s > 0, s, 1)
    n2 = n.replace(x=n.x + xb, y=n.y + yb, vx=xb, vy=yb, floor_count=jnp.zeros_like(n.floor_count),
                   floor_buffer=jnp.full_like(n.floor_buffer, -1), lp_boost_x=xb / s, lp_boost_y=yb / s,
                   lp_buffer=jnp.zeros_like(n.lp_buffer),
                   gravity=jnp.where(n.state == 3, C.GRAVITY_FALL, n.gravity), state=jnp.full_like(n.state, 4))
    n = jax.tree.map(lambda p, q: jnp.where(hit, p, q), n2, n)
    return n, e, counter, wall, sw


def _lg_one_way(level, c, i):
    n, e, counter, wall, sw = c
    hit, nx, ny, _ = _one_way_depen(level, n, e, i)
    wall = jnp.where(hit & (jnp.abs(nx) == 1), wall + nx, wall)
    return n, e, counter, wall, sw


def _lg_drone(level, c, i):
    n, e, counter, wall, sw = c
    R = jnp.where(level.ent_type[i] == C.T_DRONE_ZAP, C.DRONE_RADIUS[14], C.DRONE_RADIUS[26])
    hit = is_valid_target(n) & overlap(e.pos[i, 0], e.pos[i, 1], R, n.x, n.y, C.NINJA_RADIUS)
    return kill(n, hit), e, counter, wall, sw


def _lg_bounce_block(level, c, i):
    n, e, counter, wall, sw = c
    hit, nx, _, _, _ = square_pen(e.pos[i, 0], e.pos[i, 1], n.x, n.y, C.BOUNCE_SEMI + C.NINJA_RADIUS + 0.1)
    return n, e, counter, jnp.where(hit, wall + nx, wall), sw


def _lg_thwump(level, c, i):
    n, e, counter, wall, sw = c
    horizontal, d = _thwump_axes(level, i)
    x, y = e.pos[i, 0], e.pos[i, 1]
    hit, nx, _, _, _ = square_pen(x, y, n.x, n.y, C.THWUMP_SEMI + C.NINJA_RADIUS + 0.1)
    hit = hit & is_valid_target(n)
    fdx = (C.THWUMP_SEMI + 2) * d
    fdy = C.THWUMP_SEMI - 2
    p1x = jnp.where(horizontal, x + fdx, x - fdy)
    p1y = jnp.where(horizontal, y - fdy, y + fdx)
    p2x = jnp.where(horizontal, x + fdx, x + fdy)
    p2y = jnp.where(horizontal, y + fdy, y + fdx)
    face = overlap_circle_segment(n.x, n.y, C.NINJA_RADIUS + 2, p1x, p1y, p2x, p2y)
    n = kill(n, hit & face)
    return n, e, counter, jnp.where(hit, wall + nx, wall), sw


def _lg_death_ball(level, c, i):
    n, e, counter, wall, sw = c
    x, y = e.pos[i, 0], e.pos[i, 1]
    hit = is_valid_target(n) & overlap(x, y, C.DEATH_BALL_RADIUS_NINJA, n.x, n.y, C.NINJA_RADIUS)
    dx = x - n.x
    dy = y - n.y
    dist = sqrt(dx ** 2 + dy ** 2)
    dist = jnp.where(dist == 0, 1, dist)
    kick = jnp.stack([e.vel[i, 0] + dx / dist * 10, e.vel[i, 1] + dy / dist * 10])
    e = e.replace(vel=e.vel.at[i].set(jnp.where(hit, kick, e.vel[i])))
    return kill(n, hit), e, counter, wall, sw


def _lg_shwump(level, c, i):
    n, e, counter, wall, sw = c
    x, y = e.pos[i, 0], e.pos[i, 1]
    st = e.state[i]
    hit, nx, ny, d1, d2 = square_pen(x, y, n.x, n.y, C.SHWUMP_SEMI + C.NINJA_RADIUS + 0.1)
    mx, my = e.m[i, 0], e.m[i, 1]
    branch = hit & (st <= 1)
    s0 = branch & (st == 0)
    s0_set = s0 & (d2 > 0.2)
    s1_ok = branch & (st == 1) & (mx * nx + my * ny >= 0.01)
    ret_none = branch & (st == 1) & ~s1_ok
    e = e.replace(armed=e.armed.at[i].set(e.armed[i] | s0 | s1_ok),
                  m=e.m.at[i].set(jnp.where(s0_set, jnp.stack([nx, ny]).astype(jnp.int32), e.m[i])),
                  state=e.state.at[i].set(jnp.where(s0_set, 1, st)))
    wall = jnp.where(s0 | s1_ok, wall + nx, wall)
    core = ~branch & overlap(n.x, n.y, C.NINJA_RADIUS, x, y, C.SHWUMP_CORE_RADIUS)
    n = kill(n, core & ~ret_none)
    return n, e, counter, wall, sw


LOGICAL_KIND = {
    C.T_MINE: 1, C.T_MINE_SAFE: 1, C.T_GOLD: 2, C.T_EXIT: 3, C.T_SWITCH: 4, C.T_DOOR_REGULAR: 5,
    C.T_DOOR_LOCKED: 6, C.T_DOOR_TRAP: 7, C.T_LAUNCH_PAD: 8, C.T_ONE_WAY: 9, C.T_DRONE_ZAP: 10,
    C.T_DRONE_MINI: 10, C.T_BOUNCE_BLOCK: 11, C.T_THWUMP: 12, C.T_DEATH_BALL: 13, C.T_SHOVE_THWUMP: 14,
}
_LOGICAL_FNS = [lambda level, c, i: c, _lg_mine, _lg_gold, _lg_exit, _lg_switch, _lg_door_regular, _lg_door_locked,
                _lg_door_trap, _lg_launch_pad, _lg_one_way, _lg_drone, _lg_bounce_block, _lg_thwump,
                _lg_death_ball, _lg_shwump]


def logical_kind_table():
    t = [0] * (C.MAX_ENTITY_TYPE + 1)
    for k, v in LOGICAL_KIND.items():
        t[k] = v
    return jnp.asarray(t, jnp.int32)


# Kinds whose logical collisions the vectorised pass below reproduces exactly (no loop, no sort).
_VECTOR_KINDS = frozenset({1, 2, 3, 4})   # mines (1, 21), gold, exit door, exit switch


def _lex_after(rc, stamp, f):
    """Rows that come after row ``f`` in gather order (bool[E])."""
    rows = jnp.arange(rc.shape[0], dtype=jnp.int32)
    rf, sf = rc[f], stamp[f]
    return (rc > rf) | ((rc == rf) & ((stamp > sf) | ((stamp == sf) & (rows > f))))


def _logical_vectorised(level, n, e, counter, switch_hit, kinds, switch_passes: int = 0):
    """The ordered pass of ``logical_collisions`` for mines, gold, exit doors and exit switches
    as array ops over the table (same results as the row loop).

    None of these moves the ninja, so every overlap test uses the entry position; order matters
    only through the ninja's state and the switches' insertion stamps:
    * the first kill (mine) or win (exit) in gather order sets the state (7 / 8) and, from a
      jump, the fall gravity; after a win no later mine or gold row fires (not a valid target /
      celebrating); after a kill every row behaves as before (state 7 is a valid target);
    * each hit switch re-registers its exit door (row i - 1, never in this pass's list: exit
      doors enter the grid only through their switch) with the next stamp, in gather order.
    """
    (mask, rc, stamp), _ = neighbourhood_rows(level, e, n.x, n.y, kinds > 0)
    px, py = e.pos[:, 0], e.pos[:, 1]
    ov = lambda r: overlap(px, py, r, n.x, n.y, C.NINJA_RADIUS)
    s0 = n.state
    mine_c = mask & (kinds == 1) & (e.state == 0) & ov(C.MINE_RADII[0])
    exit_c = mask & (kinds == 3) & ov(C.EXIT_RADIUS)
    ev = (mine_c | exit_c) & (s0 < 6)
    any_ev = jnp.any(ev)
    f = _lex_first(ev, rc, stamp)
    won = any_ev & exit_c[f]
    blocked = won & _lex_after(rc, stamp, f)                             # rows after the win
    mine_hit = mine_c & is_valid_target(n) & ~blocked
    gold_hit = mask & (kinds == 2) & (s0 != 8) & ~blocked & ov(C.GOLD_RADIUS)
    sw_hit = mask & (kinds == 4) & ov(C.SWITCH_RADIUS)
    n = n.replace(gravity=jnp.where(any_ev & (s0 == 3), C.GRAVITY_FALL, n.gravity),
                  state=jnp.where(any_ev, jnp.where(won, C.ST_CELEBRATING, C.ST_AWAITING_DEATH), s0),
                  gold_collected=n.gold_collected + jnp.sum(gold_hit).astype(n.gold_collected.dtype))
    e = e.replace(state=jnp.where(mine_hit, 1, e.state), active=e.active & ~gold_hit & ~sw_hit)

    if 4 in {LOGICAL_KIND[t] for t in level.entity_types if t in LOGICAL_KIND}:
        # hit switches in gather order: each stamps its door with the next counter value
        def cond(c_):
            return jnp.any(c_[0])

        def body(c_):
            left, e, counter = c_
            i = _lex_first(left, rc, stamp)
            door = i - 1
            e = e.replace(in_grid=e.in_grid.at[door].set(True), stamp=e.stamp.at[door].set(counter),
                          state=e.state.at[door].set(1))
            return left.at[i].set(False), e, counter + 1

        def masked(c_):
            left, e0, counter0 = c_
            left1, e1, counter1 = body(c_)
            any_left = jnp.any(left)
            return (left1 & any_left, jax.tree.map(lambda a, b: jnp.where(any_left, a, b), e1, e0),
                    jnp.where(any_left, counter1, counter0))

        if switch_passes > 0:
            # no loop (a vmapped while-loop reads its predicate back to the host on GPUs)
            c_ = (sw_hit, e, counter)
            for _ in range(switch_passes):
                c_ = masked(c_)
            _, e, counter = c_
        else:
            _, e, counter = lax.while_loop(cond, body, (sw_hit, e, counter))
        switch_hit = switch_hit | jnp.any(sw_hit)
    return n, e, counter, jnp.zeros_like(n.x), switch_hit


def logical_collisions(level, n, e, counter, switch_hit, vectorised: bool = True, switch_passes: int = 0):
    """The ninja's logical collisions with the entities of the 3 x 3 cells around it, in
    gather order. ``vectorised`` (static): levels whose traced types all have vectorised
    kinds (mines, gold, exit, switch: generated levels) skip the sort and the row loop."""
    kinds = logical_kind_table()[level.ent_type]
    present_kinds = {LOGICAL_KIND[t] for t in level.entity_types if t in LOGICAL_KIND}
    if vectorised and present_kinds and present_kinds <= _VECTOR_KINDS:
        return _logical_vectorised(level, n, e, counter, switch_hit, kinds, switch_passes)
    order, count = neighbourhood_rows(level, e, n.x, n.y, kinds > 0)
    present = sorted({LOGICAL_KIND[t] for t in level.entity_types if t in LOGICAL_KIND})
    wall = jnp.zeros_like(n.x)
    if not present:
        return n, e, counter, wall, switch_hit
    branches = [lambda lv, c, i, f=_LOGICAL_FNS[k]: f(lv, c, i) for k in present]
    remap = jnp.zeros(len(_LOGICAL_FNS), jnp.int32).at[jnp.asarray(present)].set(
        jnp.arange(len(present), dtype=jnp.int32))
    if len(branches) == 1:
        fn = lambda c, i: branches[0](level, c, i)
    elif level.max_entities < 2:
        def fn(c, i):
            return lax.switch(remap[kinds[i]], branches, level, c, i)
    else:
        # Each branch sees only rows (i - 1, i) (a switch also writes its door, row i - 1), so
        # the per-row dispatch selects and copies two rows instead of whole tables.
        def fn(c, i):
            n, e, counter, wall, sw = c
            start, lv, ew = _row_window(level, e, i)
            n, ew, counter, wall, sw = lax.switch(remap[kinds[i]], branches, lv, (n, ew, counter, wall, sw),
                                                  i - start)
            return n, _write_window(e, start, ew), counter, wall, sw

    n, e, counter, wall, switch_hit = for_rows(order, count, fn, (n, e, counter, wall, switch_hit))
    return n, e, counter, wall, switch_hit


_LEVEL_ROW_FIELDS = ("ent_type", "ent_pos", "ent_orient", "ent_mode", "ent_in_grid", "ent_stamp",
                     "ent_ball_index", "door_seg", "door_cell", "door_vertical")


def _row_window(level, e: Entities, i, width: int = 2):
    """Rows ``start .. start + width - 1`` (ending at row i where possible) of the level's
    entity fields and of the entity table: (start, level view, entity view)."""
    start = jnp.clip(i - (width - 1), 0, level.max_entities - width)
    sl = lambda a: lax.dynamic_slice_in_dim(a, start, width, 0)
    return start, level.replace(**{f: sl(getattr(level, f)) for f in _LEVEL_ROW_FIELDS}), jax.tree.map(sl, e)


def _write_window(e: Entities, start, ew: Entities) -> Entities:
    return jax.tree.map(lambda a, w: lax.dynamic_update_slice_in_dim(a, w, start, 0), e, ew)
