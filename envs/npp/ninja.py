"""Ninja physics: integrate, pre-collision, tile sweep + depenetration, post-collision, think.

Spec §3.4-§3.12. Each function maps a :class:`Ninja` to a new one; branches of the reference
are evaluated as masked selects so everything vmaps. Expressions keep nclone's evaluation
order (``a*b*c`` is ``(a*b)*c``) for float64 bit-exactness.

Section marks (§) cite docs/specs/npp.md.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from envs.npp import constants as C
from envs.npp.geometry import (
    closest_points,
    gather_segments,
    single_closest_point,
    sqrt,
    sweep_circle_vs_tiles,
)
from envs.npp.state import Ninja


def select(pred, a, b):
    """Elementwise pytree select (``pred`` is a scalar bool)."""
    return jax.tree.map(lambda x, y: jnp.where(pred, x, y), a, b)


def kill(n: Ninja, cond) -> Ninja:
    """``Ninja.kill``: only below state 6; leaves a jump's gravity; state 7 (awaiting death)."""
    ok = cond & (n.state < 6)
    return n.replace(gravity=jnp.where(ok & (n.state == 3), C.GRAVITY_FALL, n.gravity),
                     state=jnp.where(ok, C.ST_AWAITING_DEATH, n.state))


def win(n: Ninja, cond) -> Ninja:
    ok = cond & (n.state < 6)
    return n.replace(gravity=jnp.where(ok & (n.state == 3), C.GRAVITY_FALL, n.gravity),
                     state=jnp.where(ok, C.ST_CELEBRATING, n.state))


def is_valid_target(n: Ninja):
    return (n.state != 6) & (n.state != 8) & (n.state != 9)


# ----------------------------------------------------------------------------- integrate / pre


def integrate(n: Ninja) -> Ninja:
    vx = n.vx * n.drag
    vy = n.vy * n.drag
    vy = vy + n.gravity
    return n.replace(vx=vx, vy=vy, x_old=n.x, y_old=n.y, x=n.x + vx, y=n.y + vy)


def pre_collision(n: Ninja) -> Ninja:
    z = jnp.zeros_like(n.x)
    zi = jnp.zeros_like(n.floor_count)
    return n.replace(vx_old=n.vx, vy_old=n.vy, floor_count=zi, ceil_count=zi,
                     floor_sum_x=z, floor_sum_y=z, ceil_sum_x=z, ceil_sum_y=z,
                     is_crushable=jnp.zeros_like(n.is_crushable), x_crush=z, y_crush=z, crush_len=z)


def add_contact(n: Ninja, cond, nx, ny, dy_test) -> Ninja:
    """Count a contact normal as ceiling (also walls) if ``dy_test >= -1e-4``, else as floor."""
    ceil = cond & (dy_test >= -0.0001)
    flo = cond & ~(dy_test >= -0.0001)
    return n.replace(
        ceil_count=n.ceil_count + ceil.astype(n.ceil_count.dtype),
        ceil_sum_x=jnp.where(ceil, n.ceil_sum_x + nx, n.ceil_sum_x),
        ceil_sum_y=jnp.where(ceil, n.ceil_sum_y + ny, n.ceil_sum_y),
        floor_count=n.floor_count + flo.astype(n.floor_count.dtype),
        floor_sum_x=jnp.where(flo, n.floor_sum_x + nx, n.floor_sum_x),
        floor_sum_y=jnp.where(flo, n.floor_sum_y + ny, n.floor_sum_y),
    )


# ----------------------------------------------------------------------------- tiles


