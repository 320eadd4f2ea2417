"""Jittable per-episode map generation (spec §1).

Rooms of 25 x 25 (one per 6 agents, in a ceil(sqrt(n)) x ... grid, no walls between them)
inside a 6-wide wall border. In each room the objects and agents take distinct, uniformly
random cells: the first entries of a random permutation of the room's 625 cells. Object
counts come from ``params.quadrant_counts`` (data), up to the static per-room capacity that
fixes the array shapes; unused converter slots get kind -1.

Section marks (§) cite docs/specs/arena.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from envs.arena import constants as K
from envs.arena.build import assemble_state
from envs.arena.state import EnvParams, EnvState


@dataclass(frozen=True)
class MapLayout:
    """Static facts of a generated arena map (shapes and slot tables)."""

    num_agents: int
    capacity: tuple[int, ...]  # per-room capacity per MAPGEN_OBJECTS entry

    @property
    def num_rooms(self) -> int:
        if self.num_agents % 6 != 0 or self.num_agents == 0:
            raise ValueError("the arena needs num_agents divisible by 6")
        return self.num_agents // 6

    @property
    def room_grid(self) -> tuple[int, int]:
        rows = math.ceil(math.sqrt(self.num_rooms))
        return rows, math.ceil(self.num_rooms / rows)

    @property
    def shape(self) -> tuple[int, int]:
        rows, cols = self.room_grid
        return 2 * K.MAP_BORDER + rows * K.QUADRANT_SIZE, 2 * K.MAP_BORDER + cols * K.QUADRANT_SIZE

    @property
    def agents_per_room(self) -> int:
        return 6

    def slot_tables(self):
        """Per-room slots: (object index in MAPGEN_OBJECTS or -1 for agent, index within kind)."""
        obj, idx = [], []
        for o, cap in enumerate(self.capacity):
            obj += [o] * cap
            idx += list(range(cap))
        obj += [-1] * self.agents_per_room
        idx += list(range(self.agents_per_room))
        return np.array(obj, np.int32), np.array(idx, np.int32)

    @property
    def converters_per_room(self) -> int:
        return sum(c for o, c in enumerate(self.capacity) if K.MAPGEN_KIND[o] >= 0)

    @property
    def num_converters(self) -> int:
        return self.num_rooms * self.converters_per_room

    def border_template(self) -> np.ndarray:
        h, w = self.shape
        grid = np.full((h, w), K.CELL_WALL, np.int16)
        grid[K.MAP_BORDER : h - K.MAP_BORDER, K.MAP_BORDER : w - K.MAP_BORDER] = K.CELL_EMPTY
        return grid


def generate_state(key: jax.Array, params: EnvParams, layout: MapLayout, horizon) -> EnvState:
    slot_obj, slot_idx = layout.slot_tables()
    n_rooms = layout.num_rooms
    _, cols = layout.room_grid
    room_cells = K.QUADRANT_SIZE * K.QUADRANT_SIZE
    counts = params.quadrant_counts
    active = (slot_obj < 0) | (jnp.asarray(slot_idx) < counts[jnp.clip(jnp.asarray(slot_obj), 0)])
    take = jnp.cumsum(active) - 1  # active slots take the first permutation entries, in order

    def room(k):
        perm = jax.random.permutation(k, room_cells)
        return perm[jnp.clip(take, 0, room_cells - 1)]

    cells = jax.vmap(room)(jax.random.split(key, n_rooms))  # [rooms, slots]
    room_r = K.MAP_BORDER + K.QUADRANT_SIZE * (np.arange(n_rooms) // cols)
    room_c = K.MAP_BORDER + K.QUADRANT_SIZE * (np.arange(n_rooms) % cols)
    r = jnp.asarray(room_r)[:, None] + cells // K.QUADRANT_SIZE
    c = jnp.asarray(room_c)[:, None] + cells % K.QUADRANT_SIZE
    h, w = layout.shape
    flat = r * w + c
    active = jnp.broadcast_to(active, flat.shape)

    # agents: ids row-major over the whole grid
    is_agent = slot_obj < 0
    agent_flat = jnp.sort(flat[:, is_agent].reshape(-1))
    agent_pos = jnp.stack([agent_flat // w, agent_flat % w], -1)

    # converters: all converter slots of all rooms, in slot order
    kind_of_obj = np.array(K.MAPGEN_KIND, np.int32)
    is_conv = (slot_obj >= 0) & (kind_of_obj[np.clip(slot_obj, 0, None)] >= 0)
    conv_flat = flat[:, is_conv].reshape(-1)
    conv_active = active[:, is_conv].reshape(-1)
    conv_kind = jnp.where(
        conv_active, jnp.asarray(np.tile(kind_of_obj[slot_obj[is_conv]], n_rooms)), -1
    )
    conv_pos = jnp.stack([conv_flat // w, conv_flat % w], -1)

    is_wall = (slot_obj >= 0) & (kind_of_obj[np.clip(slot_obj, 0, None)] < 0)
    wall_flat = jnp.where(active[:, is_wall], flat[:, is_wall], h * w).reshape(-1)
    grid = jnp.asarray(layout.border_template()).reshape(-1)
    grid = grid.at[wall_flat].set(K.CELL_WALL, mode="drop")
    m = conv_flat.shape[0]
    grid = grid.at[jnp.where(conv_active, conv_flat, h * w)].set(
        jnp.arange(m, dtype=jnp.int16), mode="drop"
    )
    return assemble_state(
        grid_obj=grid.reshape(h, w),
        agent_pos=agent_pos,
        conv_kind=conv_kind,
        conv_pos=conv_pos,
        params=params,
        horizon=horizon,
    )
