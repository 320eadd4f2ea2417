"""The per-frame entity phases (spec §3.4, §3.9, §6.4.1): move, think and logical collisions.

Each phase walks the rows of its types in nclone's order (``entity_common.for_rows``) and
``lax.switch``-dispatches on a per-row behaviour; only the types a level declares
(``level.entity_types``, static) are traced, so plain levels compile small. Logical collisions
dispatch on a two-row window of the table (a switch also writes its door, the row before it), so
the dispatch copies two rows, not the table. Levels whose traced types are only mines, gold, exit
doors and switches (generated levels) run the logical collisions as one vectorised pass instead
of the loop. Physical collisions concern solid entities only: ``solid_entities.collide_vs_objects``.

Section marks (§) cite docs/specs/npp.md.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from envs.npp import constants as C
from envs.npp.death_ball import logical_death_ball, think_death_ball
from envs.npp.doors import (
    logical_locked_door,
    logical_regular_door,
    logical_trap_door,
    think_regular_door,
)
from envs.npp.drones import logical_drone, move_drone
from envs.npp.entity_common import (
    for_rows,
    lex_after,
    lex_first,
    neighbourhood_rows,
    overlap,
    rows_in_order,
    type_in,
)
from envs.npp.grid_edges import edge_tables
from envs.npp.ninja import is_valid_target
from envs.npp.pickups import (
    logical_exit,
    logical_gold,
    logical_launch_pad,
    logical_mine,
    logical_switch,
    move_boost_pad,
    think_mines,
)
from envs.npp.solid_entities import (
    logical_bounce_block,
    logical_one_way,
    logical_shwump,
    logical_thwump,
    move_bounce_block,
    move_thwump,
    think_shwump,
    think_thwump,
)
from envs.npp.state import Entities


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


# ============================================================================= move phase
# carry: (n, e, counter)


def move_phase(level, n, e, counter):
    types = (C.T_DRONE_ZAP, C.T_BOUNCE_BLOCK, C.T_THWUMP, C.T_BOOST_PAD, C.T_DRONE_MINI)
    if not set(types) & set(level.entity_types):
        return n, e, counter
    order, count = rows_in_order(type_in(level, types) & e.active)
    tab = edge_tables(level, e)   # doors do not change during the move phase
    drone = lambda c, i: move_drone(level, tab, c, i)
    table = {C.T_DRONE_ZAP: drone, C.T_BOUNCE_BLOCK: lambda c, i: move_bounce_block(level, c, i),
             C.T_THWUMP: lambda c, i: move_thwump(level, tab, c, i),
             C.T_BOOST_PAD: lambda c, i: move_boost_pad(level, c, i), C.T_DRONE_MINI: drone}
    ent_type = level.ent_type
    if C.T_DRONE_ZAP in level.entity_types and C.T_DRONE_MINI in level.entity_types:
        table.pop(C.T_DRONE_MINI)     # one branch serves both drone types
        ent_type = jnp.where(ent_type == C.T_DRONE_MINI, C.T_DRONE_ZAP, ent_type)
    return _dispatch(level, order, count, (n, e, counter), table, ent_type)


# ============================================================================= think phase


def think_phase(level, n, e, counter):
    types = level.entity_types
    if C.T_MINE in types or C.T_MINE_SAFE in types:
        e = think_mines(level, n, e)
    # Regular doors think first (type 5 < 20, 25, 28); the others then read the updated edges.
    if C.T_DOOR_REGULAR in types:
        order, count = rows_in_order((level.ent_type == C.T_DOOR_REGULAR) & e.active)
        n, e, counter = for_rows(order, count, lambda c, i: think_regular_door(level, c, i), (n, e, counter))
    later = (C.T_THWUMP, C.T_DEATH_BALL, C.T_SHOVE_THWUMP)
    if not set(later) & set(types):
        return n, e, counter
    tab = edge_tables(level, e)
    order, count = rows_in_order(type_in(level, later) & e.active)
    table = {C.T_THWUMP: lambda c, i: think_thwump(level, tab, c, i),
             C.T_DEATH_BALL: lambda c, i: think_death_ball(level, c, i),
             C.T_SHOVE_THWUMP: lambda c, i: think_shwump(level, tab, c, i)}
    return _dispatch(level, order, count, (n, e, counter), table)


# ============================================================================= logical collisions
# carry: (n, e, counter, wall_sum, switch_hit)

# Behaviour id of each type's logical collision (0: none); index into _LOGICAL_FNS.
LOGICAL_KIND = {
    C.T_MINE: 1, C.T_MINE_SAFE: 1, C.T_GOLD: 2, C.T_EXIT: 3, C.T_SWITCH: 4, C.T_DOOR_REGULAR: 5,
    C.T_DOOR_LOCKED: 6, C.T_DOOR_TRAP: 7, C.T_LAUNCH_PAD: 8, C.T_ONE_WAY: 9, C.T_DRONE_ZAP: 10,
    C.T_DRONE_MINI: 10, C.T_BOUNCE_BLOCK: 11, C.T_THWUMP: 12, C.T_DEATH_BALL: 13, C.T_SHOVE_THWUMP: 14,
}
_LOGICAL_FNS = [lambda level, c, i: c, logical_mine, logical_gold, logical_exit, logical_switch, logical_regular_door,
                logical_locked_door, logical_trap_door, logical_launch_pad, logical_one_way, logical_drone,
                logical_bounce_block, logical_thwump, logical_death_ball, logical_shwump]

_KIND_MINE, _KIND_GOLD = LOGICAL_KIND[C.T_MINE], LOGICAL_KIND[C.T_GOLD]
_KIND_EXIT, _KIND_SWITCH = LOGICAL_KIND[C.T_EXIT], LOGICAL_KIND[C.T_SWITCH]
# Kinds whose logical collisions the vectorised pass below reproduces exactly (no loop, no sort).
_VECTOR_KINDS = frozenset({_KIND_MINE, _KIND_GOLD, _KIND_EXIT, _KIND_SWITCH})


def logical_kind_table():
    t = [0] * (C.MAX_ENTITY_TYPE + 1)
    for k, v in LOGICAL_KIND.items():
        t[k] = v
    return jnp.asarray(t, jnp.int32)


def _logical_vectorised(level, n, e, counter, switch_hit, kinds, switch_passes: int = 0):
    """The ordered pass of ``logical_collisions`` for mines, gold, exit doors and exit switches
    as array ops over the table (same results as the row loop).

    None of these moves the ninja, so every overlap test uses the entry position; order matters
    only through the ninja's state and the switches' insertion stamps:
    * the first kill (mine) or win (exit) in gather order sets the state (awaiting death /
      celebrating) and, from a jump, the fall gravity; after a win no later mine or gold row
      fires (not a valid target / celebrating); after a kill every row behaves as before
      (awaiting death is a valid target);
    * each hit switch re-registers its exit door (row i - 1, never in this pass's list: exit
      doors enter the grid only through their switch) with the next stamp, in gather order.
    """
    (mask, rc, stamp), _ = neighbourhood_rows(level, e, n.x, n.y, kinds > 0)
    px, py = e.pos[:, 0], e.pos[:, 1]
    ov = lambda r: overlap(px, py, r, n.x, n.y, C.NINJA_RADIUS)
    s0 = n.state
    mine_c = mask & (kinds == _KIND_MINE) & (e.state == C.MINE_TOGGLED) & ov(C.MINE_RADII[C.MINE_TOGGLED])
    exit_c = mask & (kinds == _KIND_EXIT) & ov(C.EXIT_RADIUS)
    ev = (mine_c | exit_c) & (s0 < C.ST_DEAD)
    any_ev = jnp.any(ev)
    f = lex_first(ev, rc, stamp)
    won = any_ev & exit_c[f]
    blocked = won & lex_after(rc, stamp, f)                             # rows after the win
    mine_hit = mine_c & is_valid_target(n) & ~blocked
    gold_hit = mask & (kinds == _KIND_GOLD) & (s0 != C.ST_CELEBRATING) & ~blocked & ov(C.GOLD_RADIUS)
    sw_hit = mask & (kinds == _KIND_SWITCH) & ov(C.SWITCH_RADIUS)
    n = n.replace(gravity=jnp.where(any_ev & (s0 == C.ST_JUMPING), C.GRAVITY_FALL, n.gravity),
                  state=jnp.where(any_ev, jnp.where(won, C.ST_CELEBRATING, C.ST_AWAITING_DEATH), s0),
                  gold_collected=n.gold_collected + jnp.sum(gold_hit).astype(n.gold_collected.dtype))
    e = e.replace(state=jnp.where(mine_hit, C.MINE_UNTOGGLED, e.state), active=e.active & ~gold_hit & ~sw_hit)

    if _KIND_SWITCH in {LOGICAL_KIND[t] for t in level.entity_types if t in LOGICAL_KIND}:
        # hit switches in gather order: each stamps its door with the next counter value
        def cond(c_):
            return jnp.any(c_[0])

        def body(c_):
            left, e, counter = c_
            i = lex_first(left, rc, stamp)
            door = i - 1
            e = e.replace(in_grid=e.in_grid.at[door].set(True), stamp=e.stamp.at[door].set(counter),
                          state=e.state.at[door].set(C.EXIT_DOOR_SWITCH_HIT))
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
