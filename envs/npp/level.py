"""``Level``: one N++ map as fixed-shape arrays (tiles, segment tables, padded entity table).

Entities live in one struct-of-arrays table of capacity ``E`` in nclone's update order (type
list ascending, then load order; an exit switch follows its door inside list 3). Each
row carries its type, so per-type behaviour is a masked vector op over the table, and the
order-sensitive passes (logical collisions, death-ball pushes) walk the rows in reference order.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs.npp import constants as C
from envs.npp.map_format import ParsedMap, parse_map
from envs.npp.tiles import build_tile_geometry_jit, padded_tiles

DEFAULT_MAX_ENTITIES = 320   # >= 256 toggle mines plus the other entities of a generated level
DEFAULT_MAX_DOORS = 8


@struct.dataclass
class Level:
    # --- tiles (indexed [x, y] over the padded 44 x 25 grid)
    tiles: jax.Array          # int8[44, 25]
    seg_kind: jax.Array       # int8[44, 25, 8] segment kind per slot (constants.SEG_KIND_*), -1 empty;
                              # 8.8 KB instead of 97 KB of per-slot geometry (the env state holds it)
    edge_hor: jax.Array       # int8[89, 51]  tile part of the grid-edge table (XOR bits)
    edge_ver: jax.Array       # int8[89, 51]
    spawn: jax.Array          # float[2] px
    death_ball_count: jax.Array  # int32, map_data[1200]
    # --- entities (row i, capacity E; type 0 = empty row)
    ent_type: jax.Array       # int32[E]  (4 = exit switch)
    ent_pos: jax.Array        # float[E, 2] initial position (doors: switch position)
    ent_orient: jax.Array     # int32[E]  (-1 if none)
    ent_mode: jax.Array       # int32[E]
    ent_in_grid: jax.Array    # bool[E]   registered in the entity grid at load
    ent_stamp: jax.Array      # int32[E]  grid insertion stamp at load
    ent_ball_index: jax.Array  # int32[E] index among death balls (load order)
    n_entities: jax.Array     # int32
    # --- doors (types 5/6/8), entity-indexed
    door_seg: jax.Array       # float[E, 4] x1, y1, x2, y2
    door_cell: jax.Array      # int32[E, 2] cell whose segment list holds the door segment
    door_vertical: jax.Array  # bool[E]
    door_slots: jax.Array     # int32[D] entity row of each door in load (segment list) order
    door_slot_valid: jax.Array  # bool[D]
    # Static: the entity types whose behaviour is traced (a superset of the types present).
    # Levels stacked for vmap must share it; plain generated levels compile only what they use.
    entity_types: tuple = struct.field(pytree_node=False, default=())

    @property
    def max_entities(self) -> int:
        return self.ent_type.shape[-1]


def _clamp_cell(cx, cy):
    return min(max(cx, 0), C.GRID_W - 1), min(max(cy, 0), C.GRID_H - 1)


ALL_ENTITY_TYPES = tuple(sorted(set(C.INSTANTIATED_TYPES) | {C.T_SWITCH}))


def level_from_parsed(pm: ParsedMap, max_entities: int = DEFAULT_MAX_ENTITIES,
                      max_doors: int = DEFAULT_MAX_DOORS, entity_types=None) -> Level:
    ents = pm.entities
    present = {e.etype for e in ents}
    if entity_types is None:
        entity_types = tuple(sorted(present))
    elif not present <= set(entity_types):
        raise ValueError(f"map has entity types {sorted(present - set(entity_types))} outside entity_types")
    if len(ents) > max_entities:
        raise ValueError(f"map has {len(ents)} entities; capacity max_entities={max_entities}")
    doors = sorted([i for i, e in enumerate(ents) if e.etype in (5, 6, 8)], key=lambda i: ents[i].load_seq)
    if len(doors) > max_doors:
        raise ValueError(f"map has {len(doors)} doors; capacity max_doors={max_doors}")
    E = max_entities
    etype = np.zeros(E, np.int32)
    pos = np.zeros((E, 2), np.float64)
    orient = np.full(E, -1, np.int32)
    mode = np.zeros(E, np.int32)
    in_grid = np.zeros(E, bool)
    stamp = np.zeros(E, np.int32)
    ball_index = np.zeros(E, np.int32)
    door_seg = np.zeros((E, 4), np.float64)
    door_cell = np.zeros((E, 2), np.int32)
    door_vertical = np.zeros(E, bool)
    n_balls = 0
    for i, e in enumerate(ents):
        etype[i] = e.etype
        pos[i] = (e.x, e.y)
        orient[i] = e.orientation if e.etype in (5, 6, 8, 10, 11, 14, 20, 26) else -1
        mode[i] = e.mode
        in_grid[i] = e.in_grid
        stamp[i] = e.load_seq
        if e.etype == C.T_DEATH_BALL:
            ball_index[i] = n_balls
            n_balls += 1
        if e.door_pos is not None:
            px, py = e.door_pos
            o = e.orientation
            ux, uy = C.ORIENT_VEC[o]
            vertical = o in (0, 4)
            door_vertical[i] = vertical
            door_cell[i] = _clamp_cell(math.floor((px - 12 * ux) / 24), math.floor((py - 12 * uy) / 24))
            door_seg[i] = (px, py - 12, px, py + 12) if vertical else (px - 12, py, px + 12, py)
    door_slots = np.zeros(max_doors, np.int32)
    door_slot_valid = np.zeros(max_doors, bool)
    door_slots[:len(doors)] = doors
    door_slot_valid[:len(doors)] = True

    tiles = padded_tiles(pm.tiles_inner)
    geo = build_tile_geometry_jit(jnp.asarray(tiles))
    f = lambda a: jnp.asarray(a)  # float64 under jax_enable_x64, else float32
    return Level(
        # compact storage: segment kinds, edge bits are 0/1
        tiles=jnp.asarray(tiles, jnp.int8), seg_kind=geo["seg_kind"],
        edge_hor=geo["edge_hor"].astype(jnp.int8), edge_ver=geo["edge_ver"].astype(jnp.int8),
        spawn=f(np.array(pm.spawn, np.float64)), death_ball_count=jnp.asarray(pm.death_ball_count, jnp.int32),
        ent_type=jnp.asarray(etype), ent_pos=f(pos), ent_orient=jnp.asarray(orient), ent_mode=jnp.asarray(mode),
        ent_in_grid=jnp.asarray(in_grid), ent_stamp=jnp.asarray(stamp), ent_ball_index=jnp.asarray(ball_index),
        n_entities=jnp.asarray(len(ents), jnp.int32),
        door_seg=f(door_seg), door_cell=jnp.asarray(door_cell), door_vertical=jnp.asarray(door_vertical),
        door_slots=jnp.asarray(door_slots), door_slot_valid=jnp.asarray(door_slot_valid),
        entity_types=tuple(sorted(set(entity_types))),
    )


def load_map(map_bytes, max_entities: int = DEFAULT_MAX_ENTITIES, max_doors: int = DEFAULT_MAX_DOORS,
             require_exit: bool = True, entity_types=None) -> Level:
    """Parse N++ ``map_data`` bytes into a fixed-shape :class:`Level` (ValueError if malformed).

    ``entity_types`` (static) lists the entity types to simulate; default: those present. Pass
    a common superset (e.g. ``ALL_ENTITY_TYPES``) to batch or reuse one compilation across maps.
    """
    return level_from_parsed(parse_map(map_bytes, require_exit=require_exit), max_entities, max_doors,
                             entity_types)
