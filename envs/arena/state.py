"""The arena's state and parameter pytrees.

``EnvState`` holds one episode (fixed shapes: ``A`` agents, ``C`` converter slots, an
``H x W`` grid). ``EnvParams`` holds the task: everything in it is an array, so a batch of
environments can carry different tasks (vmap over axis 0) without recompiling.

Section marks (§) cite docs/specs/arena.md; FORMAT.md is tests/data/golden/arena/FORMAT.md.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs.arena import constants as K


@struct.dataclass
class EnvParams:
    # Capped holdings potential (§8): Phi = sum_k min(weight_k * amount_k, cap_k).
    reward_weight: jax.Array  # float32[10]
    reward_cap: jax.Array  # float32[10]  (+inf = no cap)
    # Attack cost in lasers: required and consumed (1 = combat on, 100 = combat off, §1.5).
    attack_cost: jax.Array  # int32[]
    freeze_duration: jax.Array  # int32[]
    # Converter recipes and timings per kind (mine, generator, altar, lasery, armory).
    recipe_input: jax.Array  # int32[5, 10]  (only K.INPUT_ITEMS columns may be non-zero)
    recipe_output: jax.Array  # int32[5, 10]  (only K.OUTPUT_ITEMS columns may be non-zero)
    cooldown: jax.Array  # int32[5]
    initial_resource_count: jax.Array  # int32[5]: initial units of each output item
    # Map generation: objects per quadrant (wall, altar, mine, generator, lasery, armory);
    # each must be <= the env's static capacity.
    quadrant_counts: jax.Array  # int32[6]
    # Initial inventory of every agent (applied in item-id order).
    initial_inventory: jax.Array  # int32[10]
    max_steps: jax.Array  # int32[]
    # v0 desync (§10.3): reset_env_first draws the first episode's horizon H ~ U{1..max_steps}.
    desync_episodes: jax.Array  # bool[]


def make_params(
    *,
    easy_altar: bool = True,
    shaped_rewards: bool = True,
    combat: bool = True,
    max_steps: int = 1000,
    desync_episodes: bool = False,
    initial_resource_count=(0, 0, 0, 0, 0),
    quadrant_counts=tuple(K.DEFAULT_QUADRANT_COUNTS),
    reward_weight=None,
    reward_cap=None,
    cooldown=tuple(K.CONV_COOLDOWN),
    initial_inventory=(0,) * K.NUM_RESOURCES,
) -> EnvParams:
    """Host-side constructor; the default is the recipe ``arena_basic_easy_shaped``."""
    weight = np.zeros(K.NUM_RESOURCES, np.float32)
    cap = np.full(K.NUM_RESOURCES, np.inf, np.float32)
    weight[K.HEART], cap[K.HEART] = 1.0, 100.0
    if shaped_rewards:
        for item, w in (
            (K.ORE_RED, 0.1),
            (K.BATTERY_RED, 0.8),
            (K.LASER, 0.5),
            (K.ARMOR, 0.5),
            (K.BLUEPRINT, 0.5),
        ):
            weight[item], cap[item] = w, 1.0
    if reward_weight is not None:
        weight = np.asarray(reward_weight, np.float32)
    if reward_cap is not None:
        cap = np.asarray(reward_cap, np.float32)
    recipe_in = K.RECIPE_INPUT.copy()
    recipe_in[K.ALTAR, K.BATTERY_RED] = 1 if easy_altar else 3
    return EnvParams(
        reward_weight=jnp.asarray(weight),
        reward_cap=jnp.asarray(cap),
        attack_cost=jnp.asarray(1 if combat else 100, jnp.int32),
        freeze_duration=jnp.asarray(K.FREEZE_DURATION, jnp.int32),
        recipe_input=jnp.asarray(recipe_in),
        recipe_output=jnp.asarray(K.RECIPE_OUTPUT),
        cooldown=jnp.asarray(np.asarray(cooldown, np.int32)),
        initial_resource_count=jnp.asarray(np.asarray(initial_resource_count, np.int32)),
        quadrant_counts=jnp.asarray(np.asarray(quadrant_counts, np.int32)),
        initial_inventory=jnp.asarray(np.asarray(initial_inventory, np.int32)),
        max_steps=jnp.asarray(max_steps, jnp.int32),
        desync_episodes=jnp.asarray(desync_episodes, jnp.bool_),
    )


@struct.dataclass
class EnvState:
    time: jax.Array  # int32[]: engine step counter (t after a step)
    horizon: jax.Array  # int32[]: this episode's max_steps (< max_steps only under desync)
    # --- agents
    agent_pos: jax.Array  # int16[A, 2] (r, c)
    agent_ori: jax.Array  # int8[A]
    agent_frozen: jax.Array  # uint8[A]: freeze_remaining counter
    agent_inv: jax.Array  # uint8[A, 10]
    # Inventory list order (the engine's unordered_map iteration order, FORMAT.md §7.2): an item
    # that becomes present gets a fresh, larger sequence number; tokens go by descending number.
    agent_inv_seq: jax.Array  # int32[A, 10]
    agent_last_action: jax.Array  # uint8[A]: flat id submitted (0 if invalid)
    agent_steps_without_motion: jax.Array  # int32[A]
    agent_max_steps_without_motion: jax.Array  # int32[A]
    agent_potential: jax.Array  # float32[A]: Phi credited so far
    episode_return: jax.Array  # float32[A]
    agent_stats: jax.Array  # int32[A, NUM_STATS]
    # --- converters (slots; kind -1 = unused slot)
    conv_kind: jax.Array  # int8[C]
    conv_pos: jax.Array  # int16[C, 2]
    conv_inv: jax.Array  # uint8[C, 10]
    conv_inv_seq: jax.Array  # int32[C, 10]
    conv_converting: jax.Array  # bool[C]
    conv_cooling: jax.Array  # bool[C]
    conv_event_time: jax.Array  # int32[C]: when the pending FinishConverting / CoolDown fires
    # --- grid
    grid_obj: jax.Array  # int16[H, W]: converter index, or K.CELL_EMPTY / CELL_WALL / CELL_VOID
    grid_agent: jax.Array  # int8[H, W]: agent id or -1
    inv_seq: jax.Array  # int32[]: next inventory sequence number
