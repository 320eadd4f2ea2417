"""Drones (spec §6.4.6): zap (14) and mini (26) drones, which patrol in grid steps and kill on contact.

Per-row functions take and return the phase's carry and act on row ``i``; ``tab`` is the pair of
grid-edge tables (:func:`envs.npp.grid_edges.edge_tables`).

Section marks (§) cite docs/specs/npp.md.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from envs.npp import constants as C
from envs.npp.entity_common import grid_move, ifloor, overlap
from envs.npp.geometry import sqrt
from envs.npp.grid_edges import EDGE_SPAN, is_empty_column, is_empty_row
from envs.npp.ninja import is_valid_target, kill

_NUM_DIRS = len(C.DRONE_DIRS)


def _drone_try_dir(tab, d, x, y, R, G):
    """Can the drone move one grid step in direction d from (x, y)? (and the new target)"""
    dirs = jnp.asarray(C.DRONE_DIRS)
    ux, uy = dirs[d, 0], dirs[d, 1]
    nx = x + G * ux
    ny = y + G * uy
    horiz = uy == 0
    c0 = jnp.where(horiz, ifloor((x + ux * R) / C.HALF_CELL), ifloor((y + uy * R) / C.HALF_CELL))
    c_end = jnp.where(horiz, ifloor((nx + ux * R) / C.HALF_CELL), ifloor((ny + uy * R) / C.HALF_CELL))
    q1 = jnp.where(horiz, ifloor((y - R) / C.HALF_CELL), ifloor((x - R) / C.HALF_CELL))
    q2 = jnp.where(horiz, ifloor((y + R) / C.HALF_CELL), ifloor((x + R) / C.HALF_CELL))
    step = jnp.where(horiz, ux, uy)
    # while c != c_end: test c, c += step  (c_end - c0 has the sign of step; <= 3 steps)
    cs = c0 + EDGE_SPAN * step
    go = EDGE_SPAN < jnp.abs(c_end - c0)
    empty = jax.vmap(lambda c: jnp.where(horiz, is_empty_column(tab, c, q1, q2, ux),
                                         is_empty_row(tab, q1, q2, c, uy)))(cs)
    return jnp.all(~go | empty), nx, ny


def move_drone(level, tab, carry, i):
    n, e, counter = carry
    t = level.ent_type[i]
    zap = t == C.T_DRONE_ZAP
    R = jnp.where(zap, C.DRONE_RADIUS[C.T_DRONE_ZAP], C.DRONE_RADIUS[C.T_DRONE_MINI]).astype(n.x.dtype)
    G = jnp.where(zap, C.DRONE_GRID[C.T_DRONE_ZAP], C.DRONE_GRID[C.T_DRONE_MINI]).astype(n.x.dtype)
    speed = jnp.where(zap, C.DRONE_SPEED[C.T_DRONE_ZAP], C.DRONE_SPEED[C.T_DRONE_MINI]).astype(n.x.dtype)
    dirs = jnp.asarray(C.DRONE_DIRS)
    d = e.dir[i]
    ux, uy = dirs[d, 0], dirs[d, 1]
    sx, sy = speed * ux, speed * uy
    x, y = e.pos[i, 0], e.pos[i, 1]
    tx, ty = e.target[i, 0], e.target[i, 1]
    dx, dy = tx - x, ty - y
    dist = sqrt(dx ** 2 + dy ** 2)
    arrive = (dist < C.DRONE_ARRIVE_EPS) | (dx * (tx - (x + sx)) + dy * (ty - (y + sy)) < 0)
    # arrival branch: snap to target, choose a new direction (may fail: wait)
    mode = jnp.clip(level.ent_mode[i], 0, len(C.DRONE_PREF) - 1)
    pref = jnp.asarray(C.DRONE_PREF)[mode]
    found = jnp.array(False)
    nd = d
    ntx, nty = tx, ty
    cands = (d + pref) % _NUM_DIRS
    oks, cxs, cys = jax.vmap(lambda c: _drone_try_dir(tab, c, tx, ty, R, G))(cands)
    for k in range(_NUM_DIRS):
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


def logical_drone(level, c, i):
    n, e, counter, wall, sw = c
    R = jnp.where(level.ent_type[i] == C.T_DRONE_ZAP, C.DRONE_RADIUS[C.T_DRONE_ZAP], C.DRONE_RADIUS[C.T_DRONE_MINI])
    hit = is_valid_target(n) & overlap(e.pos[i, 0], e.pos[i, 1], R, n.x, n.y, C.NINJA_RADIUS)
    return kill(n, hit), e, counter, wall, sw
