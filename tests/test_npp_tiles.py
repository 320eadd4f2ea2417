"""Tile geometry vs golden ``tile_segments.json`` (every id 0..37, nclone 076db764).

Section marks (§) cite docs/specs/npp.md.
"""

import json

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.npp import constants as C
from envs.npp.golden import npp_golden_dir
from envs.npp.tiles import build_tile_geometry_jit, padded_tiles

GOLDEN = json.loads((npp_golden_dir() / "tile_segments.json").read_text())["tiles"]
CELL = (21, 11)   # padded cell of inner (20, 10)


@pytest.fixture(scope="module")
def geometries():
    """One batched (vmapped) build for all 38 isolated tiles: compiles once."""
    grids = []
    for tid in range(C.NUM_TILE_IDS):
        inner = np.zeros((C.INNER_W, C.INNER_H), np.int32)
        inner[20, 10] = tid
        grids.append(padded_tiles(inner))
    geo = jax.jit(jax.vmap(lambda t: build_tile_geometry_jit(t)))(jnp.asarray(np.stack(grids)))
    return jax.tree.map(np.asarray, geo)


def _cell_segments(geo, k, cx, cy):
    out = []
    for slot in range(C.SEG_SLOTS):
        if not geo["seg_valid"][k, cx, cy, slot]:
            continue
        g = geo["seg_geom"][k, cx, cy, slot]
        ox, oy = 24 * CELL[0], 24 * CELL[1]
        if geo["seg_arc"][k, cx, cy, slot]:
            out.append(dict(slot=slot, kind="C", center=[int(g[0] - ox), int(g[1] - oy)],
                            quadrant=[int(g[2]), int(g[3])], convex=bool(geo["seg_convex"][k, cx, cy, slot])))
        else:
            out.append(dict(slot=slot, kind="L", p1=[int(g[0] - ox), int(g[1] - oy)],
                            p2=[int(g[2] - ox), int(g[3] - oy)]))
    return out


@pytest.mark.parametrize("tid", range(C.NUM_TILE_IDS))
def test_tile_segments_match_golden(geometries, tid):
    gold = GOLDEN[str(tid)]
    ours = []
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            for s in _cell_segments(geometries, tid, CELL[0] + dx, CELL[1] + dy):
                s["owner_cell_offset"] = [dx, dy]
                ours.append(s)
    assert len(ours) == gold["n_segments"]
    by_key = {(tuple(s["owner_cell_offset"]), s["slot"]): s for s in ours}
    for g in gold["segments"]:
        s = by_key[(tuple(g["owner_cell_offset"]), g["slot"])]
        assert s["kind"] == g["kind"]
        if g["kind"] == "L":
            assert s["p1"] == g["p1"] and s["p2"] == g["p2"]
        else:
            assert s["center"] == g["center"] and s["quadrant"] == g["quadrant"] and s["convex"] == g["convex"]


@pytest.mark.parametrize("tid", range(C.NUM_TILE_IDS))
def test_half_edge_sums_and_grid_edges(geometries, tid):
    gold = GOLDEN[str(tid)]
    bx, by = 2 * CELL[0], 2 * CELL[1]
    for key, gkey in (("half_hor", "hor_half_edge_sum"), ("half_ver", "ver_half_edge_sum"),
                      ("edge_hor", "hor_grid_edge"), ("edge_ver", "ver_grid_edge")):
        # remove the contribution of an empty map (border) to isolate the tile's own lattice values
        base = geometries[key][0] if tid != 0 else np.zeros_like(geometries[key][0])
        diff = geometries[key][tid] - base if key.startswith("half") else None
        window = {}
        for kx in range(3):
            for ky in range(3):
                v = geometries[key][tid][bx + kx, by + ky] if diff is None else diff[bx + kx, by + ky]
                if v != 0:
                    window[(kx, ky)] = int(v)
        assert window == {(k[0], k[1]): k[2] for k in gold[gkey]}


def test_segment_table_shapes_and_jit():
    tiles = jnp.asarray(padded_tiles(np.random.default_rng(0).integers(0, 34, (C.INNER_W, C.INNER_H))))
    geo = build_tile_geometry_jit(tiles)
    chex.assert_shape(geo["seg_geom"], (C.GRID_W, C.GRID_H, C.SEG_SLOTS, 4))
    chex.assert_shape(geo["edge_hor"], (C.HALF_W, C.HALF_H))
    # a fully random level keeps every cell within 8 slots and has a few thousand segments (spec §2.5)
    n = int(geo["seg_valid"].sum())
    assert 2500 < n < 4000


def test_segment_kinds_decode_to_the_full_tables():
    """A Level stores only ``seg_kind``; decoding it (as geometry.gather_segments does) gives
    back every slot's validity, arc/convex flags and geometry of the full tables."""
    tiles = jnp.asarray(padded_tiles(np.random.default_rng(1).integers(0, 34, (C.INNER_W, C.INNER_H))))
    geo = jax.tree.map(np.asarray, build_tile_geometry_jit(tiles))
    kind = geo["seg_kind"].astype(np.int32)
    assert geo["seg_kind"].dtype == np.int8
    np.testing.assert_array_equal(kind >= 0, geo["seg_valid"])
    k = np.maximum(kind, 0)
    cx, cy = np.meshgrid(np.arange(C.GRID_W), np.arange(C.GRID_H), indexing="ij")
    origin = np.stack([24 * cx, 24 * cy, 24 * cx, 24 * cy], -1)[:, :, None, :]
    geom = C.SEG_KIND_LOCAL[k] + C.SEG_KIND_SHIFT[k] * origin
    v = geo["seg_valid"]
    np.testing.assert_array_equal(geom[v], geo["seg_geom"][v])
    np.testing.assert_array_equal(C.SEG_KIND_ARC[k][v], geo["seg_arc"][v])
    np.testing.assert_array_equal(C.SEG_KIND_CONVEX[k][v], geo["seg_convex"][v])
    assert geo["seg_arc"].any() and geo["seg_convex"].any() and (~geo["seg_arc"][v]).any()
