"""Death ball (spec §6.4.7): steers toward the ninja, collides with tiles and pushes later balls.

Per-row functions take and return the phase's carry and act on row ``i``.

Section marks (§) cite docs/specs/npp.md.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from envs.npp import constants as C
from envs.npp.entity_common import for_rows, grid_move, overlap, rows_in_order
from envs.npp.geometry import gather_segments, ray_times, single_closest_point, sqrt
from envs.npp.ninja import is_valid_target, kill


def _ball_closest(level, e, x, y, dtype):
    r = C.DEATH_BALL_RADIUS_TILES
    segs = gather_segments(level, e.door_closed, x - r, y - r, x + r, y + r, 2, dtype)   # a 16 px box: 2 x 2 cells
    return single_closest_point(segs, x, y)


def think_death_ball(level, carry, i):
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
    tvx = vx + dx * C.DEATH_BALL_ACCEL
    tvy = vy + dy * C.DEATH_BALL_ACCEL
    s = sqrt(tvx ** 2 + tvy ** 2)
    m = (s - C.DEATH_BALL_MAX_SPEED) * C.DEATH_BALL_EXCESS_KEEP
    m = jnp.where(m <= C.DEATH_BALL_EXCESS_MIN, 0, m)
    m = m + C.DEATH_BALL_MAX_SPEED
    s_s = jnp.where(s > C.DEATH_BALL_MAX_SPEED, s, 1)
    tvx = jnp.where(s > C.DEATH_BALL_MAX_SPEED, tvx / s_s * m, tvx)
    tvy = jnp.where(s > C.DEATH_BALL_MAX_SPEED, tvy / s_s * m, tvy)
    vx = jnp.where(valid, tvx, vx * C.DEATH_BALL_IDLE_DRAG)
    vy = jnp.where(valid, tvy, vy * C.DEATH_BALL_IDLE_DRAG)
    # sweep against tiles, over the swept box plus a margin (at most 3 x 3 cells)
    xn, yn = x + vx, y + vy
    mg = C.DEATH_BALL_SWEEP_MARGIN
    segs = gather_segments(level, e.door_closed, jnp.minimum(x, xn) - mg, jnp.minimum(y, yn) - mg,
                           jnp.maximum(x, xn) + mg, jnp.maximum(y, yn) + mg, 3, dtype)
    t = jnp.minimum(jnp.min(ray_times(segs, x, y, vx, vy, C.DEATH_BALL_SWEEP_RADIUS)), 1)
    x = x + t * vx
    y = y + t * vy

    # depenetration, segments re-gathered each iteration
    def cond(c):
        it, stop = c[0], c[1]
        return (it < C.DEATH_BALL_DEPEN_ITERATIONS) & ~stop

    def body(c):
        it, _, _, x, y, sx, sy = c
        res, a, b = _ball_closest(level, e, x, y, dtype)
        ddx = x - a
        ddy = y - b
        dist = sqrt(ddx ** 2 + ddy ** 2)
        pen = C.DEATH_BALL_RADIUS_TILES - dist * res
        brk = (res == 0) | (pen < C.DEATH_BALL_MIN_PEN)
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
    k = jnp.where(sqrt(vx ** 2 + vy ** 2) <= C.DEATH_BALL_SLOW_BOUNCE, 1, 2)
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
        hit = dist < C.DEATH_BALL_PUSH_DIST
        dist_s = jnp.where(dist == 0, 1, dist)
        px = ddx / dist_s * C.DEATH_BALL_PUSH
        py = ddy / dist_s * C.DEATH_BALL_PUSH
        bvx = jnp.where(hit, bvx + px, bvx)
        bvy = jnp.where(hit, bvy + py, bvy)
        e2 = e2.replace(vel=e2.vel.at[j].set(jnp.where(hit, e2.vel[j] - jnp.stack([px, py]), e2.vel[j])))
        return e2, bvx, bvy

    e2, bvx, bvy = for_rows(order, count, push, (e2, vx_b, vy_b))
    e2 = e2.replace(vel=e2.vel.at[i].set(jnp.stack([bvx, bvy])))
    e3, counter3 = grid_move(e2, i, counter)
    e = jax.tree.map(lambda p, q: jnp.where(abort, p, q), e_abort, e3)
    return n, e, jnp.where(abort, counter, counter3)


def logical_death_ball(level, c, i):
    n, e, counter, wall, sw = c
    x, y = e.pos[i, 0], e.pos[i, 1]
    hit = is_valid_target(n) & overlap(x, y, C.DEATH_BALL_RADIUS_NINJA, n.x, n.y, C.NINJA_RADIUS)
    dx = x - n.x
    dy = y - n.y
    dist = sqrt(dx ** 2 + dy ** 2)
    dist = jnp.where(dist == 0, 1, dist)
    kick = jnp.stack([e.vel[i, 0] + dx / dist * C.DEATH_BALL_KICK, e.vel[i, 1] + dy / dist * C.DEATH_BALL_KICK])
    e = e.replace(vel=e.vel.at[i].set(jnp.where(hit, kick, e.vel[i])))
    return kill(n, hit), e, counter, wall, sw
