"""Machinery shared by every entity type (spec §6.4.1): cells, overlap tests, the gather order.

Order is part of the physics, so the entity phases walk table rows in nclone's order with a
``lax.while_loop`` that picks the next row by a few reductions over the table (no sort):
table (= update) order for move / think, and for collisions the 3 x 3 cells around the ninja
(x outer, y inner, by each entity's *registered* cell) then insertion stamp (§6.3, §6.4.1).

Section marks (§) cite docs/specs/npp.md.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from envs.npp import constants as C
from envs.npp.geometry import sqrt
from envs.npp.state import Entities

# ----------------------------------------------------------------------------- small helpers


def cell_of(x, y):
    return jnp.stack([jnp.clip(jnp.floor(x / C.CELL), 0, C.GRID_W - 1),
                      jnp.clip(jnp.floor(y / C.CELL), 0, C.GRID_H - 1)], -1).astype(jnp.int32)


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
    return v[jnp.clip(o, 0, len(C.ORIENT_VEC) - 1)]


def grid_move(e: Entities, i, counter):
    """Re-register row i in the cell of its position (re-appended at the end of that cell)."""
    c = cell_of(e.pos[i, 0], e.pos[i, 1])
    changed = jnp.any(c != e.cell[i])
    e = e.replace(cell=e.cell.at[i].set(c), stamp=e.stamp.at[i].set(jnp.where(changed, counter, e.stamp[i])))
    return e, counter + changed.astype(counter.dtype)


def type_in(level, types):
    m = jnp.zeros_like(level.ent_type, dtype=bool)
    for t in types:
        m = m | (level.ent_type == t)
    return m


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


def lex_first(mask, rc, stamp):
    """Index of the first row of ``mask`` in gather order (cell rank, then stamp, then row)."""
    big = jnp.iinfo(jnp.int32).max
    rc_min = jnp.min(jnp.where(mask, rc, big))
    m = mask & (rc == rc_min)
    st_min = jnp.min(jnp.where(m, stamp, big))
    return jnp.argmax(m & (stamp == st_min)).astype(jnp.int32)


def lex_after(rc, stamp, f):
    """Rows that come after row ``f`` in gather order (bool[E])."""
    rows = jnp.arange(rc.shape[0], dtype=jnp.int32)
    rf, sf = rc[f], stamp[f]
    return (rc > rf) | ((rc == rf) & ((stamp > sf) | ((stamp == sf) & (rows > f))))


def _next_row(order: RowOrder, left):
    if order.rc is None:
        return jnp.argmax(left).astype(jnp.int32)
    return lex_first(left, order.rc, order.stamp)


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
