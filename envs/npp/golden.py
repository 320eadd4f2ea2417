"""Where the golden reference data lives, and jitted batch runners shared by the CLIs and tests.

Section marks (§) cite docs/specs/npp.md; FORMAT.md is tests/data/golden/npp/FORMAT.md.
"""

from __future__ import annotations

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from envs.golden_data import golden_dir  # re-exported: the N++ files are under npp/
from envs.npp.sim import entity_aux, entity_state_code, init_state, tick


# One padded shape for all conformance runs, so each runner compiles once.
CONFORMANCE_MAX_ENTITIES = 160
CONFORMANCE_MAX_DOORS = 8
CONFORMANCE_TICKS = 2000      # every golden run has at most 2000 inputs


def x64_scope():
    """Context manager enabling float64 for the enclosed code only (never flips the global flag)."""
    if hasattr(jax, "enable_x64"):
        return jax.enable_x64(True)
    from jax.experimental import enable_x64  # older JAX
    return enable_x64()



def npp_golden_dir() -> Path:
    return golden_dir() / "npp"


def expand_inputs(paths, suffix: str, default_dir: Path):
    """CLI arguments to files: a folder stands for its ``*suffix`` files (sorted); no argument
    means ``default_dir``. Returns ``(files, errors)``: one line per argument that is neither a
    file nor a folder holding such files, so a batch reports it and checks the rest."""
    files, errors = [], []
    for arg in (paths or [default_dir]):
        p = Path(arg)
        if p.is_dir():
            found = sorted(p.glob(f"*{suffix}"))
            if not found:
                errors.append(f"{p}: folder holds no {suffix} files")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            errors.append(f"{p}: no such file or folder")
    return files, errors


def observe(state, level):
    """The per-tick fields recorded in golden trajectories (FORMAT.md §5)."""
    n = state.ninja
    e = state.ents
    return dict(
        x=n.x, y=n.y, vx=n.vx, vy=n.vy, x_old=n.x_old, y_old=n.y_old, vx_old=n.vx_old, vy_old=n.vy_old,
        floor_nx=n.floor_nx, floor_ny=n.floor_ny, ceil_nx=n.ceil_nx, ceil_ny=n.ceil_ny,
        floor_sum_x=n.floor_sum_x, floor_sum_y=n.floor_sum_y, ceil_sum_x=n.ceil_sum_x, ceil_sum_y=n.ceil_sum_y,
        wall_normal=n.wall_normal, applied_gravity=n.gravity, applied_drag=n.drag,
        x_crush=n.x_crush, y_crush=n.y_crush, crush_len=n.crush_len, lp_boost_x=n.lp_boost_x,
        lp_boost_y=n.lp_boost_y, state=n.state, airborn=n.airborn, airborn_old=n.airborn_old, walled=n.walled,
        floor_count=n.floor_count, ceiling_count=n.ceil_count, jump_buffer=n.jump_buffer,
        floor_buffer=n.floor_buffer, wall_buffer=n.wall_buffer, launch_pad_buffer=n.lp_buffer,
        jump_duration=n.jump_duration, jump_input_old=n.jump_input_old, is_crushable=n.is_crushable,
        doors_opened=n.doors_opened, gold_collected=n.gold_collected, frame=state.frame, jump_event=n.jump_event,
        ent_xy=e.pos, ent_v=e.vel, ent_active=e.active, ent_state=entity_state_code(level, e),
        ent_aux=entity_aux(level, e), switch_hit=state.switch_hit,
    )


@functools.partial(jax.jit, static_argnames=("dtype",))
def run_inputs(level, hor, jump, reset_after, n_ticks, dtype=jnp.float64):
    """Tick through the first ``n_ticks`` of ``hor/jump`` (padded to a common length T),
    rebuilding the state where ``reset_after[t-1]`` (after tick t). Returns observations for
    rows 0..T (row t = state after tick t; rows past ``n_ticks`` stay zero)."""
    s0 = init_state(level, dtype)
    T = hor.shape[0]
    first = observe(s0, level)
    bufs = jax.tree.map(lambda a: jnp.zeros((T + 1,) + a.shape, a.dtype).at[0].set(a), first)

    def cond(c):
        return c[0] < n_ticks

    def body(c):
        t, s, bufs = c
        s = tick(s, level, hor[t], jump[t])
        obs = observe(s, level)
        bufs = jax.tree.map(lambda b, o: lax.dynamic_update_index_in_dim(b, o, t + 1, 0), bufs, obs)
        s = jax.tree.map(lambda a, b: jnp.where(reset_after[t], a, b), s0, s)
        return t + 1, s, bufs

    return lax.while_loop(cond, body, (jnp.int32(0), s0, bufs))[2]


def simulate(map_bytes, hor, jump, reset_after=None, dtype=jnp.float64, require_exit=True, entity_types="all"):
    """Host helper: load ``map_bytes`` at the conformance shape and run the inputs.

    Returns numpy observations for rows 0..T (row t = state after tick t). By default every
    entity type is traced, so all golden maps share one compilation; ``entity_types=None``
    traces only the map's own types (the lean path generated levels use)."""
    from envs.npp.level import ALL_ENTITY_TYPES, load_map
    T = len(hor)
    if T > CONFORMANCE_TICKS:
        raise ValueError(f"{T} inputs exceed the conformance length {CONFORMANCE_TICKS}")
    level = load_map(map_bytes, CONFORMANCE_MAX_ENTITIES, CONFORMANCE_MAX_DOORS, require_exit=require_exit,
                     entity_types=ALL_ENTITY_TYPES if entity_types == "all" else entity_types)
    pad = lambda a: np.concatenate([np.asarray(a, np.int32), np.zeros(CONFORMANCE_TICKS - T, np.int32)])
    reset = np.zeros(T, bool) if reset_after is None else np.asarray(reset_after, bool)
    out = run_inputs(level, jnp.asarray(pad(hor)), jnp.asarray(pad(jump)), jnp.asarray(pad(reset) != 0),
                     jnp.int32(T), dtype=dtype)
    return jax.tree.map(lambda a: np.asarray(a)[:T + 1], out)
