"""Simulation state: the ninja (spec §3.3), the dynamic entity table and frame bookkeeping.

Section marks (§) cite docs/specs/npp.md; FORMAT.md is tests/data/golden/npp/FORMAT.md.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from envs.npp import constants as C


@struct.dataclass
class Ninja:
    x: jax.Array
    y: jax.Array
    vx: jax.Array
    vy: jax.Array
    x_old: jax.Array
    y_old: jax.Array
    vx_old: jax.Array
    vy_old: jax.Array
    floor_nx: jax.Array          # floor_normalized (kept between contacts)
    floor_ny: jax.Array
    ceil_nx: jax.Array
    ceil_ny: jax.Array
    floor_sum_x: jax.Array       # this frame's raw contact-normal sums
    floor_sum_y: jax.Array
    ceil_sum_x: jax.Array
    ceil_sum_y: jax.Array
    floor_count: jax.Array       # int32
    ceil_count: jax.Array        # int32
    wall_normal: jax.Array       # float, sign of the last wall contact (kept)
    walled: jax.Array            # bool
    airborn: jax.Array
    airborn_old: jax.Array
    state: jax.Array             # int32 movement state 0..9
    jump_buffer: jax.Array       # int32, -1 inactive
    floor_buffer: jax.Array
    wall_buffer: jax.Array
    lp_buffer: jax.Array
    jump_duration: jax.Array
    jump_input_old: jax.Array
    gravity: jax.Array           # applied gravity
    drag: jax.Array              # applied drag
    x_crush: jax.Array
    y_crush: jax.Array
    crush_len: jax.Array
    is_crushable: jax.Array      # bool
    lp_boost_x: jax.Array
    lp_boost_y: jax.Array
    doors_opened: jax.Array      # int32
    gold_collected: jax.Array
    jump_event: jax.Array        # int32, jump performed in this frame's think
    hor_input: jax.Array
    jump_input: jax.Array


@struct.dataclass
class Entities:
    """Dynamic entity fields; row i matches ``Level`` row i."""

    pos: jax.Array          # float[E, 2]
    vel: jax.Array          # float[E, 2]   bounce blocks and death balls
    active: jax.Array       # bool[E]
    state: jax.Array        # int32[E]      type-specific code (FORMAT.md §5 table)
    cell: jax.Array         # int32[E, 2]   registered grid cell (may lag the position)
    stamp: jax.Array        # int32[E]      insertion stamp inside its cell
    in_grid: jax.Array      # bool[E]
    target: jax.Array       # float[E, 2]   drones
    dir: jax.Array          # int32[E]      drones: 0 right, 1 down, 2 left, 3 up
    touching: jax.Array     # bool[E]       boost pads
    armed: jax.Array        # bool[E]       shove thwumps
    m: jax.Array            # int32[E, 2]   shove thwump contact normal
    open_timer: jax.Array   # int32[E]      regular doors
    door_closed: jax.Array  # bool[E]       doors: segment active
    door_cnt: jax.Array     # int32[E]      doors: signed grid-edge count (spec §6.4.8 Q1)


@struct.dataclass
class SimState:
    ninja: Ninja
    ents: Entities
    frame: jax.Array           # ticks since load
    stamp_counter: jax.Array   # next grid insertion stamp
    switch_hit: jax.Array      # bool: an exit switch has been touched

    @property
    def pos(self):
        return jnp.stack([self.ninja.x, self.ninja.y], -1)

    @property
    def vel(self):
        return jnp.stack([self.ninja.vx, self.ninja.vy], -1)

    @property
    def won(self):
        return self.ninja.state == C.ST_CELEBRATING

    @property
    def dead(self):
        return (self.ninja.state == C.ST_DEAD) | (self.ninja.state == C.ST_AWAITING_DEATH)
