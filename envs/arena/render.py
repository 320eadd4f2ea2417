"""Pure-JAX RGB rendering of an arena state: one ``scale x scale`` sprite per cell.

Agents are drawn as a body with a nose on the side they face (frozen agents are ice blue);
converters have a colour per kind, dimmed while converting or cooling down, with a bright
centre dot when they hold output items ready to take. ``render_indexed`` draws the same frame
as indices into ``PALETTE`` (a third of the bytes, and a GIF's palette as it is).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from envs.arena import constants as K
from envs.arena.state import EnvState

COLOR_EMPTY = (24, 24, 28)
COLOR_VOID = (0, 0, 0)
COLOR_WALL = (110, 110, 120)
COLOR_AGENT = (220, 60, 50)
COLOR_AGENT_FROZEN = (150, 210, 255)
COLOR_NOSE = (255, 230, 60)
COLOR_READY = (255, 255, 255)
# mine_red, generator_red, altar, lasery, armory
COLOR_CONV = np.array(
    [(150, 90, 40), (60, 160, 220), (230, 200, 40), (200, 60, 200), (90, 200, 90)], np.uint8
)


# ``render_indexed``'s colours (its indices below): the cells, the agents' parts, then each
# converter kind idle and dimmed (converting or cooling down).
PALETTE = np.concatenate([
    np.array([COLOR_EMPTY, COLOR_VOID, COLOR_WALL, COLOR_AGENT, COLOR_AGENT_FROZEN, COLOR_NOSE,
              COLOR_READY], np.uint8),
    COLOR_CONV,
    (COLOR_CONV.astype(np.int32) * 3 // 5).astype(np.uint8),
])
_EMPTY, _VOID, _WALL, _AGENT, _AGENT_FROZEN, _NOSE, _READY = range(7)
_CONV, _CONV_BUSY = 7, 7 + K.NUM_CONV_KINDS


def render(state: EnvState, scale: int = 8) -> jnp.ndarray:
    """uint8[H * scale, W * scale, 3]."""
    return jnp.asarray(PALETTE)[render_indexed(state, scale)]


def render_indexed(state: EnvState, scale: int = 8) -> jnp.ndarray:
    """uint8[H * scale, W * scale] indices into ``PALETTE`` (``render``'s frame)."""
    h, w = state.grid_obj.shape
    obj = state.grid_obj.astype(jnp.int32)
    aid = state.grid_agent.astype(jnp.int32)
    m = state.conv_kind.shape[0]
    ci = jnp.clip(obj, 0, max(m - 1, 0))

    base = jnp.full((h, w), _EMPTY, jnp.uint8)
    base = jnp.where(obj == K.CELL_WALL, jnp.uint8(_WALL), base)
    base = jnp.where(obj == K.CELL_VOID, jnp.uint8(_VOID), base)
    if m > 0:
        kind = jnp.clip(state.conv_kind.astype(jnp.int32), 0, K.NUM_CONV_KINDS - 1)
        busy = state.conv_converting | state.conv_cooling
        conv = jnp.where(busy, _CONV_BUSY + kind, _CONV + kind).astype(jnp.uint8)
        base = jnp.where(obj >= 0, conv[ci], base)
    n = state.agent_pos.shape[0]
    ai = jnp.clip(aid, 0, n - 1)
    frozen = state.agent_frozen[ai] > 0
    agent = jnp.where(frozen, jnp.uint8(_AGENT_FROZEN), jnp.uint8(_AGENT))
    is_agent = aid >= 0
    base = jnp.where(is_agent, agent, base)

    img = jnp.repeat(jnp.repeat(base, scale, axis=0), scale, axis=1)
    # per-pixel position inside its cell
    ly = jnp.arange(h * scale) % scale
    lx = jnp.arange(w * scale) % scale
    ly, lx = ly[:, None], lx[None, :]

    def cell(a):  # per-cell value -> per-pixel
        return jnp.repeat(jnp.repeat(a, scale, axis=0), scale, axis=1)

    q = max(scale // 4, 1)
    mid = (lx >= scale // 2 - q) & (lx < scale // 2 + q)
    mid_y = (ly >= scale // 2 - q) & (ly < scale // 2 + q)
    ori = cell(state.agent_ori[ai].astype(jnp.int32))
    nose = jnp.select(
        [ori == 0, ori == 1, ori == 2, ori == 3],
        [(ly < q) & mid, (ly >= scale - q) & mid, (lx < q) & mid_y, (lx >= scale - q) & mid_y],
        False,
    )
    img = jnp.where(cell(is_agent) & nose, jnp.uint8(_NOSE), img)
    if m > 0:
        k = jnp.clip(state.conv_kind.astype(jnp.int32), 0, K.NUM_CONV_KINDS - 1)
        ready = jnp.any((jnp.asarray(K.RECIPE_OUTPUT)[k] > 0) & (state.conv_inv > 0), axis=-1)
        ready_cell = cell((obj >= 0) & ready[ci])
        dot = (jnp.abs(ly - scale // 2) < max(scale // 6, 1)) & (
            jnp.abs(lx - scale // 2) < max(scale // 6, 1)
        )
        img = jnp.where(ready_cell & dot, jnp.uint8(_READY), img)
    return img


def eval_scale(state: EnvState, pixels: int = 192) -> int:
    """The sprite size that draws the map of ``state`` about ``pixels`` wide (at least 2)."""
    return max(2, pixels // max(state.grid_obj.shape))


def render_episode(env, params, key, steps: int, policy=None, scale: int = 6,
                   policy_carry=None) -> np.ndarray:
    """Frames uint8[steps + 1, H * scale, W * scale, 3] of one episode (no auto-reset).

    ``policy(key, obs) -> int32[A]`` picks the actions; default: uniform random. A recurrent
    policy passes its initial ``policy_carry`` and is called as
    ``policy(key, obs, carry) -> (int32[A], carry)``.
    """
    import jax

    if policy is None:

        def policy(k, obs):
            return jax.random.randint(k, (env.num_agents,), 0, K.NUM_ACTIONS, dtype=jnp.int32)

    key, k_reset = jax.random.split(key)
    obs, state = jax.jit(env.reset_env)(k_reset, params)

    def body(carry, k):
        obs, state, pc = carry
        k_act, k_step = jax.random.split(k)
        if policy_carry is None:
            actions = policy(k_act, obs)
        else:
            actions, pc = policy(k_act, obs, pc)
        obs, state, *_ = env.step_env(k_step, state, actions, params)
        return (obs, state, pc), render(state, scale)

    first = render(state, scale)
    _, frames = jax.jit(lambda c, ks: jax.lax.scan(body, c, ks))(
        (obs, state, policy_carry), jax.random.split(key, steps)
    )
    return np.concatenate([np.asarray(first)[None], np.asarray(frames)], axis=0)


def render_episode_gif(
    env, path, steps: int | None = None, policy=None, seed: int = 0, fps: int = 10,
    policy_carry=None, params=None,
):
    """Write a GIF of one episode of ``env`` (an ``ArenaEnv``) under ``params`` (default: its
    first named task), played by a random policy unless ``policy`` is given (see
    ``render_episode``). Returns the path."""
    import imageio.v2 as imageio
    import jax

    params = next(iter(env.named_tasks().values())) if params is None else params
    steps = env.max_steps if steps is None else min(int(steps), env.max_steps)
    frames = render_episode(env, params, jax.random.key(seed), steps, policy,
                            policy_carry=policy_carry)
    imageio.mimsave(str(path), list(frames), duration=1.0 / fps)
    return path
