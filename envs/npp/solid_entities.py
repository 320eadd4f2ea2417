"""Solid entities (spec §6.4.5): one-way platform, bounce block, thwump and shove thwump.

These are the only types with physical collisions (§3.7), run in every substep by
:func:`collide_vs_objects`. Per-row functions take and return the phase's carry and act on row
``i``; ``tab`` is the pair of grid-edge tables (:func:`envs.npp.grid_edges.edge_tables`).

Section marks (§) cite docs/specs/npp.md.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from envs.npp import constants as C
from envs.npp.entity_common import (
    for_rows,
    grid_move,
    ifloor,
    orient_vec,
    overlap,
    overlap_circle_segment,
    square_pen,
)
from envs.npp.grid_edges import is_empty_column, is_empty_row
from envs.npp.ninja import add_contact, is_valid_target, kill
from envs.npp.state import Ninja

PHYSICAL_TYPES = (C.T_ONE_WAY, C.T_BOUNCE_BLOCK, C.T_THWUMP, C.T_SHOVE_THWUMP)

# ----------------------------------------------------------------------------- one-way platform (11)


def one_way_depen(level, n: Ninja, e, i):
    nv = orient_vec(level.ent_orient[i], n.x.dtype)
    nx, ny = nv[0], nv[1]
    x, y = e.pos[i, 0], e.pos[i, 1]
    dx = n.x - x
    dy = n.y - y
    lat = dy * nx - dx * ny
    toward = (n.vy * nx - n.vx * ny) * lat
    reach = jnp.where(toward < 0, C.ONE_WAY_REACH_TOWARD, C.ONE_WAY_REACH_AWAY) * C.NINJA_RADIUS + C.ONE_WAY_SEMI
    nd = dx * nx + dy * ny
    nd_old = (n.x_old - x) * nx + (n.y_old - y) * ny
    hit = (jnp.abs(lat) < reach) & (0 < nd) & (nd <= C.NINJA_RADIUS) & (n.vx * nx + n.vy * ny <= 0) & \
        (C.NINJA_RADIUS - nd_old <= C.ONE_WAY_MAX_OLD_DEPTH)
    return hit, nx, ny, C.NINJA_RADIUS - nd


def logical_one_way(level, c, i):
    n, e, counter, wall, sw = c
    hit, nx, _, _ = one_way_depen(level, n, e, i)
    wall = jnp.where(hit & (jnp.abs(nx) == 1), wall + nx, wall)
    return n, e, counter, wall, sw


# ----------------------------------------------------------------------------- bounce block (17)


def move_bounce_block(level, carry, i):
    n, e, counter = carry
    ox, oy = level.ent_pos[i, 0], level.ent_pos[i, 1]
    vx = e.vel[i, 0] * C.BOUNCE_DAMPING
    vy = e.vel[i, 1] * C.BOUNCE_DAMPING
    x = e.pos[i, 0] + vx
    y = e.pos[i, 1] + vy
    fx = C.BOUNCE_STIFFNESS * (ox - x)
    fy = C.BOUNCE_STIFFNESS * (oy - y)
    x = x + fx
    y = y + fy
    vx = vx + fx
    vy = vy + fy
    e = e.replace(pos=e.pos.at[i].set(jnp.stack([x, y])), vel=e.vel.at[i].set(jnp.stack([vx, vy])))
    e, counter = grid_move(e, i, counter)
    return n, e, counter


def logical_bounce_block(level, c, i):
    n, e, counter, wall, sw = c
    hit, nx, _, _, _ = square_pen(e.pos[i, 0], e.pos[i, 1], n.x, n.y,
                                  C.BOUNCE_SEMI + C.NINJA_RADIUS + C.LOGICAL_SEMI_PAD)
    return n, e, counter, jnp.where(hit, wall + nx, wall), sw


# ----------------------------------------------------------------------------- thwump (20)


def thwump_axes(level, i):
    """(horizontal, facing +-1) from the orientation: o in (0, 4) moves along x; o in (0, 2) faces +."""
    o = level.ent_orient[i]
    horizontal = (o == 0) | (o == 4)
    d = jnp.where((o == 0) | (o == 2), 1, -1)
    return horizontal, d


def move_thwump(level, tab, carry, i):
    n, e, counter = carry
    horizontal, d = thwump_axes(level, i)
    st = e.state[i]
    x, y = e.pos[i, 0], e.pos[i, 1]
    ox, oy = level.ent_pos[i, 0], level.ent_pos[i, 1]
    a = jnp.where(horizontal, x, y)
    b = jnp.where(horizontal, y, x)
    a_origin = jnp.where(horizontal, ox, oy)
    speed = jnp.where(st == C.THWUMP_CHARGING, C.THWUMP_FORWARD_SPEED, C.THWUMP_BACKWARD_SPEED)
    sd = d * st   # the state codes are the sign of motion relative to the facing
    a_new = a + speed * sd
    snap = (st == C.THWUMP_RETREATING) & ((a_new - a_origin) * (a - a_origin) < 0)
    c = ifloor((a + sd * C.THWUMP_FACE) / C.HALF_CELL)
    c_new = ifloor((a_new + sd * C.THWUMP_FACE) / C.HALF_CELL)
    k1 = ifloor((b - C.THWUMP_FACE) / C.HALF_CELL)
    k2 = ifloor((b + C.THWUMP_FACE) / C.HALF_CELL)
    empty = jnp.where(horizontal, is_empty_column(tab, c, k1, k2, sd), is_empty_row(tab, k1, k2, c, sd))
    blocked = (c != c_new) & ~empty
    moving = st != C.THWUMP_REST
    a_out = jnp.where(snap, a_origin, jnp.where(blocked, a, a_new))
    st_out = jnp.where(snap, C.THWUMP_REST, jnp.where(blocked, C.THWUMP_RETREATING, st))
    do_move = moving & ~snap & ~blocked
    a_fin = jnp.where(moving, a_out, a)
    newpos = jnp.where(horizontal, jnp.stack([a_fin, y]), jnp.stack([x, a_fin]))
    e2 = e.replace(pos=e.pos.at[i].set(newpos), state=e.state.at[i].set(jnp.where(moving, st_out, st)))
    e3, counter3 = grid_move(e2, i, counter)
    e = jax.tree.map(lambda p, q: jnp.where(do_move, p, q), e3, e2)
    return n, e, jnp.where(do_move, counter3, counter)


def think_thwump(level, tab, carry, i):
    n, e, counter = carry
    horizontal, d = thwump_axes(level, i)
    x, y = e.pos[i, 0], e.pos[i, 1]
    a = jnp.where(horizontal, x, y)
    b = jnp.where(horizontal, y, x)
    na = jnp.where(horizontal, n.x, n.y)
    nb = jnp.where(horizontal, n.y, n.x)
    go = (e.state[i] == C.THWUMP_REST) & is_valid_target(n) & \
        (jnp.abs(b - nb) < 2 * (C.THWUMP_SEMI + C.NINJA_RADIUS))
    nc = ifloor(na / C.HALF_CELL)
    t0 = ifloor((a - d * C.THWUMP_FACE) / C.HALF_CELL)
    k1 = ifloor((b - C.THWUMP_FACE) / C.HALF_CELL)
    k2 = ifloor((b + C.THWUMP_FACE) / C.HALF_CELL)
    dd0 = nc - t0

    def empty(t):
        return jnp.where(horizontal, is_empty_column(tab, t, k1, k2, d), is_empty_row(tab, k1, k2, t, d))

    # for i in range(THWUMP_SIGHT_STEPS): if not empty(t): dd = nc - t; break; t += d
    def cond(c):
        it, _, broke, _ = c
        return (it < C.THWUMP_SIGHT_STEPS) & ~broke

    def body(c):
        it, t, _, dd = c
        blocked = ~empty(t)
        return (jnp.where(blocked, it, it + 1), jnp.where(blocked, t, t + d), blocked,
                jnp.where(blocked, nc - t, dd))

    scan_ok = go & (dd0 * d >= 0)
    it, _, broke, dd = lax.while_loop(cond, body, (jnp.int32(0), t0, ~scan_ok, dd0))
    last_i = jnp.where(broke, it, C.THWUMP_SIGHT_STEPS - 1)
    charge = scan_ok & (last_i > 0) & (dd * d <= 0)
    e = e.replace(state=e.state.at[i].set(jnp.where(charge, C.THWUMP_CHARGING, e.state[i])))
    return n, e, counter


def logical_thwump(level, c, i):
    n, e, counter, wall, sw = c
    horizontal, d = thwump_axes(level, i)
    x, y = e.pos[i, 0], e.pos[i, 1]
    hit, nx, _, _, _ = square_pen(x, y, n.x, n.y, C.THWUMP_SEMI + C.NINJA_RADIUS + C.LOGICAL_SEMI_PAD)
    hit = hit & is_valid_target(n)
    # the deadly face: a 14 px segment 11 px in front, against a circle of radius 12 (§6.4.5)
    fdx = (C.THWUMP_SEMI + 2) * d
    fdy = C.THWUMP_SEMI - 2
    p1x = jnp.where(horizontal, x + fdx, x - fdy)
    p1y = jnp.where(horizontal, y - fdy, y + fdx)
    p2x = jnp.where(horizontal, x + fdx, x + fdy)
    p2y = jnp.where(horizontal, y + fdy, y + fdx)
    face = overlap_circle_segment(n.x, n.y, C.NINJA_RADIUS + 2, p1x, p1y, p2x, p2y)
    n = kill(n, hit & face)
    return n, e, counter, jnp.where(hit, wall + nx, wall), sw


# ----------------------------------------------------------------------------- shove thwump (28)


def _shwump_step(level, tab, e, i, counter, sx, sy, speed):
    x, y = e.pos[i, 0], e.pos[i, 1]
    horiz = e.m[i, 1] == 0          # the stored contact normal picks the axis
    x_new = x + sx * speed
    y_new = y + sy * speed
    cx, cx_new = ifloor(x / C.HALF_CELL), ifloor(x_new / C.HALF_CELL)
    cy, cy_new = ifloor(y / C.HALF_CELL), ifloor(y_new / C.HALF_CELL)
    r = C.SHWUMP_CORE_RADIUS
    blocked_h = (cx != cx_new) & ~is_empty_column(tab, cx, ifloor((y - r) / C.HALF_CELL),
                                                  ifloor((y + r) / C.HALF_CELL), sx)
    blocked_v = (cy != cy_new) & ~is_empty_row(tab, ifloor((x - r) / C.HALF_CELL), ifloor((x + r) / C.HALF_CELL),
                                               cy, sy)
    blocked = jnp.where(horiz, blocked_h, blocked_v)
    newpos = jnp.where(horiz, jnp.stack([x_new, y]), jnp.stack([x, y_new]))
    e_b = e.replace(state=e.state.at[i].set(C.SHWUMP_RETREATING))
    e_m = e.replace(pos=e.pos.at[i].set(newpos))
    e_m, counter_m = grid_move(e_m, i, counter)
    e = jax.tree.map(lambda p, q: jnp.where(blocked, p, q), e_b, e_m)
    return e, jnp.where(blocked, counter, counter_m)


def think_shwump(level, tab, carry, i):
    n, e, counter = carry
    st = e.state[i]
    # armed: waits one think; otherwise it starts launching and falls through to that step
    wait = (st == C.SHWUMP_ARMED) & e.armed[i]
    e = e.replace(armed=e.armed.at[i].set(jnp.where(wait, False, e.armed[i])),
                  state=e.state.at[i].set(jnp.where((st == C.SHWUMP_ARMED) & ~wait, C.SHWUMP_LAUNCHING, st)))
    st = e.state[i]
    ox, oy = level.ent_pos[i, 0], level.ent_pos[i, 1]
    x, y = e.pos[i, 0], e.pos[i, 1]
    mx, my = e.m[i, 0], e.m[i, 1]
    far = jnp.abs(x - ox) + jnp.abs(y - oy) >= C.SHWUMP_HOME_DIST
    e_ret, c_ret = _shwump_step(level, tab, e, i, counter, mx, my, C.SHWUMP_RETREAT_SPEED)
    e_home = e.replace(pos=e.pos.at[i].set(jnp.stack([ox, oy])), state=e.state.at[i].set(C.SHWUMP_REST))
    e_launch, c_launch = _shwump_step(level, tab, e, i, counter, -mx, -my, C.SHWUMP_LAUNCH_SPEED)
    pick = lambda p, q, c: jax.tree.map(lambda a, b: jnp.where(c, a, b), p, q)
    e3 = pick(e_ret, e_home, far)
    c3 = jnp.where(far, c_ret, counter)
    e_out = pick(e3, pick(e_launch, e, st == C.SHWUMP_LAUNCHING), (st == C.SHWUMP_RETREATING) & ~wait)
    c_out = jnp.where((st == C.SHWUMP_RETREATING) & ~wait, c3,
                      jnp.where((st == C.SHWUMP_LAUNCHING) & ~wait, c_launch, counter))
    e_out = pick(e, e_out, wait)
    return n, e_out, c_out


def logical_shwump(level, c, i):
    n, e, counter, wall, sw = c
    x, y = e.pos[i, 0], e.pos[i, 1]
    st = e.state[i]
    hit, nx, ny, _, d2 = square_pen(x, y, n.x, n.y, C.SHWUMP_SEMI + C.NINJA_RADIUS + C.LOGICAL_SEMI_PAD)
    mx, my = e.m[i, 0], e.m[i, 1]
    branch = hit & (st <= C.SHWUMP_ARMED)
    s0 = branch & (st == C.SHWUMP_REST)
    s0_set = s0 & (d2 > C.SHWUMP_MIN_SIDE_OVERLAP)
    s1_ok = branch & (st == C.SHWUMP_ARMED) & (mx * nx + my * ny >= C.SHWUMP_MIN_SIDE_DOT)
    ret_none = branch & (st == C.SHWUMP_ARMED) & ~s1_ok
    e = e.replace(armed=e.armed.at[i].set(e.armed[i] | s0 | s1_ok),
                  m=e.m.at[i].set(jnp.where(s0_set, jnp.stack([nx, ny]).astype(jnp.int32), e.m[i])),
                  state=e.state.at[i].set(jnp.where(s0_set, C.SHWUMP_ARMED, st)))
    wall = jnp.where(s0 | s1_ok, wall + nx, wall)
    # the core test is reached only without square contact in states 0-1, or in states 2-3
    core = ~branch & overlap(n.x, n.y, C.NINJA_RADIUS, x, y, C.SHWUMP_CORE_RADIUS)
    n = kill(n, core & ~ret_none)
    return n, e, counter, wall, sw


# ----------------------------------------------------------------------------- physical collisions


def physical_collision(level, carry, i):
    """One solid entity's physical collision and the ninja's response (spec §3.7)."""
    n, e = carry
    t = level.ent_type[i]
    x, y = e.pos[i, 0], e.pos[i, 1]
    semi_bb = C.BOUNCE_SEMI + C.NINJA_RADIUS
    # one-way
    ow_hit, ow_nx, ow_ny, ow_d = one_way_depen(level, n, e, i)
    # squares
    semi = jnp.where(t == C.T_SHOVE_THWUMP, C.SHWUMP_SEMI + C.NINJA_RADIUS, semi_bb)
    sq_hit, sq_nx, sq_ny, sq_d1, _ = square_pen(x, y, n.x, n.y, semi.astype(n.x.dtype))
    mx, my = e.m[i, 0], e.m[i, 1]
    sh_ok = (e.state[i] <= C.SHWUMP_ARMED) & ((e.state[i] == C.SHWUMP_REST) |
                                               (mx * sq_nx + my * sq_ny >= C.SHWUMP_MIN_SIDE_DOT))
    is_ow = t == C.T_ONE_WAY
    is_bb = t == C.T_BOUNCE_BLOCK
    is_th = t == C.T_THWUMP
    is_sh = t == C.T_SHOVE_THWUMP
    hit = jnp.where(is_ow, ow_hit, sq_hit & jnp.where(is_sh, sh_ok, True))
    nx = jnp.where(is_ow, ow_nx, sq_nx)
    ny = jnp.where(is_ow, ow_ny, sq_ny)
    d1 = jnp.where(is_ow, ow_d, jnp.where(is_bb, sq_d1 * C.BOUNCE_NINJA_SHARE, sq_d1))
    # a bounce block takes its share of the push itself
    bb = hit & is_bb
    push = jnp.stack([nx * sq_d1 * C.BOUNCE_BLOCK_SHARE, ny * sq_d1 * C.BOUNCE_BLOCK_SHARE])
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
    """Physical collisions with the rows of ``order`` (gathered once per frame, §3.6)."""
    return for_rows(order, count, lambda c, i: physical_collision(level, c, i), (n, e))
