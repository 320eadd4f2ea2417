"""Per-agent episode statistics with the engine's names (spec §11).

Section marks (§) cite docs/specs/arena.md.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from envs.arena import constants as K
from envs.arena.state import EnvState


def episode_stats(state: EnvState) -> dict[str, jax.Array]:
    """``{name: float32[A]}`` for the episode so far (a stat the engine never books reads 0)."""
    s = state.agent_stats.astype(jnp.float32)
    out: dict[str, jax.Array] = {}
    for item in K.ARENA_ITEMS:
        name = K.RESOURCE_NAMES[item]
        out[f"{name}.gained"] = s[:, K.S_GAINED + item]
        out[f"{name}.lost"] = s[:, K.S_LOST + item]
        out[f"{name}.get"] = s[:, K.S_GET + item]
        out[f"{name}.put"] = s[:, K.S_PUT + item]
        out[f"{name}.amount"] = state.agent_inv[:, item].astype(jnp.float32)
        out[f"action.attack.red.steals.{name}.from.red"] = s[:, K.S_STEAL + item]
    for h, name in enumerate(K.HANDLER_NAMES):
        out[f"action.{name}.success"] = s[:, K.S_SUCCESS + h]
        out[f"action.{name}.failed"] = s[:, K.S_FAILED + h]
    out["action.failure_penalty"] = jnp.sum(
        s[:, K.S_FAILED : K.S_FAILED + len(K.HANDLER_NAMES)], axis=1
    )
    out["action.invalid_type"] = s[:, K.S_INVALID_TYPE]
    out["action.invalid_type.-1.0"] = s[:, K.S_INVALID_TYPE]
    out["status.frozen.ticks"] = s[:, K.S_FROZEN_TICKS]
    out["status.frozen.ticks.red"] = s[:, K.S_FROZEN_TICKS]
    out["status.max_steps_without_motion"] = state.agent_max_steps_without_motion.astype(
        jnp.float32
    )
    out["action.attack.red.friendly_fire"] = s[:, K.S_FRIENDLY_FIRE]
    out["action.attack.red.blocked_by.red"] = s[:, K.S_BLOCKED]
    out["action.attack.red.wasted_on_frozen"] = s[:, K.S_WASTED]
    return out
