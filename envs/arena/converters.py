"""Converter state machine (spec §3): maybe_start, FinishConverting and CoolDown events.

A converter has at most one pending event (finish or cooldown end); its time is stored in
``conv_event_time``. Events fire at the start of the step whose counter equals their time.

Section marks (§) cite docs/specs/arena.md.
"""

from __future__ import annotations

import jax.numpy as jnp

from envs.arena import constants as K
from envs.arena.state import EnvParams, EnvState


def maybe_start(kind, inv, converting, cooling, event_time, now, params: EnvParams, enabled=True):
    """Start a conversion if the converter is idle, below max_output and has the inputs.

    Works on any leading shape (a single converter or all of them). ``inv`` is int32[..., 10].
    Returns the new (inv, converting, event_time).
    """
    k = jnp.clip(kind, 0, K.NUM_CONV_KINDS - 1)
    need = params.recipe_input[k]
    out = params.recipe_output[k]
    out_held = jnp.sum(jnp.where(out > 0, inv, 0), axis=-1)
    can = (
        enabled
        & (kind >= 0)
        & ~converting
        & ~cooling
        & (out_held < K.CONV_MAX_OUTPUT)
        & jnp.all(inv >= need, axis=-1)
    )
    inv = jnp.where(can[..., None], inv - need, inv)
    converting = converting | can
    event_time = jnp.where(can, now + 1, event_time)
    return inv, converting, event_time


def fire_events(state: EnvState, now, params: EnvParams) -> EnvState:
    """Fire every converter event due at step ``now`` (all converters at once: each event only
    touches its own converter, so their relative order does not matter)."""
    kind = state.conv_kind.astype(jnp.int32)
    k = jnp.clip(kind, 0, K.NUM_CONV_KINDS - 1)
    inv = state.conv_inv.astype(jnp.int32)
    due = state.conv_event_time == now
    finish = state.conv_converting & due
    cooldown_end = state.conv_cooling & due

    # FinishConverting: add outputs, then cool down (or restart at once if cooldown is 0).
    out = params.recipe_output[k]
    new_inv = jnp.where(finish[:, None], jnp.minimum(inv + out, K.CONV_INV_LIMIT), inv)
    newly = (inv == 0) & (new_inv > 0)
    inv_seq = jnp.where(newly, state.inv_seq, state.conv_inv_seq)
    cd = params.cooldown[k]
    start_cooling = finish & (cd > 0)
    cooling = (state.conv_cooling & ~cooldown_end) | start_cooling
    converting = state.conv_converting & ~finish
    event_time = jnp.where(start_cooling, now + cd, state.conv_event_time)

    restart = (finish & (cd <= 0)) | cooldown_end
    new_inv, converting, event_time = maybe_start(
        kind, new_inv, converting, cooling, event_time, now, params, enabled=restart
    )
    return state.replace(
        conv_inv=new_inv.astype(jnp.uint8),
        conv_inv_seq=inv_seq,
        conv_converting=converting,
        conv_cooling=cooling,
        conv_event_time=event_time,
        inv_seq=state.inv_seq + 1,
    )
