"""Pickups and triggers (spec §6.4.3): toggle mines, gold, exit door and switch, launch and boost pads.

Per-row functions take and return the phase's carry and act on row ``i``: move
``(ninja, ents, stamp_counter)``, logical collision ``(ninja, ents, stamp_counter, wall_sum,
switch_hit)``. Toggle mines, the most numerous type, think with one vectorised op over the table
(a mine's think touches only itself).

Section marks (§) cite docs/specs/npp.md.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from envs.npp import constants as C
from envs.npp.entity_common import orient_vec, overlap, type_in
from envs.npp.geometry import sqrt
from envs.npp.ninja import is_valid_target, kill, win

# ----------------------------------------------------------------------------- toggle mines (1, 21)


def think_mines(level, n, e):
    is_mine = type_in(level, (C.T_MINE, C.T_MINE_SAFE)) & e.active
    s = e.state
    r = jnp.asarray(C.MINE_RADII, n.x.dtype)[jnp.clip(s, C.MINE_TOGGLED, C.MINE_TOGGLING)]
    ov = overlap(e.pos[:, 0], e.pos[:, 1], r, n.x, n.y, C.NINJA_RADIUS)
    valid = is_valid_target(n)
    s_valid = jnp.where((s == C.MINE_UNTOGGLED) & ov, C.MINE_TOGGLING,
                        jnp.where((s == C.MINE_TOGGLING) & ~ov, C.MINE_TOGGLED, s))
    s_invalid = jnp.where((s == C.MINE_TOGGLING) & (n.state == C.ST_DEAD), C.MINE_UNTOGGLED, s)
    new = jnp.where(valid, s_valid, s_invalid)
    return e.replace(state=jnp.where(is_mine, new, s))


def logical_mine(level, c, i):
    n, e, counter, wall, sw = c
    hit = is_valid_target(n) & (e.state[i] == C.MINE_TOGGLED) & overlap(
        e.pos[i, 0], e.pos[i, 1], C.MINE_RADII[C.MINE_TOGGLED], n.x, n.y, C.NINJA_RADIUS)
    e = e.replace(state=e.state.at[i].set(jnp.where(hit, C.MINE_UNTOGGLED, e.state[i])))
    return kill(n, hit), e, counter, wall, sw


# ----------------------------------------------------------------------------- gold (2)


def logical_gold(level, c, i):
    n, e, counter, wall, sw = c
    hit = (n.state != C.ST_CELEBRATING) & overlap(e.pos[i, 0], e.pos[i, 1], C.GOLD_RADIUS, n.x, n.y,
                                                  C.NINJA_RADIUS)
    n = n.replace(gold_collected=n.gold_collected + hit.astype(n.gold_collected.dtype))
    e = e.replace(active=e.active.at[i].set(e.active[i] & ~hit))
    return n, e, counter, wall, sw


# ----------------------------------------------------------------------------- exit door (3) and switch (4)


def logical_exit(level, c, i):
    n, e, counter, wall, sw = c
    hit = overlap(e.pos[i, 0], e.pos[i, 1], C.EXIT_RADIUS, n.x, n.y, C.NINJA_RADIUS)
    return win(n, hit), e, counter, wall, sw


def logical_switch(level, c, i):
    n, e, counter, wall, sw = c
    hit = overlap(e.pos[i, 0], e.pos[i, 1], C.SWITCH_RADIUS, n.x, n.y, C.NINJA_RADIUS)
    door = i - 1   # the switch follows its door in list 3
    e = e.replace(active=e.active.at[i].set(e.active[i] & ~hit),
                  in_grid=e.in_grid.at[door].set(e.in_grid[door] | hit),
                  stamp=e.stamp.at[door].set(jnp.where(hit, counter, e.stamp[door])),
                  state=e.state.at[door].set(jnp.where(hit, C.EXIT_DOOR_SWITCH_HIT, e.state[door])))
    return n, e, counter + hit.astype(counter.dtype), wall, sw | hit


# ----------------------------------------------------------------------------- launch pad (10)


def logical_launch_pad(level, c, i):
    n, e, counter, wall, sw = c
    nv = orient_vec(level.ent_orient[i], n.x.dtype)
    nx, ny = nv[0], nv[1]
    x, y = e.pos[i, 0], e.pos[i, 1]
    hit = is_valid_target(n) & overlap(x, y, C.LAUNCH_PAD_RADIUS, n.x, n.y, C.NINJA_RADIUS) & \
        ((x - (n.x - C.NINJA_RADIUS * nx)) * nx + (y - (n.y - C.NINJA_RADIUS * ny)) * ny >= C.LAUNCH_PAD_MIN_FACING)
    k = jnp.where(ny < 0, 1 - ny, 1)
    bx = nx * C.LAUNCH_PAD_BOOST
    by = ny * C.LAUNCH_PAD_BOOST * k
    # (b * 2) / 3, not b * (2 / 3): the two differ in the last bit for the diagonals (§6.4.3)
    xb = bx * 2 / 3
    yb = by * 2 / 3
    s = sqrt(xb ** 2 + yb ** 2)
    s = jnp.where(s > 0, s, 1)
    # Falling unconditionally, so a pad also revives a ninja killed earlier in the loop (§6.4.8 Q3).
    n2 = n.replace(x=n.x + xb, y=n.y + yb, vx=xb, vy=yb, floor_count=jnp.zeros_like(n.floor_count),
                   floor_buffer=jnp.full_like(n.floor_buffer, -1), lp_boost_x=xb / s, lp_boost_y=yb / s,
                   lp_buffer=jnp.zeros_like(n.lp_buffer),
                   gravity=jnp.where(n.state == C.ST_JUMPING, C.GRAVITY_FALL, n.gravity),
                   state=jnp.full_like(n.state, C.ST_FALLING))
    n = jax.tree.map(lambda p, q: jnp.where(hit, p, q), n2, n)
    return n, e, counter, wall, sw


# ----------------------------------------------------------------------------- boost pad (24)


def move_boost_pad(level, carry, i):
    n, e, counter = carry
    valid = is_valid_target(n)
    ov = overlap(e.pos[i, 0], e.pos[i, 1], C.BOOST_PAD_RADIUS, n.x, n.y, C.NINJA_RADIUS)
    first = valid & ov & ~e.touching[i]
    s = sqrt(n.vx ** 2 + n.vy ** 2)
    boost = first & (s > 0)
    s_s = jnp.where(s > 0, s, 1)
    bx = C.BOOST_PAD_SPEEDUP * n.vx / s_s
    by = C.BOOST_PAD_SPEEDUP * n.vy / s_s
    n = n.replace(vx=jnp.where(boost, n.vx + bx, n.vx), vy=jnp.where(boost, n.vy + by, n.vy))
    e = e.replace(touching=e.touching.at[i].set(valid & ov))
    return n, e, counter