def _depen_step(n: Ninja, segs):
    """One depenetration step (spec §3.8 step 3): (stop, the moved ninja)."""
    result, a, b = single_closest_point(segs, n.x, n.y)
    ddx = n.x - a
    ddy = n.y - b
    # |dx| <= 1e-7 snaps to 0, and nclone's hard-coded band-aid nudges three exact x positions
    # (spec §5 #8 suggests ignoring it, but the 076db764 golden runs do hit x = 49.23232124849253).
    snap = jnp.abs(ddx) <= 0.0000001
    if n.x.dtype == jnp.float64:      # the positions are float64 values; meaningless in float32
        nudge = jnp.where((n.x == 50.51197510492316) | (n.x == 49.23232124849253), -2.0 ** -47,
                          jnp.where(n.x == 49.153536108584795, 2.0 ** -47, 0.0))
    else:
        nudge = 0.0
    ddx = jnp.where(snap, jnp.asarray(nudge, ddx.dtype), ddx)
    dist = sqrt(ddx ** 2 + ddy ** 2)
    depen_len = C.NINJA_RADIUS - dist * result
    stop = (result == 0) | (dist == 0) | (depen_len < 0.0000001)
    dist_s = jnp.where(dist == 0, 1, dist)
    inv = 1 / dist_s                   # 076db764: one reciprocal, then multiplies (spec §3.8)
    nx, ny = ddx * inv, ddy * inv
    depen_x, depen_y = nx * depen_len, ny * depen_len
    k = (n.vx * ddy - n.vy * ddx) * (inv * inv)
    dot = n.vx * ddx + n.vy * ddy
    proj = dot < 0
    m = n.replace(
        x=n.x + depen_x, y=n.y + depen_y,
        x_crush=n.x_crush + depen_x, y_crush=n.y_crush + depen_y, crush_len=n.crush_len + depen_len,
        vx=jnp.where(proj, k * ddy, n.vx), vy=jnp.where(proj, k * (-ddx), n.vy),
    )
    m = add_contact(m, jnp.array(True), nx, ny, ddy)
    return stop, m


def _masked_step(carry, segs):
    """One depenetration step that leaves a stopped env as it is (and does not count its search)."""
    i, done, n = carry
    stop, m = _depen_step(n, segs)
    return i + (~done).astype(jnp.int32), done | stop, select(done | stop, n, m)


def _masked_steps(carry, segs, count: int, block: int):
    """``count`` masked steps as a ``fori_loop``, ``block`` of them per loop iteration."""
    if count <= 0:
        return carry
    return lax.fori_loop(0, count, lambda _, c: _masked_step(c, segs), carry, unroll=max(1, min(int(block), count)))


# (divisor, floor) of compact_capacity by default: batch/32 lanes, at least 64 (TickOptions)
DEPEN_COMPACT = (32, 64)


