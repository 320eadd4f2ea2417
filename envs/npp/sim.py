"""``init_state`` and the per-frame ``tick`` (spec §3.4), plus the action mapping (§7.1).

Section marks (§) cite docs/specs/npp.md; FORMAT.md is tests/data/golden/npp/FORMAT.md.
"""

from __future__ import annotations

import dataclasses

import chex
import jax
import jax.numpy as jnp
from jax import lax

from envs.npp import constants as C
from envs.npp.entity_common import cell_of, neighbourhood_rows, type_in
from envs.npp.entity_phases import logical_collisions, move_phase, think_phase
from envs.npp.level import Level
from envs.npp.ninja import (
    DEPEN_COMPACT,
    collide_vs_tiles,
    finish_post_collision,
    integrate,
    pre_collision,
    think,
    tile_wall_normal,
)
from envs.npp.solid_entities import PHYSICAL_TYPES, collide_vs_objects
from envs.npp.state import Entities, Ninja, SimState

# Discrete(6): 0 noop, 1 left, 2 right, 3 jump, 4 jump+left, 5 jump+right
_ACTION_HOR = (0, -1, 1, 0, -1, 1)
_ACTION_JUMP = (0, 0, 0, 1, 1, 1)


def action_to_inputs(action):
    """Discrete(6) action -> (hor in {-1, 0, 1}, jump in {0, 1}) as int32."""
    action = jnp.asarray(action, jnp.int32)
    return jnp.asarray(_ACTION_HOR, jnp.int32)[action], jnp.asarray(_ACTION_JUMP, jnp.int32)[action]


def cast_level(level: Level, dtype) -> Level:
    """Float fields of the level in the simulation dtype (geometry is exact in both)."""
    return level.replace(spawn=level.spawn.astype(dtype), ent_pos=level.ent_pos.astype(dtype),
                         door_seg=level.door_seg.astype(dtype))


