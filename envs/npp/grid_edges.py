"""Grid-edge tables and their line-of-sight queries (spec §6.4.2).

The tables flag the blocking 12 px half-edges that drones, thwumps and shove thwumps test (the
ninja and death balls use the collision segments instead): the level's XOR build from tiles plus
the signed per-door counts, which every ``set_door`` call moves (§6.4.8 Q1).

Section marks (§) cite docs/specs/npp.md.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from envs.npp import constants as C
from envs.npp.state import Entities

# Offsets 0..3 along one query: no query (and no drone step) covers more than 4 half-cells.
# numpy, so that importing does no device work.
EDGE_SPAN = np.arange(4, dtype=np.int32)


def edge_tables(level, e: Entities):
    """Grid-edge tables (tile XOR part + signed door counts), recomputed when doors may change.

    A door adds its count to the two half-edge keys on one side of its segment cell ``dc``: the
    bottom side (``hor``) of a horizontal door, the right side (``ver``) of a vertical one."""
    ds = level.door_slots
    dc = level.door_cell[ds]
    vert = level.door_vertical[ds]
    cnt = jnp.where(level.door_slot_valid, e.door_cnt[ds], 0)
    h_cnt = jnp.where(vert, 0, cnt)
    v_cnt = jnp.where(vert, cnt, 0)
    hor = level.edge_hor.astype(jnp.int32).at[2 * dc[:, 0], 2 * dc[:, 1] + 2].add(h_cnt, mode="drop")
    hor = hor.at[2 * dc[:, 0] + 1, 2 * dc[:, 1] + 2].add(h_cnt, mode="drop")
    ver = level.edge_ver.astype(jnp.int32).at[2 * dc[:, 0] + 2, 2 * dc[:, 1]].add(v_cnt, mode="drop")
    ver = ver.at[2 * dc[:, 0] + 2, 2 * dc[:, 1] + 1].add(v_cnt, mode="drop")
    return hor, ver


def is_empty_row(tab, x1, x2, y, d):
    """No blocking horizontal half-edge on the ``d`` side of half-cell row y, columns x1..x2."""
    ky = jnp.where(d == 1, y + 1, y)
    kx = x1 + EDGE_SPAN
    vals = tab[0][jnp.clip(kx, 0, C.EDGE_KX_MAX), jnp.clip(ky, 0, C.EDGE_KY_MAX)]
    return jnp.all((kx > x2) | (vals == 0))


def is_empty_column(tab, x, y1, y2, d):
    """No blocking vertical half-edge on the ``d`` side of half-cell column x, rows y1..y2."""
    kx = jnp.where(d == 1, x + 1, x)
    ky = y1 + EDGE_SPAN
    vals = tab[1][jnp.clip(kx, 0, C.EDGE_KX_MAX), jnp.clip(ky, 0, C.EDGE_KY_MAX)]
    return jnp.all((ky > y2) | (vals == 0))