def compact_capacity(batch: int, divisor: int, floor: int) -> int:
    """Lanes that the straggler pass of ``loop="compact"`` runs on: ``batch / divisor`` (rounded
    up), at least ``floor`` and 2, at most the whole batch. (Never one lane: XLA:CPU compiles a
    one-lane batch unlike wider or unbatched ones, e.g. without contracting ``a*b - c*d`` into an
    FMA, so a lone gathered lane could differ in float64.)"""
    return min(batch, max(2, int(floor), -(-batch // int(divisor))))


def _run_at_most_once(pred, fn, x):
    """``fn(x)`` if ``pred`` else ``x``, as a while-loop of at most one iteration rather than a
    ``lax.cond``: under an outer ``vmap`` (a batched ``pred``) a cond becomes a select that always
    runs ``fn``, while the loop still skips ``fn`` when no batch member needs it."""
    return lax.while_loop(lambda c: c[0], lambda c: (jnp.zeros_like(c[0]), fn(c[1])), (pred, x))[1]


def _straggler_steps(lane_steps, carry, segs, count: int, block: int, capacity: int):
    """``count`` masked steps over a batch (leading axis of every leaf), the same per lane as
    running all of them on every lane; ``lane_steps(carry, segs, k)`` runs ``k`` on one lane.

    The first ``block`` run on every lane; then the lanes still running (at most ``capacity``, in
    lane order) are gathered, run the rest and are put back. If more lanes were still running,
    the rest also runs on the whole batch, masked so that the gathered lanes (finished: stopped
    or at the cap) stay as they are."""
    def run(c, s, k):
        return jax.vmap(lambda c1, s1: lane_steps(c1, s1, k))(c, s)

    head = min(int(block), count)
    carry = run(carry, segs, head)
    rest = count - head
    batch = carry[1].shape[0]
    if rest == 0 or capacity >= batch:
        return run(carry, segs, rest)
    i, done, n = carry
    lanes = jnp.nonzero(~done, size=capacity, fill_value=batch)[0]   # padding: an out-of-range lane
    gather = lambda x: x.at[lanes].get(mode="clip")                  # padding rows are never read back
    sub = (gather(i), done.at[lanes].get(mode="fill", fill_value=True), jax.tree.map(gather, n))
    sub_i, _, sub_n = run(sub, jax.tree.map(gather, segs), rest)
    # put back with the inverse gather and a select (fusible elementwise work) rather than a scatter
    slot = jnp.cumsum(~done) - 1                                     # a running lane's row in ``sub``
    gathered = ~done & (slot < capacity)

    def put_back(x, y):
        return jnp.where(gathered.reshape((batch,) + (1,) * (x.ndim - 1)), y.at[slot].get(mode="clip"), x)

    carry = (put_back(i, sub_i), done | gathered, jax.tree.map(put_back, n, sub_n))
    return _run_at_most_once(jnp.any(~carry[1]), lambda c: run(c, segs, rest), carry)


def _compact_steps(carry, segs, count: int, block: int, divisor: int, floor: int):
    """``count`` masked steps: a plain ``fori_loop`` for one env, :func:`_straggler_steps` (with
    ``compact_capacity(batch, divisor, floor)`` lanes) under ``vmap``. Nested ``vmap`` batches
    the straggler schedule itself (over the outer axes), which stays exact."""
    stride = segs.stride              # static: closed over, only the arrays go through the custom vmap

    def lane_steps(carry, arrays, k):
        return _masked_steps(carry, arrays._replace(stride=stride), k, block)

    @jax.custom_batching.custom_vmap
    def steps(carry, arrays):
        return lane_steps(carry, arrays, count)

    @steps.def_vmap
    def _batched(axis_size, in_batched, carry, arrays):
        carry, arrays = (
            jax.tree.map(lambda x, b: x if b else jnp.broadcast_to(x, (axis_size,) + jnp.shape(x)), a, ab)
            for a, ab in zip((carry, arrays), in_batched))
        out = _straggler_steps(lane_steps, carry, arrays, count, block, compact_capacity(axis_size, divisor, floor))
        return out, jax.tree.map(lambda _: True, out)

    return steps(carry, segs._replace(stride=None))


def depenetrate(n: Ninja, segs, cap: int = C.DEPEN_ITERATIONS, loop: str = "while", unroll: int = 0,
                block: int = 1, compact: tuple[int, int] = DEPEN_COMPACT):
    """Up to ``cap`` depenetration steps against the fixed candidate set ``segs``.

    Returns (ninja, evaluations), evaluations = closest-point searches run (1..cap). Every
    schedule below gives identical results (a stopped env keeps its ninja):

    * ``unroll`` masked steps traced inline first (no loop), then the rest of the cap as
    * ``loop="while"``: a ``lax.while_loop`` that exits once the env stopped (under ``vmap``:
      once every env in the batch stopped; on GPUs each iteration reads the predicate back), or
    * ``loop="fixed"``: a ``lax.fori_loop`` of exactly the remaining count with a done mask
      (known trip count: no predicate read-back, but every step is paid), ``block`` masked steps
      per loop iteration, or
    * ``loop="compact"``: as ``"fixed"`` for one env; under ``vmap`` only ``block`` steps run on
      the whole batch and the rest on the few envs still running, gathered into
      ``compact_capacity(batch, *compact)`` lanes (:func:`_straggler_steps`; one predicate
      read-back per call for the rare overflow).
    """
    carry = (jnp.int32(0), jnp.array(False), n)
    first = min(int(unroll), int(cap))
    for _ in range(first):
        carry = _masked_step(carry, segs)
    rest = int(cap) - first
    if rest > 0:
        if loop == "while":
            def cond(c):
                return (c[0] < cap) & ~c[1]

            def body(c):
                i, _, n = c
                stop, m = _depen_step(n, segs)
                return i + 1, stop, select(stop, n, m)

            carry = lax.while_loop(cond, body, carry)
        elif loop == "fixed":
            carry = _masked_steps(carry, segs, rest, block)
        elif loop == "compact":
            carry = _compact_steps(carry, segs, rest, block, *compact)
        else:
            raise ValueError(f"depenetration loop must be 'while', 'fixed' or 'compact', got {loop!r}")
    i, _, n = carry
    return n, i


def collide_vs_tiles(n: Ninja, level, door_closed, dtype, cap: int = C.DEPEN_ITERATIONS, loop: str = "while",
                     unroll: int = 0, sweep: bool = True, block: int = 1, compact: tuple[int, int] = DEPEN_COMPACT):
    """Sweep from integrate's old position, then up to ``cap`` (reference: 32) depenetration steps
    (spec §3.8). Returns (ninja, closest-point searches run). ``sweep=False`` (profiling only,
    not the reference) skips the anti-tunnelling sweep."""
    if sweep:
        dx = n.x - n.x_old
        dy = n.y - n.y_old
        t = sweep_circle_vs_tiles(level, door_closed, n.x_old, n.y_old, dx, dy, C.NINJA_RADIUS * 0.5, dtype)
        n = n.replace(x=n.x_old + t * dx, y=n.y_old + t * dy)
    r = C.NINJA_RADIUS
    segs = gather_segments(level, door_closed, n.x - r, n.y - r, n.x + r, n.y + r, 2, dtype)
    return depenetrate(n, segs, cap, loop, unroll, block, compact)


def tile_wall_normal(n: Ninja, level, door_closed, dtype, acc):
    """Sum of wall normals from tile/door segments within 10.1 px (post-collision step 2)."""
    rad = C.NINJA_RADIUS + 0.1
    segs = gather_segments(level, door_closed, n.x - rad, n.y - rad, n.x + rad, n.y + rad, 2, dtype)
    _, a, b = closest_points(segs, n.x, n.y)
    dx = n.x - a
    dy = n.y - b
    dist = sqrt(dx ** 2 + dy ** 2)
    hit = segs.valid & (jnp.abs(dy) < 0.00001) & (0 < dist) & (dist <= rad)
    contrib = jnp.where(hit, dx / jnp.where(hit, dist, 1), 0)

    # sequential sum in gather order (float addition is not associative); unrolled, K is small
    for i in range(contrib.shape[0]):
        acc = jnp.where(hit[i], acc + contrib[i], acc)
    return acc


def finish_post_collision(n: Ninja, wall_sum) -> Ninja:
    """Post-collision steps 3-6: walled/airborne flags, floor/ceiling normals, impact and crush."""
    walled = wall_sum != 0
    n = n.replace(airborn_old=n.airborn, airborn=jnp.array(True), walled=walled,
                  wall_normal=jnp.where(walled, wall_sum / jnp.abs(jnp.where(walled, wall_sum, 1)), n.wall_normal))
    # floor
    has_floor = n.floor_count > 0
    fs = sqrt(n.floor_sum_x ** 2 + n.floor_sum_y ** 2)
    fs_s = jnp.where(fs == 0, 1, fs)
    fnx = jnp.where(fs == 0, 0, n.floor_sum_x / fs_s)
    fny = jnp.where(fs == 0, -1, n.floor_sum_y / fs_s)
    n = n.replace(airborn=jnp.where(has_floor, False, n.airborn),
                  floor_nx=jnp.where(has_floor, fnx, n.floor_nx),
                  floor_ny=jnp.where(has_floor, fny, n.floor_ny))
    impact = -(n.floor_nx * n.vx_old + n.floor_ny * n.vy_old)
    die = has_floor & (n.state != 8) & n.airborn_old & \
        (impact > C.MAX_SURVIVABLE_IMPACT - 4 / 3 * jnp.abs(n.floor_ny))
    n = n.replace(vx=jnp.where(die, n.vx_old, n.vx), vy=jnp.where(die, n.vy_old, n.vy))
    n = kill(n, die)
    # ceiling
    has_ceil = n.ceil_count > 0
    cs = sqrt(n.ceil_sum_x ** 2 + n.ceil_sum_y ** 2)
    cs_s = jnp.where(cs == 0, 1, cs)
    cnx = jnp.where(cs == 0, 0, n.ceil_sum_x / cs_s)
    cny = jnp.where(cs == 0, 1, n.ceil_sum_y / cs_s)
    n = n.replace(ceil_nx=jnp.where(has_ceil, cnx, n.ceil_nx), ceil_ny=jnp.where(has_ceil, cny, n.ceil_ny))
    impact = -(n.ceil_nx * n.vx_old + n.ceil_ny * n.vy_old)
    die = has_ceil & (n.state != 8) & (impact > C.MAX_SURVIVABLE_IMPACT - 4 / 3 * jnp.abs(n.ceil_ny))
    n = n.replace(vx=jnp.where(die, n.vx_old, n.vx), vy=jnp.where(die, n.vy_old, n.vy))
    n = kill(n, die)
    # crush
    cl = jnp.where(n.crush_len > 0, n.crush_len, 1)
    crushed = n.is_crushable & (n.crush_len > 0) & \
        (sqrt(n.x_crush ** 2 + n.y_crush ** 2) / cl < C.MIN_SURVIVABLE_CRUSHING)
    return kill(n, crushed)


# ----------------------------------------------------------------------------- jumps


def floor_jump(n: Ninja) -> Ninja:
    fnx, fny = n.floor_nx, n.floor_ny
    hor = n.hor_input
    flat = fnx == 0
    downhill = n.vx * fnx >= 0
    down_same = n.vx * hor >= 0
    up_fwd = n.vx * hor > 0
    slope_jx = C.JUMP_SLOPE_DOWNHILL_X * fnx
    slope_jy = C.JUMP_SLOPE_DOWNHILL_Y * fny
    zero = jnp.zeros_like(n.x)
    jx = jnp.where(flat, zero, jnp.where(downhill, jnp.where(down_same, slope_jx, zero),
                                         jnp.where(up_fwd, zero, C.JUMP_SLOPE_UPHILL_PERP_X * fnx)))
    jy = jnp.where(flat, C.JUMP_FLAT_GROUND_Y + zero,
                   jnp.where(downhill, jnp.where(down_same, slope_jy, C.JUMP_SLOPE_DOWNHILL_OPPOSITE_Y + zero),
                             jnp.where(up_fwd, C.JUMP_SLOPE_UPHILL_FORWARD_Y + zero, C.JUMP_SLOPE_UPHILL_PERP_Y * fny)))
    vx = jnp.where(~flat & ~downhill & ~up_fwd, zero, n.vx)
    vy = jnp.where(n.vy > 0, zero, n.vy)
    return n.replace(jump_buffer=-1, floor_buffer=-1, lp_buffer=-1, state=3, gravity=zero + C.GRAVITY_JUMP,
                     vx=vx + jx, vy=vy + jy, x=n.x + jx, y=n.y + jy, jump_duration=0,
                     jump_event=C.JUMP_FLOOR)


def wall_jump(n: Ninja) -> Ninja:
    slide = (n.hor_input * n.wall_normal < 0) & (n.state == 5)
    zero = jnp.zeros_like(n.x)
    jx = jnp.where(slide, C.JUMP_WALL_SLIDE_X + zero, C.JUMP_WALL_REGULAR_X + zero)
    jy = jnp.where(slide, C.JUMP_WALL_SLIDE_Y + zero, C.JUMP_WALL_REGULAR_Y + zero)
    vx = jnp.where(n.vx * n.wall_normal < 0, zero, n.vx)
    vy = jnp.where(n.vy > 0, zero, n.vy)
    return n.replace(state=3, gravity=zero + C.GRAVITY_JUMP, vx=vx + jx * n.wall_normal, vy=vy + jy,
                     x=n.x + jx * n.wall_normal, y=n.y + jy, jump_buffer=-1, wall_buffer=-1, lp_buffer=-1,
                     jump_duration=0,
                     jump_event=jnp.where(slide, C.JUMP_WALL_SLIDE, C.JUMP_WALL))


def lp_jump(n: Ninja) -> Ninja:
    s = 2 * jnp.abs(n.lp_boost_x) + 2
    s = jnp.where(s == 2, C.JUMP_LAUNCH_PAD_BOOST_SCALAR, s)
    return n.replace(floor_buffer=-1, wall_buffer=-1, jump_buffer=-1, lp_buffer=-1,
                     vx=n.vx + n.lp_boost_x * s * C.JUMP_LAUNCH_PAD_BOOST_FACTOR,
                     vy=n.vy + n.lp_boost_y * s * C.JUMP_LAUNCH_PAD_BOOST_FACTOR,
                     jump_event=C.JUMP_LAUNCH_PAD)


# ----------------------------------------------------------------------------- think


def _advance(b, limit):
    return jnp.where((b > -1) & (b < limit), b + 1, -1)


def think(n: Ninja) -> Ninja:
    hor = n.hor_input
    new_jump = (n.jump_input != 0) & (n.jump_input_old == 0)
    lpb = _advance(n.lp_buffer, 3)
    in_lp = (lpb > -1) & (lpb < 4)
    jb = _advance(n.jump_buffer, 5)
    in_jump = (jb > -1) & (jb < 5)
    wb = _advance(n.wall_buffer, 5)
    in_wall = (wb > -1) & (wb < 5)
    fb = _advance(n.floor_buffer, 5)
    in_floor = (fb > -1) & (fb < 5)
    jb = jnp.where(new_jump & n.airborn, 0, jb)
    wb = jnp.where(n.walled, 0, wb)
    fb = jnp.where(~n.airborn, 0, fb)
    n = n.replace(jump_input_old=n.jump_input, lp_buffer=lpb, jump_buffer=jb, wall_buffer=wb, floor_buffer=fb,
                  jump_event=jnp.zeros_like(n.jump_event))
    st = n.state
    zero = jnp.zeros_like(n.x)

    # ---------------- grounded
    g = n
    xn_g = g.vx + C.GROUND_ACCEL * hor
    g = g.replace(vx=jnp.where(jnp.abs(xn_g) < C.MAX_HOR_SPEED, xn_g, g.vx))
    gst = g.state
    g = g.replace(gravity=jnp.where((gst > 2) & (gst == 3), C.GRAVITY_FALL, g.gravity),
                  state=jnp.where(gst > 2, jnp.where(g.vx * hor <= 0, 2, 1), gst))
    g_jump = floor_jump(g)
    fnx, fny = g.floor_nx, g.floor_ny
    proj = jnp.abs(g.vy * fnx - g.vx * fny)
    # state 2 (sliding)
    s2_run = hor * proj * g.vx > 0
    s2_stop = (proj < 0.1) & (fnx == 0)
    s2_up = (g.vy < 0) & (fnx != 0)
    speed = sqrt(g.vx ** 2 + g.vy ** 2)
    speed_s = jnp.where(speed == 0, 1, speed)
    fric = jnp.abs(g.vx * (1 - C.FRICTION_GROUND) * fny)
    fric2 = speed - fric * fny ** 2
    s2 = select(s2_run, g.replace(state=1),
                select(s2_stop, g.replace(state=0),
                       select(s2_up, g.replace(vx=g.vx / speed_s * fric2, vy=g.vy / speed_s * fric2),
                              g.replace(vx=g.vx * C.FRICTION_GROUND))))
    # state 1 (running)
    boost = C.GROUND_ACCEL / 2 * hor
    assist = (hor * fnx < 0) & (jnp.abs(xn_g) < C.MAX_HOR_SPEED)
    s1_keep = g.replace(vx=jnp.where(assist, g.vx + boost * fny * fny, g.vx),
                        vy=jnp.where(assist, g.vy + boost * fny * -fnx, g.vy))
    s1 = select(hor * proj * g.vx > 0, s1_keep, g.replace(state=2))
    # state 0 (immobile)
    s0 = select(hor != 0, g.replace(state=1),
                select(proj < 0.1, g.replace(vx=g.vx * C.FRICTION_GROUND_SLOW), g.replace(state=2)))
    g_nojump = select(g.state == 2, s2, select(g.state == 1, s1, s0))
    grounded = select(in_jump | new_jump, g_jump, g_nojump)

    # ---------------- airborne
    a = n
    xn_a = a.vx + C.AIR_ACCEL * hor
    a = a.replace(vx=jnp.where(jnp.abs(xn_a) < C.MAX_HOR_SPEED, xn_a, a.vx))
    walk_off = a.state < 3
    a_walk = a.replace(state=4)
    jd = jnp.where(a.state == 3, a.jump_duration + 1, a.jump_duration)
    a = a.replace(jump_duration=jd)
    end_jump = (a.state == 3) & ((a.jump_input == 0) | (jd > C.MAX_JUMP_DURATION))
    a_end = a.replace(gravity=zero + C.GRAVITY_FALL, state=4)
    can_jump = in_jump | new_jump
    a_wall = wall_jump(a)
    a_floor = floor_jump(a)
    a_lp = lp_jump(a)
    # wall sliding logic
    w_not = a.replace(state=jnp.where(a.state == 5, 4, a.state))
    w_slide = select(hor * a.wall_normal <= 0, a.replace(vy=a.vy * C.FRICTION_WALL), a.replace(state=4))
    start = (a.vy > 0) & (hor * a.wall_normal < 0)
    w_other = select(start, a.replace(gravity=jnp.where(a.state == 3, C.GRAVITY_FALL, a.gravity), state=5), a)
    a_rest = select(~a.walled, w_not, select(a.state == 5, w_slide, w_other))
    airborne = select(walk_off, a_walk,
                      select(end_jump, a_end,
                             select(can_jump & (a.walled | in_wall), a_wall,
                                    select(can_jump & in_floor, a_floor,
                                           select(can_jump & in_lp & new_jump, a_lp, a_rest)))))

    active = select(n.airborn, airborne, grounded)
    out = select((st == 6) | (st == 9), n,
                 select(st == 7, n.replace(state=6),
                        select(st == 8, n.replace(drag=jnp.where(n.airborn, C.DRAG_REGULAR, C.DRAG_SLOW) + zero),
                               active)))
    return out
