"""Jittable N++ level generators for the stage families of spec §10 (levels are data).

``generate(key, stage) -> Level`` draws one preset row of ``stage`` (a :class:`StageParams`
pytree of arrays, so the stage itself is data and ``jax.vmap``/``jit`` never recompile per
stage) and builds a level with that preset's family. Every family carves an empty (tile 0)
playspace into a solid grid, places spawn, exit switch and exit door on empty cells of one
4-connected component (so each level is solvable on the tile graph: spawn -> switch -> exit;
``levels.solvable`` checks it), then optionally fills the area outside a 1-cell solid ring
with random tile ids 0..33 ("chaotic" edges, spec §1.4) and places toggle mines.

Preset row layout (``float32[NPARAM]``)::

    0 family id (FAMILIES)     1,2 width range      3,4 height range
    5,6 range A                7,8 range B          9 max mines (0 none)
    10 variant                 11,12 range C        13,14 range D       15 chaotic edges (0/1)

Family meaning of A/B/C/D (inclusive integer ranges):

    horizontal_corridor  -                                   variant: -
    vertical_corridor    A mine spacing                      variant 1: platforms (ledges)
    corridors            A number of corridors, C/D vertical drop width/height (w/h = horizontal)
    maze                 A maze cell size (1..max)
    single_chamber       -                                   variant 0 plain, 1 obstacle, 2 floor
                                                             mines, 3 gap, 4 ceiling hazard
    jump_required        A pit width, B mines per pit
    mine_maze            A skip columns, B mines per column
    hills                A number of hills, B height change
    islands              A island size
    jump_platforms       A platform spacing, B y offset
    multi_chamber        A number of chambers, C corridor length, D corridor width; w/h per chamber

Simplifications vs nclone (documented, deliberate): steps instead of slope tiles for hills;
binary-tree mazes; no locked doors; no decoy mines outside the playspace; platform spacing
clipped to a jumpable 6 tiles.

Section marks (§) cite docs/specs/npp.md.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs.npp import constants as C
from envs.npp.levels import (
    DEFAULT_GEN_MAX_DOORS,
    DEFAULT_GEN_MAX_ENTITIES,
    GEN_ENTITY_TYPES,
    build_level,
    stack_levels,
)

W, H = C.INNER_W, C.INNER_H   # inner playfield
NPARAM = 16
MAX_PRESETS = 12

FAMILIES = ("horizontal_corridor", "vertical_corridor", "corridors", "maze", "single_chamber",
            "jump_required", "mine_maze", "hills", "islands", "jump_platforms", "multi_chamber")
FAM = {n: i for i, n in enumerate(FAMILIES)}


def P(family, w, h, a=(0, 0), b=(0, 0), mines=0, variant=0, c=(0, 0), d=(0, 0), chaotic=1):
    row = np.zeros(NPARAM, np.float32)
    row[:] = [FAM[family], w[0], w[1], h[0], h[1], a[0], a[1], b[0], b[1], mines, variant,
              c[0], c[1], d[0], d[1], chaotic]
    return row


MANY = 40   # "mines, no cap" (bounded by the entity capacity)

# Presets of spec §10.3 (sizes in tiles).
PRESETS = {
    "horizontal_corridor/simplest": P("horizontal_corridor", (4, 10), (1, 2)),
    "horizontal_corridor/simplest_few_mines": P("horizontal_corridor", (4, 10), (1, 2), mines=8),
    "horizontal_corridor/simplest_with_mines": P("horizontal_corridor", (4, 10), (1, 2), mines=MANY),
    "horizontal_corridor/simpler": P("horizontal_corridor", (4, 15), (1, 4)),
    "horizontal_corridor/simple": P("horizontal_corridor", (4, 30), (1, 5), mines=MANY),
    "vertical_corridor/simplest": P("vertical_corridor", (1, 3), (4, 10)),
    "vertical_corridor/simplest_few_mines": P("vertical_corridor", (2, 4), (4, 10), a=(2, 5), mines=4),
    "vertical_corridor/simplest_with_mines": P("vertical_corridor", (2, 4), (4, 10), a=(2, 5), mines=MANY),
    "vertical_corridor/simpler": P("vertical_corridor", (1, 5), (4, 12), a=(2, 5)),
    "vertical_corridor/simpler_with_mines": P("vertical_corridor", (1, 4), (5, 8), a=(2, 5), mines=MANY),
    "vertical_corridor/simple": P("vertical_corridor", (1, 4), (8, 12), a=(3, 6), mines=MANY, variant=1),
    "vertical_corridor/platforms": P("vertical_corridor", (2, 5), (12, 18), a=(2, 5), mines=MANY, variant=1),
    "vertical_corridor/medium": P("vertical_corridor", (2, 6), (14, 22), a=(2, 5), mines=MANY, variant=1),
    "vertical_corridor/mine_gauntlet": P("vertical_corridor", (2, 4), (10, 16), a=(2, 5), mines=MANY, variant=1),
    "vertical_corridor/complex": P("vertical_corridor", (3, 8), (20, 22), a=(2, 5), mines=MANY, variant=1),
    "corridors/simplest": P("corridors", (4, 10), (1, 1), a=(2, 2), c=(1, 1), d=(2, 5)),
    "corridors/simplest_few_mines": P("corridors", (4, 10), (1, 1), a=(2, 2), c=(1, 1), d=(2, 5), mines=3),
    "corridors/simplest_with_mines": P("corridors", (4, 20), (1, 1), a=(2, 3), c=(1, 1), d=(2, 4), mines=MANY),
    "corridors/simple": P("corridors", (8, 15), (1, 2), a=(2, 4), c=(1, 3), d=(6, 10), mines=MANY),
    "corridors/medium": P("corridors", (10, 20), (1, 3), a=(3, 5), c=(2, 4), d=(8, 15), mines=MANY),
    "corridors/complex": P("corridors", (15, 25), (1, 3), a=(4, 5), c=(3, 6), d=(10, 15), mines=MANY),
    "maze/tiny": P("maze", (6, 10), (4, 7), a=(1, 1)),
    "maze/small": P("maze", (14, 30), (8, 16), a=(1, 3)),
    "maze/large": P("maze", (16, 30), (10, 18), a=(1, 4)),
    "maze/exploration": P("maze", (15, 40), (10, 20), a=(1, 4)),
    "hills/simple": P("hills", (10, 20), (8, 12), a=(1, 4), b=(1, 3)),
    "hills/medium": P("hills", (20, 35), (10, 18), a=(4, 8), b=(1, 8)),
    "hills/complex": P("hills", (30, 40), (16, 21), a=(6, 12), b=(2, 8)),
    "jump_required/simple": P("jump_required", (12, 20), (8, 10), a=(2, 3), b=(0, 2), mines=MANY),
    "jump_required/medium": P("jump_required", (16, 30), (8, 14), a=(3, 5), b=(0, 4), mines=MANY),
    "jump_required/complex": P("jump_required", (25, 40), (12, 18), a=(5, 7), b=(0, 6), mines=MANY),
    "jump_required/heavy_mine": P("jump_required", (20, 40), (10, 16), a=(4, 6), b=(3, 5), mines=MANY),
    "mine_maze/medium": P("mine_maze", (12, 25), (4, 7), a=(3, 6), b=(1, 4), mines=MANY),
    "mine_maze/complex": P("mine_maze", (20, 40), (6, 12), a=(3, 4), b=(4, 12), mines=MANY),
    "mine_maze/heavy": P("mine_maze", (15, 35), (5, 10), a=(3, 4), b=(3, 10), mines=MANY),
    "islands/medium": P("islands", (36, 38), (12, 19), a=(1, 4), mines=MANY),
    "islands/complex": P("islands", (37, 38), (16, 19), a=(1, 4), mines=MANY),
    "jump_platforms/medium": P("jump_platforms", (32, 38), (20, 21), a=(8, 12), b=(0, 3), mines=MANY),
    "jump_platforms/complex": P("jump_platforms", (38, 40), (20, 21), a=(8, 10), b=(0, 3), mines=MANY),
    "multi_chamber/medium_2": P("multi_chamber", (5, 10), (4, 7), a=(2, 2), c=(1, 5), d=(1, 3)),
    "multi_chamber/complex": P("multi_chamber", (5, 10), (5, 8), a=(2, 4), c=(1, 5), d=(1, 3)),
    "multi_chamber/exploration": P("multi_chamber", (4, 9), (5, 9), a=(2, 3), c=(3, 9), d=(1, 4)),
    "single_chamber/simple": P("single_chamber", (6, 15), (4, 8)),
    "single_chamber/obstacle": P("single_chamber", (8, 18), (4, 8), variant=1),
    "single_chamber/mines": P("single_chamber", (10, 20), (4, 8), variant=2, mines=MANY),
    "single_chamber/gap": P("single_chamber", (12, 25), (4, 8), variant=3, mines=MANY),
    "single_chamber/ceiling_hazard": P("single_chamber", (8, 18), (6, 10), variant=4),
}

# Stage categories of spec §10.2 (curriculum order §10.1) and their seed bases (test / train).
STAGES = {
    "simplest": ["vertical_corridor/simplest", "horizontal_corridor/simplest", "corridors/simplest"],
    "simplest_few_mines": ["vertical_corridor/simplest_few_mines", "horizontal_corridor/simplest_few_mines",
                           "corridors/simplest_few_mines"],
    "simplest_with_mines": ["vertical_corridor/simplest_with_mines", "horizontal_corridor/simplest_with_mines",
                            "corridors/simplest_with_mines"],
    "simpler": ["vertical_corridor/simpler", "horizontal_corridor/simple", "vertical_corridor/simpler_with_mines",
                "corridors/simple"],
    "simple": ["maze/tiny", "hills/simple", "vertical_corridor/simple", "jump_required/simple",
               "single_chamber/obstacle", "single_chamber/gap", "vertical_corridor/platforms", "corridors/simple"],
    "medium": ["maze/small", "multi_chamber/medium_2", "jump_required/medium", "mine_maze/medium", "hills/medium",
               "vertical_corridor/medium", "islands/medium", "jump_platforms/medium", "single_chamber/mines",
               "single_chamber/ceiling_hazard", "vertical_corridor/mine_gauntlet", "corridors/medium"],
    "complex": ["maze/large", "multi_chamber/complex", "jump_required/complex", "mine_maze/complex", "hills/complex",
                "vertical_corridor/complex", "islands/complex", "jump_platforms/complex", "corridors/complex"],
    "exploration": ["maze/exploration", "multi_chamber/exploration"],
    "mine_heavy": ["mine_maze/heavy", "jump_required/heavy_mine"],
}
STAGE_ORDER = ("simplest", "simplest_few_mines", "simplest_with_mines", "simpler", "simple", "medium", "complex",
               "exploration", "mine_heavy")
SEED_BASE = {"simplest": 100, "simplest_few_mines": 200, "simplest_with_mines": 200, "simpler": 500,
             "simple": 1000, "medium": 2000, "complex": 4000, "mine_heavy": 6000, "exploration": 7000}

# The staged curriculum's table (npp.md §10.1): stage -> (advance threshold, min episodes,
# regression threshold).
STAGE_THRESHOLDS = {
    "simplest": (0.70, 100, 0.0),
    "simplest_few_mines": (0.65, 100, 0.30),
    "simplest_with_mines": (0.60, 100, 0.30),
    "simpler": (0.60, 100, 0.30),
    "simple": (0.50, 75, 0.30),
    "medium": (0.45, 100, 0.25),
    "complex": (0.40, 150, 0.20),
    "exploration": (0.35, 150, 0.15),
    "mine_heavy": (0.30, 200, 0.15),
}


@struct.dataclass
class StageParams:
    presets: jax.Array   # float32[MAX_PRESETS, NPARAM]
    weights: jax.Array   # float32[MAX_PRESETS] (0 = unused row)


def stage_params(stage_or_presets) -> StageParams:
    """A stage name (``STAGES``), a preset name, or a list of preset names -> StageParams."""
    if isinstance(stage_or_presets, str):
        names = STAGES.get(stage_or_presets, [stage_or_presets])
    else:
        names = list(stage_or_presets)
    rows = np.zeros((MAX_PRESETS, NPARAM), np.float32)
    wts = np.zeros(MAX_PRESETS, np.float32)
    for i, n in enumerate(names):
        rows[i] = PRESETS[n]
        wts[i] = 1.0
    for i in range(len(names), MAX_PRESETS):
        rows[i] = rows[0]
    return StageParams(jnp.asarray(rows), jnp.asarray(wts))



# ----------------------------------------------------------------------------- cheap randomness
# Level generation draws many small random quantities; drawing each with threefry makes XLA
# compile times explode (tens of seconds). Instead one threefry call seeds a counter-based
# integer hash (lowbias32), and every draw is ``hash(seed, static draw id, element index)``.


def _lowbias32(x):
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


class _Key:
    """A generator 'key': a traced uint32[2] seed plus a static (Python int) draw id."""

    def __init__(self, seed, ident: int = 1):
        self.seed = seed
        self.ident = ident & 0xFFFFFFFF

    def split(self, n):
        return [_Key(self.seed, (self.ident * 1000003 + 7919 * (i + 1)) ^ 0x5BD1E995) for i in range(n)]

    def __iter__(self):
        raise TypeError("use .split(n)")

    def uniform(self, shape=()):
        size = int(np.prod(shape)) if shape else 1
        idx = jnp.arange(size, dtype=jnp.uint32)
        h = _lowbias32(self.seed[0] ^ _lowbias32(jnp.uint32(self.ident) + self.seed[1]))
        x = _lowbias32(h + idx * jnp.uint32(0x9E3779B9))
        x = _lowbias32(x ^ self.seed[1])
        u = (x >> 8).astype(jnp.float32) * jnp.float32(1.0 / (1 << 24))
        return u.reshape(shape) if shape else u[0]


def _split(key, n):
    return key.split(n)


def _uniform(key, shape=()):
    return key.uniform(shape)


def _bernoulli(key, p=0.5, shape=()):
    return key.uniform(shape) < p


def _randint(key, shape, lo, hi):
    """Uniform ints in [lo, hi) (traced bounds allowed)."""
    lo = jnp.asarray(lo, jnp.int32)
    hi = jnp.maximum(jnp.asarray(hi, jnp.int32), lo + 1)
    v = lo + jnp.floor(key.uniform(shape) * (hi - lo).astype(jnp.float32)).astype(jnp.int32)
    return jnp.minimum(v, hi - 1)


# ----------------------------------------------------------------------------- helpers

_XS, _YS = np.meshgrid(np.arange(W), np.arange(H), indexing="ij")   # [42, 23] inner coords


def _ri(key, lo, hi):
    """Uniform int in [lo, hi] (inclusive) with traced bounds."""
    lo = jnp.asarray(lo, jnp.int32)
    hi = jnp.maximum(jnp.asarray(hi, jnp.int32), lo)
    return _randint(key, (), lo, hi + 1)


def _rng(key, row, i):
    return _ri(key, jnp.round(row[i]).astype(jnp.int32), jnp.round(row[i + 1]).astype(jnp.int32))


def _rect(x0, y0, w, h):
    return (_XS >= x0) & (_XS < x0 + w) & (_YS >= y0) & (_YS < y0 + h)


def _pick(key, mask):
    """A random True cell of ``mask`` (x, y); (0, 0) if empty."""
    s = jnp.where(mask, _uniform(key, mask.shape), -1.0)
    i = jnp.argmax(s.reshape(-1))
    return jnp.stack([i // H, i % H]).astype(jnp.int32)


def _one(c):
    return (_XS == c[0]) & (_YS == c[1])


def _floor_cells(empty):
    below = jnp.concatenate([empty[:, 1:], jnp.zeros((W, 1), bool)], axis=1)
    return empty & ~below


def _centre(c):
    """Inner cell -> padded pixel centre."""
    return (C.CELL * (c.astype(jnp.float32) + 1.0) + C.CELL / 2)


def _mines(key, cand, n, M, dx=0.0, dy=0.0):
    """Up to ``n`` mines on distinct random ``cand`` cells, at cell centre + (dx, dy) px
    (dx/dy scalars or [42, 23] arrays). Returns pos float[M, 2], valid bool[M]."""
    s = jnp.where(cand, _uniform(key, cand.shape), -1.0).reshape(-1)
    vals, idx = jax.lax.top_k(s, M)
    valid = (vals >= 0) & (jnp.arange(M) < n)
    cx, cy = idx // H, idx % H
    dxa = jnp.broadcast_to(jnp.asarray(dx, jnp.float32), (W, H)).reshape(-1)[idx]
    dya = jnp.broadcast_to(jnp.asarray(dy, jnp.float32), (W, H)).reshape(-1)[idx]
    pos = jnp.stack([_centre(cx) + dxa, _centre(cy) + dya], -1)
    return pos, valid


def _jumpable(key, empty):
    """Floor cells where a floor mine can be jumped over: the cell above is empty and mines
    are at least 3 columns apart (random phase)."""
    above = jnp.concatenate([jnp.zeros((W, 1), bool), empty[:, :-1]], axis=1)
    phase = _randint(key, (), 0, 3)
    return above & ((_XS + phase) % 3 == 0)


def _num_mines(key, row, M):
    cap = jnp.minimum(jnp.round(row[9]).astype(jnp.int32), M)
    return jnp.where(cap > 0, _ri(key, jnp.minimum(1, cap), cap), 0)


def _ends(empty, x0, x1, floor_row):
    """spawn at one end, exit at the other (on the floor row)."""
    return jnp.stack([x0, floor_row]), jnp.stack([x1, floor_row])


# ----------------------------------------------------------------------------- families
# Each returns (empty bool[42, 23], spawn, switch, exit (inner cells int[2]), mine_pos, mine_valid)


def _place_three(key, empty, spawn_mask, exit_mask):
    """spawn on ``spawn_mask``, exit on ``exit_mask``, switch on any other floor cell."""
    k1, k2, k3 = _split(key, 3)
    fl = _floor_cells(empty)
    sp = _pick(k1, spawn_mask & fl)
    ex = _pick(k2, exit_mask & empty & ~_one(sp))
    sw_c = fl & ~_one(sp) & ~_one(ex)
    sw = _pick(k3, jnp.where(jnp.any(sw_c), sw_c, empty & ~_one(sp) & ~_one(ex)))
    return sp, sw, ex


def _swap(key, a, b):
    s = _bernoulli(key)
    return jnp.where(s, b, a), jnp.where(s, a, b)


def _horizontal_corridor(key, row, M):
    ks = _split(key, 8)
    w, h = _rng(ks[0], row, 1), _rng(ks[1], row, 3)
    x0, y0 = _ri(ks[2], 1, W - 1 - w), _ri(ks[3], 1, H - 1 - h)
    empty = _rect(x0, y0, w, h)
    fy = y0 + h - 1
    a, b = _swap(ks[4], jnp.stack([x0, fy]), jnp.stack([x0 + w - 1, fy]))
    sp, sw, ex = _place_three(ks[5], empty, _one(a), _one(b))
    # ceiling mines (only in corridors at least 2 high), never above spawn/switch/exit
    cand = empty & (_YS == y0) & (h >= 2) & (_XS != sp[0]) & (_XS != sw[0]) & (_XS != ex[0])
    pos, valid = _mines(ks[6], cand, _num_mines(ks[7], row, M), M, dy=-8.0)
    return empty, sp, sw, ex, pos, valid


def _vertical_corridor(key, row, M):
    ks = _split(key, 10)
    w, h = _rng(ks[0], row, 1), _rng(ks[1], row, 3)
    x0, y0 = _ri(ks[2], 1, W - 1 - w), _ri(ks[3], 1, H - 1 - h)
    empty = _rect(x0, y0, w, h)
    # platforms: 1-tile ledges on alternating walls every `spacing` rows, leaving a gap
    spacing = jnp.maximum(_rng(ks[4], row, 5), 2)
    rel = y0 + h - 1 - _YS
    ledge_row = (rel > 0) & (rel % spacing == 0) & (rel < h - 1)
    left = ((rel // spacing) % 2) == 0
    ledge = ledge_row & jnp.where(left, _XS == x0, _XS == x0 + w - 1) & (w >= 2) & (row[10] == 1)
    empty = empty & ~ledge
    bottom, top = y0 + h - 1, y0
    sp = _pick(ks[5], empty & (_YS == bottom))
    ex = _pick(ks[6], empty & (_YS == top) & ~_one(sp))
    sw = _pick(ks[7], empty & ~_one(sp) & ~_one(ex) & (_YS != bottom))
    sw = jnp.where(h > 1, sw, sp)
    # wall mines: on the wall faces, every other row, away from spawn/switch/exit rows
    wall_l = empty & (_XS == x0)
    wall_r = empty & (_XS == x0 + w - 1)
    # one wall only (random side), so the other stays free for wall jumps
    cand = jnp.where(_bernoulli(ks[2].split(1)[0]), wall_l, wall_r)
    cand = cand & (_YS != sp[1]) & (_YS != sw[1]) & (_YS != ex[1]) & (w >= 2)
    dx = jnp.where(_XS == x0, -7.0, 7.0)
    pos, valid = _mines(ks[8], cand, _num_mines(ks[9], row, M), M, dx=dx)
    return empty, sp, sw, ex, pos, valid


def _corridors(key, row, M, max_k=5):
    ks = _split(key, 8 + 4 * max_k)
    k = _rng(ks[0], row, 5)
    empty = jnp.zeros((W, H), bool)
    x = _ri(ks[1], 1, 12)
    y = jnp.int32(1)
    going_right = _bernoulli(ks[2])
    x = jnp.where(going_right, x, W - 1 - x)
    start = jnp.stack([x, y])
    last_floor = start
    for i in range(max_k):
        kk = ks[8 + 4 * i: 12 + 4 * i]
        hw, hh = _rng(kk[0], row, 1), _rng(kk[1], row, 3)
        vw, vh = _rng(kk[2], row, 11), _rng(kk[3], row, 13)
        active = (i < k) & (y + hh <= H - 1)
        xl = jnp.where(going_right, x, x - hw + 1)
        xl = jnp.clip(xl, 1, W - 1 - hw)
        xr = xl + hw - 1
        seg = _rect(xl, y, hw, hh)
        empty = empty | (seg & active)
        fy = y + hh - 1
        if i == 0:
            start = jnp.stack([jnp.where(going_right, xl, xr), fy])
        end_x = jnp.where(going_right, xr, xl)
        last_floor = jnp.where(active, jnp.stack([end_x, fy]), last_floor)
        # drop at the far end to the next corridor
        has_next = active & (i + 1 < k) & (fy + 1 + vh + 1 <= H - 1)
        vx0 = jnp.where(going_right, xr - vw + 1, xl)
        vh = jnp.minimum(vh, H - 2 - fy)
        drop = _rect(vx0, y, vw, hh + vh)
        empty = empty | (drop & has_next)
        y = jnp.where(has_next, fy + 1 + vh - 0, H)          # next corridor top row (shares drop)
        y = jnp.where(has_next, y - 0, y)
        x = jnp.where(going_right, xr, xl)
        going_right = ~going_right
    sp, sw, ex = _place_three(ks[3], empty, _one(start), _one(last_floor))
    cand = empty & _floor_cells(empty) & ~_one(sp) & ~_one(sw) & ~_one(ex) & _jumpable(ks[6], empty)
    cand = cand & ~_one(sp + jnp.array([1, 0])) & ~_one(sp - jnp.array([1, 0]))
    pos, valid = _mines(ks[4], cand, _num_mines(ks[5], row, M), M, dy=8.0)
    return empty, sp, sw, ex, pos, valid


def _maze(key, row, M):
    ks = _split(key, 8)
    w, h = _rng(ks[0], row, 1), _rng(ks[1], row, 3)
    s = _rng(ks[2], row, 5)
    x0, y0 = _ri(ks[3], 1, W - 1 - w), _ri(ks[4], 1, H - 1 - h)
    nx = jnp.maximum((w + 1) // (s + 1), 1)
    ny = jnp.maximum((h + 1) // (s + 1), 1)
    lx, ly = _XS - x0, _YS - y0
    bx, rx = lx // (s + 1), lx % (s + 1)
    by, ry = ly // (s + 1), ly % (s + 1)
    inside = (lx >= 0) & (ly >= 0) & (bx < nx) & (by < ny)
    # binary-tree maze: each cell opens east or south (last column south, last row east)
    east = _bernoulli(ks[5], 0.5, (W, H))
    bxc, byc = jnp.clip(bx, 0, W - 1), jnp.clip(by, 0, H - 1)
    last_col, last_row = bxc == nx - 1, byc == ny - 1
    open_e = jnp.where(last_row, ~last_col, jnp.where(last_col, False, east[bxc, byc]))
    open_s = jnp.where(last_row, False, jnp.where(last_col, True, ~east[bxc, byc]))
    cell = inside & (rx < s) & (ry < s)
    pe = inside & (rx == s) & (ry < s) & open_e
    ps = inside & (ry == s) & (rx < s) & open_s
    empty = cell | pe | ps
    sp, sw, ex = _place_three(ks[6], empty, empty, empty)
    return empty, sp, sw, ex, jnp.zeros((M, 2)), jnp.zeros(M, bool)


def _chamber_common(ks, row, extra_below=0):
    w, h = _rng(ks[0], row, 1), _rng(ks[1], row, 3)
    h = jnp.minimum(h, H - 2 - extra_below)
    x0, y0 = _ri(ks[2], 1, W - 1 - w), _ri(ks[3], 1, H - 1 - h - extra_below)
    return w, h, x0, y0


def _single_chamber(key, row, M):
    ks = _split(key, 12)
    var = jnp.round(row[10]).astype(jnp.int32)
    w, h, x0, y0 = _chamber_common(ks, row, extra_below=2)
    empty = _rect(x0, y0, w, h)
    fy = y0 + h - 1
    cx = x0 + w // 2
    # 1 obstacle: a block on the floor in the middle
    ow, oh = _ri(ks[4], 1, 3), _ri(ks[5], 1, jnp.maximum(h - 2, 1))
    obstacle = _rect(cx - ow // 2, fy - oh + 1, ow, oh)
    # 3 gap: a 2-3 wide pit, 2 deep, mines at its bottom
    gw = _ri(ks[6], 2, 3)
    pit = _rect(cx - gw // 2, fy + 1, gw, 2)
    # 4 ceiling hazard: blocks hanging from the ceiling at random columns (leave 3 rows)
    hang = (_uniform(ks[7], (W, 1)) < 0.3) & (_YS < y0 + jnp.maximum(h - 3, 0)) & (_XS > x0) & \
        (_XS < x0 + w - 1)
    empty = jnp.where(var == 1, empty & ~obstacle, empty)
    empty = jnp.where(var == 3, empty | pit, empty)
    empty = jnp.where(var == 4, empty & ~hang, empty)
    a, b = _swap(ks[8], jnp.stack([x0, fy]), jnp.stack([x0 + w - 1, fy]))
    sp, sw, ex = _place_three(ks[9], empty, _one(a), _one(b))
    fl = _floor_cells(empty)
    near_sp = (jnp.abs(_XS - sp[0]) <= 1)
    cand_floor = fl & ~near_sp & ~_one(sw) & ~_one(ex) & (_YS == fy) & (var == 2) & _jumpable(ks[4], empty)
    cand_pit = pit & (_YS == fy + 2) & (var == 3)
    pos, valid = _mines(ks[10], cand_floor | cand_pit, _num_mines(ks[11], row, M), M, dy=8.0)
    return empty, sp, sw, ex, pos, valid


def _jump_required(key, row, M):
    ks = _split(key, 12)
    w, h, x0, y0 = _chamber_common(ks, row, extra_below=2)
    empty = _rect(x0, y0, w, h)
    fy = y0 + h - 1
    pw = _rng(ks[4], row, 5)
    px = _ri(ks[5], x0 + 2, x0 + w - 3 - pw)
    pit = _rect(px, fy + 1, pw, 2)
    empty = empty | pit
    a, b = _swap(ks[6], jnp.stack([x0, fy]), jnp.stack([x0 + w - 1, fy]))
    sp, sw, ex = _place_three(ks[7], empty, _one(a), _one(b))
    # mines fill the pit bottom; up to B more on each platform floor (away from spawn/goals)
    pit_floor = pit & (_YS == fy + 2)
    nb = _rng(ks[8], row, 7)
    fl = _floor_cells(empty) & (_YS == fy) & (jnp.abs(_XS - sp[0]) > 1) & ~_one(sw) & ~_one(ex)
    plat = fl & (_uniform(ks[9], (W, H)) < 3 * nb.astype(jnp.float32) / jnp.maximum(w, 1)) & _jumpable(ks[11], empty)
    pos, valid = _mines(ks[10], pit_floor | plat, jnp.minimum(jnp.round(row[9]).astype(jnp.int32), M), M, dy=8.0)
    return empty, sp, sw, ex, pos, valid


def _mine_maze(key, row, M):
    ks = _split(key, 10)
    w, h, x0, y0 = _chamber_common(ks, row)
    empty = _rect(x0, y0, w, h)
    fy = y0 + h - 1
    skip = jnp.maximum(_rng(ks[4], row, 5), 2)
    per = _rng(ks[5], row, 7)
    colx = (_XS - x0 - 2)
    is_col = empty & (colx >= 0) & (colx % skip == 0) & (_XS < x0 + w - 2)
    # per column: mines on `per` random rows, always leaving at least one free row
    gap_row = y0 + jnp.floor(_uniform(ks[6], (W, 1)) * h).astype(jnp.int32)
    prob = jnp.minimum(per.astype(jnp.float32) / jnp.maximum(h, 1), 1.0)
    cand = is_col & (_YS != gap_row) & (_uniform(ks[7], (W, H)) < prob)
    a, b = _swap(ks[8], jnp.stack([x0, fy]), jnp.stack([x0 + w - 1, fy]))
    sp, sw, ex = _place_three(ks[9], empty, _one(a), _one(b))
    cand = cand & ~_one(sw) & ~_one(ex) & ~_one(sp)
    pos, valid = _mines(ks[9], cand, jnp.minimum(jnp.round(row[9]).astype(jnp.int32), M), M)
    return empty, sp, sw, ex, pos, valid


def _hills(key, row, M):
    ks = _split(key, 10)
    w, h, x0, y0 = _chamber_common(ks, row)
    fy = y0 + h - 1
    n = _rng(ks[4], row, 5)
    # piecewise-constant ground height (steps): n hills of random width and height change
    edges = jnp.sort(_randint(ks[5], (12,), 1, jnp.maximum(w - 1, 2)))
    dh = _randint(ks[6], (13,), jnp.round(row[7]).astype(jnp.int32),
                            jnp.round(row[8]).astype(jnp.int32) + 1)
    sign = jnp.where(_bernoulli(ks[7], 0.5, (13,)), 1, -1)
    lx = _XS[:, 0] - x0
    seg = jnp.sum((lx[:, None] >= edges[None, :]) & (jnp.arange(12)[None, :] < n), axis=1)  # [W]
    steps = jnp.cumsum(sign * dh)
    ground = jnp.where(seg > 0, steps[jnp.clip(seg - 1, 0, 12)], 0)
    ground = jnp.clip(ground - jnp.min(jnp.where(jnp.arange(13) < n, steps, 0).clip(max=0)), 0, h - 3)
    empty = _rect(x0, y0, w, h) & (_YS <= fy - ground[:, None])
    fl = _floor_cells(empty)
    left, right = (_XS == x0), (_XS == x0 + w - 1)
    sw_side = _bernoulli(ks[8])
    sp, sw, ex = _place_three(ks[9], empty, fl & jnp.where(sw_side, left, right), fl & jnp.where(sw_side, right, left))
    return empty, sp, sw, ex, jnp.zeros((M, 2)), jnp.zeros(M, bool)


def _islands(key, row, M):
    ks = _split(key, 10)
    w, h, x0, y0 = _chamber_common(ks, row, extra_below=1)
    fy = y0 + h - 1
    empty = _rect(x0, y0, w, h + 1)
    # islands: runs of 1..4 floor tiles separated by 1-tile mined gaps; the first/last 2 solid
    lx = _XS[:, 0] - x0
    size = _randint(ks[4], (W,), jnp.round(row[5]).astype(jnp.int32),
                              jnp.round(row[6]).astype(jnp.int32) + 1)
    # gap at lx where a running counter wraps: build by scanning a random pattern
    def scan(c, xs):
        cnt, = c
        sz, = xs
        gap = cnt >= sz
        return (jnp.where(gap, 0, cnt + 1),), gap
    _, gaps = jax.lax.scan(scan, (jnp.int32(0),), (size,))
    gaps = gaps & (lx >= 2) & (lx < w - 2)
    ground = (_YS == fy + 1) & ~gaps[:, None]
    empty = empty & ~ground
    a, b = _swap(ks[5], jnp.stack([x0, fy]), jnp.stack([x0 + w - 1, fy]))
    sp, sw, ex = _place_three(ks[6], empty, _one(a), _one(b))
    cand = empty & (_YS == fy + 1) & gaps[:, None]
    pos, valid = _mines(ks[7], cand, jnp.minimum(jnp.round(row[9]).astype(jnp.int32), M), M, dy=8.0)
    return empty, sp, sw, ex, pos, valid


def _jump_platforms(key, row, M):
    ks = _split(key, 10)
    w, h, x0, y0 = _chamber_common(ks, row)
    fy = y0 + h - 1
    empty = _rect(x0, y0, w, h)
    spacing = jnp.minimum(_rng(ks[4], row, 5), 6)
    lx = _XS - x0
    pidx = lx // spacing
    yoff = _randint(ks[5], (W,), 0, jnp.round(row[8]).astype(jnp.int32) + 1)
    py = fy - 2 - yoff[jnp.clip(pidx, 0, W - 1)]
    plat = empty & ((lx % spacing) < 3) & (_YS == py) & (lx < w)
    plat = plat | (empty & (lx < 3) & (_YS == fy - 2)) | (empty & (lx >= w - 3) & (_YS == fy - 2))
    empty = empty & ~plat
    fl = _floor_cells(empty) & (_YS < fy)
    left, right = lx < 3, lx >= w - 3
    a = _bernoulli(ks[6])
    sp, sw, ex = _place_three(ks[7], empty, fl & jnp.where(a, left, right), fl & jnp.where(a, right, left))
    cand = empty & (_YS == fy)
    pos, valid = _mines(ks[8], cand, jnp.minimum(jnp.round(row[9]).astype(jnp.int32), M), M, dy=8.0)
    return empty, sp, sw, ex, pos, valid


def _multi_chamber(key, row, M, max_n=4):
    ks = _split(key, 6 + 4 * max_n)
    n = _rng(ks[0], row, 5)
    empty = jnp.zeros((W, H), bool)
    x = _ri(ks[1], 1, 4)
    base = _ri(ks[2], 12, H - 2)        # shared floor row region
    first = jnp.zeros((W, H), bool)
    last = jnp.zeros((W, H), bool)
    for i in range(max_n):
        kk = ks[6 + 4 * i: 10 + 4 * i]
        cw, ch = _rng(kk[0], row, 1), jnp.minimum(_rng(kk[1], row, 3), base - 1)
        fy = base
        active = (i < n) & (x + cw <= W - 1)
        room = _rect(x, fy - ch + 1, cw, ch)
        empty = empty | (room & active)
        if i == 0:
            first = room
        last = jnp.where(active, room, last)
        L, cwid = _rng(kk[3], row, 11), _rng(kk[3], row, 13)
        nxt = x + cw + L
        has_next = active & (i + 1 < n) & (nxt + 4 <= W - 1)
        cor = _rect(x + cw - 1, fy - jnp.minimum(cwid, ch) + 1, L + 2, jnp.minimum(cwid, ch))
        empty = empty | (cor & has_next)      # rooms share the floor row, so corridors join them
        x = jnp.where(has_next, nxt, W)
    sp, sw, ex = _place_three(ks[3], empty, first, last)
    return empty, sp, sw, ex, jnp.zeros((M, 2)), jnp.zeros(M, bool)


_FAMILY_FNS = (_horizontal_corridor, _vertical_corridor, _corridors, _maze, _single_chamber, _jump_required,
               _mine_maze, _hills, _islands, _jump_platforms, _multi_chamber)


# ----------------------------------------------------------------------------- public API


def generate_preset(key, row, max_entities: int = DEFAULT_GEN_MAX_ENTITIES, entity_types=GEN_ENTITY_TYPES,
                    max_doors: int = DEFAULT_GEN_MAX_DOORS):
    """One level from one preset row (``float32[NPARAM]``). Jittable, vmappable."""
    M = max_entities - 2
    kf, kc = _Key(jax.random.bits(key, (2,), jnp.uint32)).split(2)
    fam = jnp.clip(jnp.round(row[0]).astype(jnp.int32), 0, len(FAMILIES) - 1)
    outs = jax.lax.switch(fam, [lambda sd, r, f=f: f(_Key(sd, kf.ident), r, M) for f in _FAMILY_FNS], kf.seed, row)
    empty, sp, sw, ex, mpos, mvalid = outs
    # tiles: solid everywhere; chaotic random ids 0..33 beyond a 1-cell solid ring around the playspace
    e = jnp.pad(empty, 1)
    ring = jnp.zeros_like(e)
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            ring = ring | jnp.roll(jnp.roll(e, dx, 0), dy, 1)
    ring = ring[1:-1, 1:-1]
    chaos = _randint(kc, (W, H), 0, 34)
    inner = jnp.where(empty, 0, jnp.where(ring | (row[15] < 0.5), 1, chaos))
    tiles = jnp.ones((W + 2, H + 2), jnp.int32).at[1:-1, 1:-1].set(inner)
    mvalid = mvalid & empty[jnp.clip(((mpos[:, 0] - C.CELL) // C.CELL).astype(jnp.int32), 0, W - 1),
                            jnp.clip(((mpos[:, 1] - C.CELL) // C.CELL).astype(jnp.int32), 0, H - 1)]
    return build_level(tiles, _centre(sp), _centre(sw), _centre(ex), mpos, mvalid, entity_types, max_doors)


def generate(key, stage: StageParams, max_entities: int = DEFAULT_GEN_MAX_ENTITIES, entity_types=GEN_ENTITY_TYPES,
             max_doors: int = DEFAULT_GEN_MAX_DOORS):
    """One level of ``stage``: draws a preset row (by weight), then generates it."""
    kp, kg = jax.random.split(key)
    logits = jnp.where(stage.weights > 0, jnp.log(jnp.maximum(stage.weights, 1e-9)), -jnp.inf)
    i = jax.random.categorical(kp, logits)
    return generate_preset(kg, stage.presets[i], max_entities, entity_types, max_doors)


def heldout_set(stage_name: str, n: int, max_entities: int = DEFAULT_GEN_MAX_ENTITIES,
                entity_types=GEN_ENTITY_TYPES, max_doors: int = DEFAULT_GEN_MAX_DOORS, seed: int | None = None):
    """The fixed held-out evaluation set of a stage: ``n`` levels stacked on axis 0, from the
    stage's test seed base (spec §10.2: simplest 100, ..., exploration 7000), presets drawn
    round-robin (stratified) like nclone's test suite. Deterministic."""
    base = SEED_BASE.get(stage_name, 0) if seed is None else seed
    names = STAGES[stage_name]
    # Level i depends only on (seed base, i), so generating a padded batch and keeping the
    # first n gives the same levels, with one compilation for every n up to 64 (and per 64).
    padded = max(64, -(-n // 64) * 64)
    rows = jnp.asarray(np.stack([PRESETS[names[i % len(names)]] for i in range(padded)]))
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.PRNGKey(base), i))(jnp.arange(padded))
    levels = _batch_generate(keys, rows, max_entities, tuple(entity_types), max_doors)
    return jax.tree.map(lambda x: x[:n], levels)


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _batch_generate(keys, rows, max_entities, entity_types, max_doors):
    """Levels for a batch of (key, preset row) pairs (one compilation per shape)."""
    return jax.vmap(lambda k, r: generate_preset(k, r, max_entities, entity_types, max_doors))(keys, rows)


__all__ = [
    "FAMILIES",
    "PRESETS",
    "SEED_BASE",
    "STAGES",
    "STAGE_ORDER",
    "StageParams",
    "generate",
    "generate_preset",
    "heldout_set",
    "stack_levels",
    "stage_params",
]
