"""N++ level dynamics (nclone 076db764, spec ``docs/specs/npp.md``) as pure, jittable JAX.

Public API::

    level = load_map(map_bytes)                  # fixed-shape arrays; one-line ValueError if malformed
    state = init_state(level, jnp.float32)       # float64 needs jax_enable_x64 (conformance dtype)
    state = tick(state, level, hor, jump)        # one 60 fps frame; hor in {-1,0,1}, jump in {0,1}
    state, stats = tick_stats(state, level, hor, jump, TickOptions(...))   # + depenetration counts
    hor, jump = action_to_inputs(action)         # Discrete(6): noop, left, right, jump, jump+left, jump+right
    state.ninja.x / .y / .vx / .vy / .state / .airborn, state.switch_hit, state.won, state.dead

``tick`` handles one environment; ``jax.vmap`` it over a batch of (state, level). Levels stacked
for vmap must share shapes (``max_entities``, ``max_doors``) and the static ``entity_types``
(pass e.g. ``ALL_ENTITY_TYPES`` or the union of a level pool's types to ``load_map``); by default a
level only traces the entity behaviours it contains, so generated levels (mines, exit, locked
doors) compile and run lean.

Modules: ``constants`` (every number), ``map_format`` (host parsing of map/replay bytes),
``tiles`` (jittable segment tables), ``level`` (``Level``), ``geometry`` (gathers and collision
primitives), ``ninja`` (integrate / collide / post-collision / think), the entities
(``entity_common``: cells, overlap tests, gather order; ``grid_edges``: line-of-sight tables;
``pickups``, ``doors``, ``solid_entities``, ``drones``, ``death_ball``: one family each;
``entity_phases``: the move / think / logical-collision passes), ``state`` (dataclasses),
``sim`` (``init_state``, ``tick``), ``bc_data`` (behaviour-cloning pairs re-simulated from
human replays), ``golden`` (golden-data paths and the batch runners behind
``python -m tools.npp_replay`` and ``python -m tools.npp_trajectory``).
"""

from envs.npp.level import ALL_ENTITY_TYPES, Level, load_map
from envs.npp.sim import TickOptions, action_to_inputs, init_state, tick, tick_stats
from envs.npp.state import Entities, Ninja, SimState

__all__ = ["ALL_ENTITY_TYPES", "Entities", "Level", "Ninja", "SimState", "TickOptions", "action_to_inputs",
           "init_state", "load_map", "tick", "tick_stats"]