def init_state(level: Level, dtype=jnp.float32) -> SimState:
    """Freshly loaded simulator state (reset = reload, FORMAT.md §3)."""
    dtype = jnp.dtype(dtype)
    canonical = getattr(jax.dtypes, "canonicalize_dtype", None)
    if (canonical(dtype) if canonical else jnp.asarray(0, dtype).dtype) != dtype:
        raise ValueError("float64 simulation needs jax.config.update('jax_enable_x64', True)")
    level = cast_level(level, dtype)
    f = lambda v: jnp.asarray(v, dtype)
    i32 = lambda v: jnp.asarray(v, jnp.int32)
    b = lambda v: jnp.asarray(v, bool)
    ninja = Ninja(
        x=level.spawn[0], y=level.spawn[1], vx=f(0), vy=f(0), x_old=f(0), y_old=f(0), vx_old=f(0), vy_old=f(0),
        floor_nx=f(0), floor_ny=f(-1), ceil_nx=f(0), ceil_ny=f(1),
        floor_sum_x=f(0), floor_sum_y=f(0), ceil_sum_x=f(0), ceil_sum_y=f(0),
        floor_count=i32(0), ceil_count=i32(0), wall_normal=f(0), walled=b(False), airborn=b(False),
        airborn_old=b(False), state=i32(0), jump_buffer=i32(-1), floor_buffer=i32(-1), wall_buffer=i32(-1),
        lp_buffer=i32(-1), jump_duration=i32(0), jump_input_old=i32(0), gravity=f(C.GRAVITY_FALL),
        drag=f(C.DRAG_REGULAR), x_crush=f(0), y_crush=f(0), crush_len=f(0), is_crushable=b(False),
        lp_boost_x=f(0), lp_boost_y=f(0), doors_opened=i32(0), gold_collected=i32(0), jump_event=i32(0),
        hor_input=i32(0), jump_input=i32(0),
    )
    t = level.ent_type
    E = t.shape[0]
    is_door_closed = (t == C.T_DOOR_REGULAR) | (t == C.T_DOOR_LOCKED)
    drones = (t == C.T_DRONE_ZAP) | (t == C.T_DRONE_MINI)
    ents = Entities(
        pos=level.ent_pos, vel=jnp.zeros((E, 2), dtype), active=t > 0,
        state=jnp.where(t == C.T_MINE_SAFE, C.MINE_UNTOGGLED, C.MINE_TOGGLED).astype(jnp.int32),
        cell=cell_of(level.ent_pos[:, 0], level.ent_pos[:, 1]),
        stamp=level.ent_stamp, in_grid=level.ent_in_grid & (t > 0),
        target=level.ent_pos, dir=jnp.where(drones, jnp.maximum(level.ent_orient, 0) // 2, 0).astype(jnp.int32),
        touching=jnp.zeros(E, bool), armed=jnp.zeros(E, bool), m=jnp.zeros((E, 2), jnp.int32),
        open_timer=jnp.zeros(E, jnp.int32), door_closed=is_door_closed,
        door_cnt=is_door_closed.astype(jnp.int32),
    )
    return SimState(ninja=ninja, ents=ents, frame=i32(0), stamp_counter=jnp.max(level.ent_stamp) + 1,
                    switch_hit=b(False))


@dataclasses.dataclass(frozen=True)
class TickOptions:
    """Static (trace-time) choices of how ``tick`` is computed.

    The defaults are the reference physics (bit-exact in float64). ``depen_loop`` /
    ``depen_unroll`` / ``depen_block`` / ``depen_compact_*`` / ``unroll_substeps`` /
    ``vector_logical`` only change the schedule and stay exact; the rest are
    for profiling (``is_reference`` says which): a lower depenetration cap than the reference's
    32 (``depen_cap``), no entity passes (``entities=False``: no move/think phases, no physical
    or logical collisions), no anti-tunnelling sweep (``sweep=False``), no tile collision at all
    (``tiles=False``).
    """

    depen_cap: int = C.DEPEN_ITERATIONS
    # "while" (early exit), "fixed" (fori_loop with a done mask) or "compact" (under vmap: the
    # first depen_block steps on every env, the rest only on the envs still running, gathered)
    depen_loop: str = "while"
    depen_unroll: int = 0            # masked depenetration steps traced inline before the loop
    depen_block: int = 1             # "fixed"/"compact": masked steps per loop iteration (fori_loop unroll)
    # "compact": the envs still running after depen_block steps are gathered into
    # max(batch / depen_compact_divisor, depen_compact_floor) lanes (capped at the batch); when
    # more are running, the rest of the steps also runs on the whole batch (rare; still exact)
    depen_compact_divisor: int = DEPEN_COMPACT[0]
    depen_compact_floor: int = DEPEN_COMPACT[1]
    # Exit switches hit in one frame: 0 = a while-loop over them (any level); k > 0 = k masked
    # passes, no loop (exact for levels with at most k exit switches, e.g. generated levels: 1).
    switch_passes: int = 0
    unroll_substeps: bool = True     # the 4 substeps as straight-line code (else a fori_loop)
    vector_logical: bool = True      # mines/gold/exit/switch-only levels: logical pass as array ops
    entities: bool = True
    sweep: bool = True
    tiles: bool = True

    @property
    def is_reference(self) -> bool:
        return self.depen_cap == C.DEPEN_ITERATIONS and self.entities and self.sweep and self.tiles


REFERENCE = TickOptions()


def _physics(level: Level, n: Ninja, e: Entities, counter, switch_hit, opts: TickOptions):
    dtype = n.x.dtype
    n = integrate(n)
    n = pre_collision(n)
    has_phys = opts.entities and bool(set(PHYSICAL_TYPES) & set(level.entity_types))
    if has_phys:
        phys = type_in(level, PHYSICAL_TYPES)
        order, count = neighbourhood_rows(level, e, n.x, n.y, phys)   # cached for all substeps

    def substep(n, e):
        if has_phys:
            n, e = collide_vs_objects(level, n, e, order, count)
        if not opts.tiles:
            return n, e, jnp.int32(0)
        n, evals = collide_vs_tiles(n, level, e.door_closed, dtype, opts.depen_cap, opts.depen_loop,
                                    opts.depen_unroll, opts.sweep, opts.depen_block,
                                    (opts.depen_compact_divisor, opts.depen_compact_floor))
        return n, e, evals

    if opts.unroll_substeps:
        evals = []
        for _ in range(C.SUBSTEPS):
            n, e, k = substep(n, e)
            evals.append(k)
        evals = jnp.stack(evals)
    else:
        def body(j, carry):
            n, e, evals = carry
            n, e, k = substep(n, e)
            return n, e, evals.at[j].set(k)

        n, e, evals = lax.fori_loop(0, C.SUBSTEPS, body, (n, e, jnp.zeros(C.SUBSTEPS, jnp.int32)))
    if opts.entities:
        n, e, counter, wall, switch_hit = logical_collisions(level, n, e, counter, switch_hit,
                                                             opts.vector_logical, opts.switch_passes)
    else:
        wall = jnp.zeros_like(n.x)
    wall = tile_wall_normal(n, level, e.door_closed, dtype, wall)
    n = finish_post_collision(n, wall)
    return n, e, counter, switch_hit, evals


def tick_stats(state: SimState, level: Level, hor, jump, options: TickOptions = REFERENCE):
    """``tick`` plus per-frame statistics: ``{"depen_evals": int32[4]}``, the closest-point
    searches of each substep's depenetration (0 where the physics did not run)."""
    n = state.ninja
    dtype = n.x.dtype
    chex.assert_equal_shape([level.ent_type, state.ents.active])
    chex.assert_rank([n.x, jnp.asarray(hor), jnp.asarray(jump)], 0)   # one env; vmap for batches
    level = cast_level(level, dtype)
    n = n.replace(hor_input=jnp.asarray(hor, jnp.int32), jump_input=jnp.asarray(jump, jnp.int32))
    e = state.ents
    counter = state.stamp_counter
    if options.entities:
        n, e, counter = move_phase(level, n, e, counter)
        n, e, counter = think_phase(level, n, e, counter)
    run = (n.state != C.ST_DISABLED) & (n.state != C.ST_DEAD)
    n, e, counter, switch_hit, evals = lax.cond(
        run, lambda a: _physics(level, *a, options),
        lambda a: a + (jnp.zeros(C.SUBSTEPS, jnp.int32),), (n, e, counter, state.switch_hit))
    n = lax.cond(n.state != C.ST_DISABLED, think, lambda x: x, n)
    new = SimState(ninja=n, ents=e, frame=state.frame + 1, stamp_counter=counter, switch_hit=switch_hit)
    return new, {"depen_evals": evals}


def tick(state: SimState, level: Level, hor, jump, options: TickOptions = REFERENCE) -> SimState:
    """Advance one 60 fps frame with inputs ``hor`` in {-1, 0, 1} and ``jump`` in {0, 1}.

    ``options`` (static, :class:`TickOptions`): how to compute it; the default is the reference.
    """
    return tick_stats(state, level, hor, jump, options)[0]


def entity_state_code(level: Level, e: Entities):
    """``ent_state`` as recorded in golden trajectories (FORMAT.md §5 table)."""
    t = level.ent_type
    doors = (t == C.T_DOOR_REGULAR) | (t == C.T_DOOR_LOCKED) | (t == C.T_DOOR_TRAP)
    drones = (t == C.T_DRONE_ZAP) | (t == C.T_DRONE_MINI)
    stateful = (t == C.T_MINE) | (t == C.T_MINE_SAFE) | (t == C.T_EXIT) | (t == C.T_THWUMP) | (t == C.T_SHOVE_THWUMP)
    return jnp.where(doors, e.door_closed.astype(jnp.int32),
                     jnp.where(drones, e.dir, jnp.where(t == C.T_BOOST_PAD, e.touching.astype(jnp.int32),
                                                         jnp.where(stateful, e.state, 0))))


def entity_aux(level: Level, e: Entities):
    t = level.ent_type
    z = jnp.zeros_like(e.pos[:, 0])
    drones = (t == C.T_DRONE_ZAP) | (t == C.T_DRONE_MINI)
    sh = t == C.T_SHOVE_THWUMP
    a0 = jnp.where(drones, e.target[:, 0], jnp.where(sh, e.m[:, 0].astype(z.dtype),
                                                      jnp.where(t == C.T_DOOR_REGULAR, e.open_timer.astype(z.dtype), z)))
    a1 = jnp.where(drones, e.target[:, 1], jnp.where(sh, e.m[:, 1].astype(z.dtype), z))
    a2 = jnp.where(sh, e.armed.astype(z.dtype), z)
    return jnp.stack([a0, a1, a2], -1)
