"""Tile collision geometry (spec §2) and grid-edge tables (§6.4.2), built by array ops.

Everything here is jittable: ``build_tile_geometry(tiles)`` turns a padded ``int[44, 25]``
tile-id grid (indexed ``[x, y]``, border included) into per-cell padded segment tables that keep
nclone's per-cell list order (non-orthogonal segment first, then owned horizontal half-edges
with kx outer / ky inner, then vertical ones). The closest-point search keeps the *first* of
equal scores, so this order is part of the physics.

Section marks (§) cite docs/specs/npp.md.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from envs.npp import constants as C


class TileGeometry(dict):
    """Plain dict of arrays (kept as a dict so it can be splatted into ``Level``)."""


def _lattice_sums(tiles: jax.Array, contrib: jax.Array):
    """Scatter-add the 12 per-tile half-edge values into the (89, 51) H and V lattices."""
    xs, ys = jnp.meshgrid(jnp.arange(C.GRID_W), jnp.arange(C.GRID_H), indexing="ij")
    vals = contrib[tiles]                                   # [44, 25, 12]
    hor = jnp.zeros((C.HALF_W, C.HALF_H), jnp.int32)
    ver = jnp.zeros((C.HALF_W, C.HALF_H), jnp.int32)
    for r in range(3):
        for c in range(2):
            hor = hor.at[2 * xs + c, 2 * ys + r].add(vals[..., 2 * r + c])
    for c in range(3):
        for r in range(2):
            ver = ver.at[2 * xs + c, 2 * ys + r].add(vals[..., 6 + 2 * c + r])
    return hor, ver


def half_edge_sums(tiles: jax.Array):
    """Signed half-edge sums (spec §2.3 step 2): ``hor, ver int32[89, 51]`` in {-1, 0, 1}."""
    return _lattice_sums(tiles, jnp.asarray(C.TILE_HALF_EDGES))


def grid_edges(tiles: jax.Array):
    """XOR grid-edge tables from tiles only (doors are added separately), spec §6.4.2."""
    hor, ver = _lattice_sums(tiles, jnp.asarray(C.TILE_GRID_EDGE_BITS))
    ky = jnp.arange(C.HALF_H)
    kx = jnp.arange(C.HALF_W)
    hor = hor + jnp.where((ky == 0) | (ky == C.HALF_H - 1), 1, 0)[None, :]
    ver = ver + jnp.where((kx == 0) | (kx == C.HALF_W - 1), 1, 0)[:, None]
    return hor % 2, ver % 2


def build_tile_geometry(tiles: jax.Array) -> dict:
    """Per-cell segment tables, shape ``[44, 25, 8]`` (+ trailing coordinate axis).

    Returns a dict with
      ``seg_kind int8`` (the slot's entry of ``constants.SEG_KIND_*``, -1 empty: what a
      ``Level`` stores; the rest follows from it and the cell), ``seg_valid bool``, ``seg_arc bool`` (slot is an arc, else a line),
      ``seg_geom int32[..., 4]`` (x1, y1, x2, y2 for lines; cx, cy, hor, ver for arcs),
      ``seg_convex bool``, plus the signed lattices ``half_hor/half_ver`` and the XOR
      grid-edge tables ``edge_hor/edge_ver``.
    """
    tiles = jnp.asarray(tiles, jnp.int32)
    hsum, vsum = half_edge_sums(tiles)
    cx, cy = jnp.meshgrid(jnp.arange(C.GRID_W), jnp.arange(C.GRID_H), indexing="ij")  # [44,25]

    # --- candidate 0: the tile's own non-orthogonal segment
    nonorth = jnp.asarray(C.TILE_NONORTH)[tiles]           # [44, 25, 6]
    kind = nonorth[..., 0]
    ox, oy = 24 * cx, 24 * cy
    is_line = kind == 1
    geom0 = jnp.where(
        is_line[..., None],
        jnp.stack([nonorth[..., 1] + ox, nonorth[..., 2] + oy, nonorth[..., 3] + ox, nonorth[..., 4] + oy], -1),
        jnp.stack([nonorth[..., 1] + ox, nonorth[..., 2] + oy, nonorth[..., 3], nonorth[..., 4]], -1),
    )
    cands_valid = [kind > 0]
    cands_arc = [kind == 2]
    cands_geom = [geom0]
    cands_convex = [nonorth[..., 5] == 1]
    cands_kind = [tiles]                                   # constants.SEG_KIND_*: tile's own segment

    def pad_get(arr, kx, ky):
        return arr[jnp.clip(kx, 0, C.HALF_W - 1), jnp.clip(ky, 0, C.HALF_H - 1)]

    # --- candidates 1..6: owned horizontal half-edges, kx outer / ky inner
    for c in range(2):
        for r in range(3):
            kx, ky = 2 * cx + c, 2 * cy + r
            s = pad_get(hsum, kx, ky)
            owned = (s == -1) if r == 0 else ((s != 0) if r == 1 else (s == 1))
            x0, y = 12 * kx, 12 * ky
            geom = jnp.where((s == 1)[..., None],
                             jnp.stack([x0, y, x0 + 12, y], -1),
                             jnp.stack([x0 + 12, y, x0, y], -1))
            cands_valid.append(owned)
            cands_arc.append(jnp.zeros_like(owned))
            cands_geom.append(geom)
            cands_convex.append(jnp.zeros_like(owned))
            cands_kind.append(C.NUM_TILE_IDS + 2 * (len(cands_kind) - 1) + (s == 1))
    # --- candidates 7..12: owned vertical half-edges, kx outer / ky inner
    for c in range(3):
        for r in range(2):
            kx, ky = 2 * cx + c, 2 * cy + r
            s = pad_get(vsum, kx, ky)
            owned = (s == -1) if c == 0 else ((s != 0) if c == 1 else (s == 1))
            x, y0 = 12 * kx, 12 * ky
            geom = jnp.where((s == 1)[..., None],
                             jnp.stack([x, y0 + 12, x, y0], -1),
                             jnp.stack([x, y0, x, y0 + 12], -1))
            cands_valid.append(owned)
            cands_arc.append(jnp.zeros_like(owned))
            cands_geom.append(geom)
            cands_convex.append(jnp.zeros_like(owned))
            cands_kind.append(C.NUM_TILE_IDS + 2 * (len(cands_kind) - 1) + (s == 1))

    valid = jnp.stack(cands_valid, -1)                     # [44, 25, 13]
    slot = jnp.cumsum(valid, -1) - 1                       # compacted slot, order preserved
    slot = jnp.where(valid, slot, C.SEG_SLOTS)             # invalid -> dropped (out of range)
    n = valid.shape[-1]

    def compact(x, fill):
        out = jnp.full(x.shape[:2] + (C.SEG_SLOTS + 1,) + x.shape[3:], fill, x.dtype)
        ii, jj = jnp.meshgrid(jnp.arange(C.GRID_W), jnp.arange(C.GRID_H), indexing="ij")
        ii = jnp.broadcast_to(ii[..., None], (C.GRID_W, C.GRID_H, n))
        jj = jnp.broadcast_to(jj[..., None], (C.GRID_W, C.GRID_H, n))
        return out.at[ii, jj, slot].set(x, mode="drop")[:, :, :C.SEG_SLOTS]

    geom = jnp.stack(cands_geom, 2)                        # [44, 25, 13, 4]
    edge_hor, edge_ver = grid_edges(tiles)
    kinds = jnp.stack([jnp.where(v, k, -1) for v, k in zip(cands_valid, cands_kind)], -1)
    return dict(
        seg_kind=compact(kinds.astype(jnp.int8), jnp.int8(-1)),
        seg_valid=compact(valid, False),
        seg_arc=compact(jnp.stack(cands_arc, -1), False),
        seg_geom=compact(geom, 0),
        seg_convex=compact(jnp.stack(cands_convex, -1), False),
        half_hor=hsum, half_ver=vsum,
        edge_hor=edge_hor, edge_ver=edge_ver,
    )


build_tile_geometry_jit = jax.jit(build_tile_geometry)


def padded_tiles(inner: np.ndarray) -> np.ndarray:
    """Inner ``[42, 23]`` (x, y) tile ids -> padded ``[44, 25]`` with the solid border."""
    out = np.ones((C.GRID_W, C.GRID_H), np.int32)
    out[1:-1, 1:-1] = inner
    return out
