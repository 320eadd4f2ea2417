"""Build a state from an ASCII map (legend of the golden FORMAT.md): ``#`` wall, ``.`` empty,
``@`` agent, ``m`` mine_red, ``n`` generator_red, ``_`` altar, ``S`` lasery, ``o`` armory.

Agent ids and converter indices are row-major, as in the engine. A map can be padded to a
larger static shape (``pad_to``, ``num_converters``) so scenarios of different sizes share one
compiled step: padded cells are ``CELL_VOID`` (never observed, never entered) and padded
converter slots are unused (kind -1).

A map is a list of equally long rows, walled all around, with at least one agent; anything
else raises ``MapError`` naming the row, column or character and what is allowed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import numpy as np

from envs.arena import constants as K
from envs.arena.build import assemble_state
from envs.arena.state import EnvParams, EnvState, make_params

_assemble = jax.jit(assemble_state)  # one compile per map shape instead of many eager ops

InventorySpec = Mapping[str, int] | Sequence[tuple[str, int]] | np.ndarray


class MapError(ValueError):
    """A malformed ASCII map; the message names the row, column or character at fault."""


_LEGEND = ", ".join(
    [f"{K.ASCII_WALL!r} wall", f"{K.ASCII_EMPTY!r} empty", f"{K.ASCII_AGENT!r} agent"]
    + [f"{ch!r} {K.CONV_KIND_NAMES[kind]}" for ch, kind in K.ASCII_CONV.items()])
_ALLOWED = {K.ASCII_WALL, K.ASCII_EMPTY, K.ASCII_AGENT, *K.ASCII_CONV}


def check_map(rows: Sequence[str]) -> None:
    """Raises ``MapError`` unless ``rows`` is a rectangular map of legend characters with a
    wall border (an open edge would let agents walk off the grid) and at least one agent."""
    if isinstance(rows, str):
        raise MapError("the map must be a list of row strings, not one string "
                       "(split it with .splitlines())")
    rows = list(rows)
    if not any(rows):
        raise MapError(f"the map is empty: give rows of {_LEGEND}, walled all around")
    for r, row in enumerate(rows):
        if not isinstance(row, str):
            raise MapError(f"row {r} is a {type(row).__name__}, not a string")
        if len(row) != len(rows[0]):
            raise MapError(f"row {r} has {len(row)} characters but row 0 has {len(rows[0])}: "
                           "every row must have the same width")
    for r, row in enumerate(rows):
        for c, ch in enumerate(row):
            if ch not in _ALLOWED:
                raise MapError(f"unknown map character {ch!r} at row {r}, column {c}; "
                               f"allowed: {_LEGEND}")
    h, w = len(rows), len(rows[0])
    if h < 3 or w < 3:
        raise MapError(f"the map is {h}x{w}; it needs at least 3x3: a wall border around "
                       "the cells")
    border = [(r, c) for r in range(h) for c in range(w) if r in (0, h - 1) or c in (0, w - 1)]
    for r, c in border:
        if rows[r][c] != K.ASCII_WALL:
            raise MapError(f"row {r}, column {c} is {rows[r][c]!r}, but the map's border must be "
                           f"walls ({K.ASCII_WALL!r})")
    if not any(K.ASCII_AGENT in row for row in rows):
        raise MapError(f"the map has no agent ({K.ASCII_AGENT!r})")


def parse_ascii(rows: Sequence[str]):
    """Returns (grid_obj int16[H, W], agent_pos int32[A, 2], conv_kind int32[C], conv_pos int32[C, 2]);
    raises ``MapError`` for a malformed map (``check_map``)."""
    check_map(rows)
    h, w = len(rows), len(rows[0])
    grid = np.full((h, w), K.CELL_EMPTY, np.int16)
    agents, kinds, conv_pos = [], [], []
    for r, row in enumerate(rows):
        for c, ch in enumerate(row):
            if ch == K.ASCII_WALL:
                grid[r, c] = K.CELL_WALL
            elif ch == K.ASCII_AGENT:
                agents.append((r, c))
            elif ch in K.ASCII_CONV:
                grid[r, c] = len(kinds)
                kinds.append(K.ASCII_CONV[ch])
                conv_pos.append((r, c))
    return (
        grid,
        np.array(agents, np.int32).reshape(-1, 2),
        np.array(kinds, np.int32),
        np.array(conv_pos, np.int32).reshape(-1, 2),
    )


def inventory_items(spec: InventorySpec | None) -> list[tuple[int, int]]:
    """Ordered (item id, amount) pairs from a dict / list of (name, amount) / int array[10]."""
    if spec is None:
        return []
    if isinstance(spec, np.ndarray) or (
        len(spec) == K.NUM_RESOURCES and all(isinstance(x, (int, np.integer)) for x in spec)
    ):
        arr = np.asarray(spec, np.int64)
        return [(k, int(arr[k])) for k in range(K.NUM_RESOURCES) if arr[k] != 0]
    pairs = spec.items() if isinstance(spec, Mapping) else spec
    out = []
    for name, amount in pairs:
        item = K.RESOURCE_NAMES.index(name) if isinstance(name, str) else int(name)
        out.append((item, int(amount)))
    return out


def from_ascii(
    rows: Sequence[str],
    *,
    params: EnvParams | None = None,
    initial_inventory: InventorySpec | None = None,
    inventories: Mapping[int, InventorySpec] | None = None,
    pad_to: tuple[int, int] | None = None,
    num_converters: int | None = None,
    num_agents: int | None = None,
    horizon: int | None = None,
) -> EnvState:
    """State at t = 0 for an ASCII map.

    ``initial_inventory`` is given to every agent (the engine's config path); ``inventories``
    maps agent id -> inventory and overrides it for that agent. Inventory order matters only
    for the order of observation tokens: items are applied in the given order, and the reset
    token order equals that order (as recorded by the engine).

    ``num_agents`` > the map's agents parks the extra agents (ids after the real ones) on void
    padding cells at the bottom-right of ``pad_to``: they are never observed and never touch
    the real map, provided the padding keeps them > 3 cells away from it (the attack reach).
    This lets maps with different agent counts share one compiled step.
    """
    params = make_params() if params is None else params
    grid, agent_pos, kinds, conv_pos = parse_ascii(rows)
    h, w = grid.shape
    if pad_to is not None:
        ph, pw = pad_to
        if ph < h or pw < w:
            raise ValueError(f"map {h}x{w} does not fit pad_to={pad_to}")
        padded = np.full((ph, pw), K.CELL_VOID, np.int16)
        padded[:h, :w] = grid
        grid = padded
    m = len(kinds)
    if num_converters is None:
        num_converters = max(m, 1)  # keep one (unused) slot: zero-size arrays cannot be indexed
    if num_converters != m:
        if num_converters < m:
            raise ValueError(f"{m} converters do not fit num_converters={num_converters}")
        kinds = np.concatenate([kinds, np.full(num_converters - m, -1, np.int32)])
        conv_pos = np.concatenate([conv_pos, np.zeros((num_converters - m, 2), np.int32)])
    if num_agents is not None and num_agents > agent_pos.shape[0]:
        extra = num_agents - agent_pos.shape[0]
        ph, pw = grid.shape
        park = [(ph - 1, pw - 1 - k) for k in range(extra)]
        if ph - 1 - (h - 1) <= 3 and pw - extra - (w - 1) <= 3:
            raise ValueError("pad_to leaves no room to park extra agents away from the map")
        if any(grid[r, c] != K.CELL_VOID for r, c in park):
            raise ValueError("parking cells must be void padding")
        agent_pos = np.concatenate([agent_pos, np.array(park, np.int32)])
    n = agent_pos.shape[0]
    inv = np.zeros((n, K.NUM_RESOURCES), np.int32)
    rank = np.tile(np.arange(K.NUM_RESOURCES, dtype=np.int32), (n, 1))
    base = inventory_items(initial_inventory)
    for i in range(n):
        items = (
            base if inventories is None or i not in inventories else inventory_items(inventories[i])
        )
        for pos, (item, amount) in enumerate(items):
            inv[i, item] = amount
            rank[i, item] = pos
    if horizon is None:
        horizon = int(params.max_steps)
    return _assemble(
        grid_obj=grid,
        agent_pos=agent_pos,
        conv_kind=kinds,
        conv_pos=conv_pos,
        params=params,
        horizon=horizon,
        agent_inv=inv,
        agent_inv_rank=rank,
    )
