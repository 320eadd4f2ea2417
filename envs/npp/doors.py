"""Doors (spec §6.4.4): regular (5), locked (6) and trap (8) doors.

A door's ``door_closed`` flag is its collision segment's active flag; ``door_cnt`` is its signed
contribution to the grid-edge tables, moved by every ``set_door`` call without checking the previous
state (§6.4.8 Q1). Per-row functions take and return the phase's carry and act on row ``i``.

Section marks (§) cite docs/specs/npp.md.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from envs.npp import constants as C
from envs.npp.entity_common import overlap
from envs.npp.state import Entities


def set_door(e: Entities, i, closed):
    return e.replace(door_closed=e.door_closed.at[i].set(closed),
                     door_cnt=e.door_cnt.at[i].add(jnp.where(closed, 1, -1)))


def think_regular_door(level, carry, i):
    n, e, counter = carry
    opened = ~e.door_closed[i]
    timer = jnp.where(opened, e.open_timer[i] + 1, e.open_timer[i])
    e = e.replace(open_timer=e.open_timer.at[i].set(timer))
    close = opened & (timer > C.REGULAR_DOOR_OPEN_FRAMES)
    e = jax.tree.map(lambda p, q: jnp.where(close, p, q), set_door(e, i, True), e)
    return n, e, counter


def logical_regular_door(level, c, i):
    n, e, counter, wall, sw = c
    hit = overlap(e.pos[i, 0], e.pos[i, 1], C.REGULAR_DOOR_RADIUS, n.x, n.y, C.NINJA_RADIUS)
    e2 = set_door(e, i, jnp.array(False))
    e2 = e2.replace(open_timer=e2.open_timer.at[i].set(0))
    e = jax.tree.map(lambda p, q: jnp.where(hit, p, q), e2, e)
    return n, e, counter, wall, sw


def logical_locked_door(level, c, i):
    n, e, counter, wall, sw = c
    hit = overlap(e.pos[i, 0], e.pos[i, 1], C.DOOR_SWITCH_RADIUS, n.x, n.y, C.NINJA_RADIUS)
    e2 = set_door(e, i, jnp.array(False))
    e2 = e2.replace(active=e2.active.at[i].set(False))
    e = jax.tree.map(lambda p, q: jnp.where(hit, p, q), e2, e)
    n = n.replace(doors_opened=n.doors_opened + hit.astype(n.doors_opened.dtype))
    return n, e, counter, wall, sw


def logical_trap_door(level, c, i):
    n, e, counter, wall, sw = c
    hit = overlap(e.pos[i, 0], e.pos[i, 1], C.DOOR_SWITCH_RADIUS, n.x, n.y, C.NINJA_RADIUS)
    e2 = set_door(e, i, jnp.array(True))
    e2 = e2.replace(active=e2.active.at[i].set(False))
    e = jax.tree.map(lambda p, q: jnp.where(hit, p, q), e2, e)
    return n, e, counter, wall, sw
