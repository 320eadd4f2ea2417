"""Assemble an ``EnvState`` at t = 0 from a placed map (shared by map generation and
``from_ascii``): converters get their initial resources and run maybe_start at t = 0, agents get
their initial inventory through the normal update path (it counts as ``.gained`` and is
rewarded at step 1, because the potential starts at 0)."""

from __future__ import annotations

import jax.numpy as jnp

from envs.arena import constants as K
from envs.arena.converters import maybe_start
from envs.arena.state import EnvParams, EnvState


def assemble_state(
    *,
    grid_obj,  # int16[H, W] static layer (converter index / cell code)
    agent_pos,  # int32[A, 2], agent id = row index
    conv_kind,  # int32[C] (-1 = unused slot)
    conv_pos,  # int32[C, 2]
    params: EnvParams,
    horizon,
    agent_inv=None,  # int32[A, 10] initial inventory (default: params.initial_inventory)
    agent_inv_rank=None,  # int32[A, 10] list position of each initial item (front = 0)
) -> EnvState:
    grid_obj = jnp.asarray(grid_obj, jnp.int16)
    h, w = grid_obj.shape
    agent_pos = jnp.asarray(agent_pos, jnp.int32)
    n = agent_pos.shape[0]
    conv_kind = jnp.asarray(conv_kind, jnp.int32)
    m = conv_kind.shape[0]

    grid_agent = jnp.full((h, w), -1, jnp.int8)
    grid_agent = grid_agent.at[agent_pos[:, 0], agent_pos[:, 1]].set(jnp.arange(n, dtype=jnp.int8))

    k = jnp.clip(conv_kind, 0, K.NUM_CONV_KINDS - 1)
    active = conv_kind >= 0
    conv_inv = jnp.where(
        active[:, None], params.recipe_output[k] * params.initial_resource_count[k][:, None], 0
    )
    conv_inv = jnp.minimum(conv_inv, K.CONV_INV_LIMIT)
    converting = jnp.zeros(m, jnp.bool_)
    cooling = jnp.zeros(m, jnp.bool_)
    event_time = jnp.full(m, -1, jnp.int32)
    conv_inv, converting, event_time = maybe_start(
        conv_kind, conv_inv, converting, cooling, event_time, 0, params
    )

    if agent_inv is None:
        agent_inv = jnp.broadcast_to(params.initial_inventory, (n, K.NUM_RESOURCES))
    agent_inv = jnp.clip(jnp.asarray(agent_inv, jnp.int32), 0, jnp.asarray(K.AGENT_INV_LIMIT))
    if agent_inv_rank is None:
        # applied in item-id order: each new item goes to the front of the list
        agent_inv_rank = jnp.broadcast_to(jnp.arange(K.NUM_RESOURCES)[::-1], (n, K.NUM_RESOURCES))
    # sequence numbers: larger = nearer the front; converters' initial items share seq 0
    agent_inv_seq = jnp.where(
        agent_inv > 0, K.NUM_RESOURCES - jnp.asarray(agent_inv_rank, jnp.int32), 0
    )

    stats = jnp.zeros((n, K.NUM_STATS), jnp.int32)
    stats = stats.at[:, K.S_GAINED : K.S_GAINED + K.NUM_RESOURCES].set(agent_inv)

    return EnvState(
        time=jnp.asarray(0, jnp.int32),
        horizon=jnp.asarray(horizon, jnp.int32),
        agent_pos=agent_pos.astype(jnp.int16),
        agent_ori=jnp.zeros(n, jnp.int8),
        agent_frozen=jnp.zeros(n, jnp.uint8),
        agent_inv=agent_inv.astype(jnp.uint8),
        agent_inv_seq=agent_inv_seq.astype(jnp.int32),
        agent_last_action=jnp.zeros(n, jnp.uint8),
        agent_steps_without_motion=jnp.zeros(n, jnp.int32),
        agent_max_steps_without_motion=jnp.zeros(n, jnp.int32),
        agent_potential=jnp.zeros(n, jnp.float32),
        episode_return=jnp.zeros(n, jnp.float32),
        agent_stats=stats,
        conv_kind=conv_kind.astype(jnp.int8),
        conv_pos=jnp.asarray(conv_pos, jnp.int16),
        conv_inv=conv_inv.astype(jnp.uint8),
        conv_inv_seq=jnp.zeros((m, K.NUM_RESOURCES), jnp.int32),
        conv_converting=converting,
        conv_cooling=cooling,
        conv_event_time=event_time,
        grid_obj=grid_obj,
        grid_agent=grid_agent,
        inv_seq=jnp.asarray(K.NUM_RESOURCES + 1, jnp.int32),
    )
