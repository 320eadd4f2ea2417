"""Levels as data for the N++ environment: a jittable ``Level`` builder for generated levels,
the tile-graph utilities (connected components, geodesic distance), and loading the human maps
and replays of the golden directory (``envs.golden_data.golden_dir``: the repository copy in
``tests/data/golden``, or ``$JAXRL_GOLDEN_DIR``).

Generated levels use one fixed entity-table layout (capacity ``E``, all levels stackable):

    row 0: exit door (type 3)       row 1: its exit switch (type 4; must follow the door)
    rows 2..E-1: toggle mines (type 1, deadly; or 0 = empty row)

Coordinates are padded pixels (spec §1.1); cell (cx, cy) of the padded 44 x 25 grid has its
centre at ``(24 cx + 12, 24 cy + 12)``; the playspace is cells 1..42 x 1..23.

Section marks (§) cite docs/specs/npp.md.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from envs import golden_data
from envs.npp import constants as C
from envs.npp.level import ALL_ENTITY_TYPES, Level, load_map
from envs.npp.map_format import decode_inputs, read_replay
from envs.npp.tiles import build_tile_geometry_jit

# Entity types every generated level may contain (static; all generated levels share it so
# stages can be mixed in one batch). Human maps with other types need ``ALL_ENTITY_TYPES``.
GEN_ENTITY_TYPES = (1, 3, 4)
DEFAULT_GEN_MAX_ENTITIES = 48
DEFAULT_GEN_MAX_DOORS = 1


# ----------------------------------------------------------------------------- building levels


def build_level(tiles, spawn, switch_pos, exit_pos, mine_pos, mine_valid,
                entity_types=GEN_ENTITY_TYPES, max_doors: int = DEFAULT_GEN_MAX_DOORS) -> Level:
    """Jittable: padded tiles ``int[44, 25]`` (border included), spawn/switch/exit ``float[2]`` px,
    mines ``float[M, 2]`` + ``bool[M]`` -> a :class:`Level` with ``E = M + 2`` entity rows."""
    tiles = jnp.asarray(tiles, jnp.int32)
    geo = build_tile_geometry_jit(tiles)
    M = mine_pos.shape[0]
    E = M + 2
    ftype = jnp.result_type(float)
    etype = jnp.concatenate([jnp.array([C.T_EXIT, C.T_SWITCH], jnp.int32),
                             jnp.where(mine_valid, C.T_MINE, 0).astype(jnp.int32)])
    pos = jnp.concatenate([jnp.stack([exit_pos, switch_pos]).astype(ftype),
                           jnp.where(mine_valid[:, None], mine_pos, 0).astype(ftype)])
    in_grid = jnp.concatenate([jnp.array([False, True]), mine_valid])
    return Level(
        tiles=tiles.astype(jnp.int8), seg_kind=geo["seg_kind"],
        edge_hor=geo["edge_hor"].astype(jnp.int8), edge_ver=geo["edge_ver"].astype(jnp.int8),
        spawn=jnp.asarray(spawn, ftype), death_ball_count=jnp.int32(0),
        ent_type=etype, ent_pos=pos, ent_orient=jnp.full(E, -1, jnp.int32), ent_mode=jnp.zeros(E, jnp.int32),
        ent_in_grid=in_grid, ent_stamp=jnp.arange(E, dtype=jnp.int32), ent_ball_index=jnp.zeros(E, jnp.int32),
        n_entities=jnp.sum(etype > 0).astype(jnp.int32),
        door_seg=jnp.zeros((E, 4), ftype), door_cell=jnp.zeros((E, 2), jnp.int32),
        door_vertical=jnp.zeros(E, bool), door_slots=jnp.zeros(max_doors, jnp.int32),
        door_slot_valid=jnp.zeros(max_doors, bool), entity_types=tuple(sorted(set(entity_types))),
    )


def corridor_level(length: int = 8, spawn_x: int = 2, switch_x: int = 4, exit_x: int = 6, row: int = 12,
                   mines_x=(), max_entities: int = DEFAULT_GEN_MAX_ENTITIES, entity_types=GEN_ENTITY_TYPES,
                   max_doors: int = DEFAULT_GEN_MAX_DOORS) -> Level:
    """A hand-made level (host side, cheap): a 1-high horizontal corridor on padded row ``row``
    from padded column 1 to ``length``, with spawn / switch / exit / floor mines at the given
    padded columns (cell centres; mines 4 px above the floor)."""
    tiles = np.ones((C.GRID_W, C.GRID_H), np.int32)
    tiles[1:length + 1, row] = 0
    c = lambda x: np.array([24.0 * x + 12, 24.0 * row + 12], np.float32)
    M = max_entities - 2
    mpos = np.zeros((M, 2), np.float32)
    mvalid = np.zeros(M, bool)
    for i, x in enumerate(mines_x):
        mpos[i] = (24.0 * x + 12, 24.0 * row + 20)
        mvalid[i] = True
    return build_level(jnp.asarray(tiles), jnp.asarray(c(spawn_x)), jnp.asarray(c(switch_x)), jnp.asarray(c(exit_x)),
                       jnp.asarray(mpos), jnp.asarray(mvalid), entity_types, max_doors)


def stack_levels(levels):
    return jax.tree.map(lambda *xs: jnp.stack(xs), *levels)


# ----------------------------------------------------------------------------- tile graph


def _seg_cummin(vals, passable, reverse=False, axis=0):
    """Segmented running min along ``axis`` over runs of passable cells (walls reset)."""
    def op(a, b):
        va, ra = a
        vb, rb = b
        return jnp.where(rb, vb, jnp.minimum(va, vb)), ra | rb
    out, _ = lax.associative_scan(op, (vals, ~passable), reverse=reverse, axis=axis)
    return out


def geodesic_distance(passable, sources, max_iters: int = 64):
    """4-neighbour geodesic distance (in cells) over ``passable bool[44, 25]`` from ``sources``
    (bool, same shape); ``inf`` where unreachable. Jittable: each iteration relaxes whole rows
    and columns at once (segmented min-plus scans), so it converges in about the number of
    turns of the longest shortest path, not its length; ``max_iters`` caps it."""
    big = jnp.float32(1e6)
    d0 = jnp.where(sources & passable, 0.0, big).astype(jnp.float32)

    def sweep(d):
        for axis in (0, 1):
            idx = jnp.arange(d.shape[axis], dtype=jnp.float32)
            idx = idx[:, None] if axis == 0 else idx[None, :]
            fwd = _seg_cummin(jnp.where(passable, d - idx, big), passable, False, axis) + idx
            bwd = _seg_cummin(jnp.where(passable, d + idx, big), passable, True, axis) - idx
            d = jnp.where(passable, jnp.minimum(d, jnp.minimum(fwd, bwd)), big)
        return d

    def cond(c):
        i, d, changed = c
        return changed & (i < max_iters)

    def body(c):
        i, d, _ = c
        nd = sweep(d)
        return i + 1, nd, jnp.any(nd != d)

    d = lax.while_loop(cond, body, (jnp.int32(0), d0, jnp.array(True)))[1]
    return jnp.where(d >= big / 2, jnp.inf, d)


def component_labels(passable, max_iters: int = 64):
    """Connected components (4-neighbour) of ``passable bool[44, 25]``: the label of a cell is
    the smallest flat index (x * 25 + y) in its component; impassable cells get ``1 << 20``."""
    big = jnp.int32(1 << 20)
    W, H = passable.shape
    lab0 = jnp.where(passable, jnp.arange(W * H, dtype=jnp.int32).reshape(W, H), big)

    def sweep(lab):
        for axis in (0, 1):
            f = _seg_cummin(lab, passable, False, axis)
            b = _seg_cummin(lab, passable, True, axis)
            lab = jnp.where(passable, jnp.minimum(f, b), big)
        return lab

    def cond(c):
        return c[2] & (c[0] < max_iters)

    def body(c):
        i, lab, _ = c
        nl = sweep(lab)
        return i + 1, nl, jnp.any(nl != lab)

    return lax.while_loop(cond, body, (jnp.int32(0), lab0, jnp.array(True)))[1]


def cell_of_px(p):
    """Padded cell (x, y) of a pixel position, clamped to the grid (spec §1.1)."""
    return (jnp.clip(jnp.floor(p[..., 0] / 24), 0, C.GRID_W - 1).astype(jnp.int32),
            jnp.clip(jnp.floor(p[..., 1] / 24), 0, C.GRID_H - 1).astype(jnp.int32))


def exit_rows(level: Level):
    """(row of the first exit switch, row of its door) in the entity table."""
    sw = jnp.argmax(level.ent_type == C.T_SWITCH).astype(jnp.int32)
    return sw, jnp.maximum(sw - 1, 0)


def solvable(level: Level):
    """Tile-graph check (jittable): spawn, exit switch and exit door cells are empty (tile 0)
    and lie in one 4-connected component of empty cells."""
    passable = level.tiles.astype(jnp.int32) == 0
    lab = component_labels(passable, max_iters=128)
    sw, door = exit_rows(level)
    pts = jnp.stack([level.spawn, level.ent_pos[sw], level.ent_pos[door]]).astype(jnp.float32)
    cx, cy = cell_of_px(pts)
    ok = passable[cx, cy]
    ls = lab[cx, cy]
    return jnp.all(ok) & (ls[0] == ls[1]) & (ls[0] == ls[2])


# ----------------------------------------------------------------------------- golden files


def golden_dir() -> Path:
    return golden_data.golden_dir()


def human_map_paths():
    d = golden_dir() / "npp" / "maps"
    return sorted(p for p in d.iterdir() if p.is_file() and p.suffix == "") if d.exists() else []


def replay_paths():
    d = golden_dir() / "npp" / "replays"
    return sorted(d.glob("*.replay")) if d.exists() else []


def load_human_map(path, max_entities=DEFAULT_GEN_MAX_ENTITIES, max_doors=DEFAULT_GEN_MAX_DOORS,
                   entity_types=ALL_ENTITY_TYPES) -> Level:
    return load_map(Path(path).read_bytes(), max_entities, max_doors, entity_types=entity_types)


def load_replay_level(path, max_entities=DEFAULT_GEN_MAX_ENTITIES, max_doors=DEFAULT_GEN_MAX_DOORS,
                      entity_types=ALL_ENTITY_TYPES):
    """A ``.replay`` -> (Level, actions int32[T]) where actions are Discrete(6) ids per 60 fps frame."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = read_replay(path)
    level = load_map(rep.map_bytes, max_entities, max_doors, entity_types=entity_types)
    hor, jump = decode_inputs(rep.inputs)
    # (hor, jump) -> action id: noop 0, left 1, right 2, jump 3, jump+left 4, jump+right 5
    table = {(0, 0): 0, (-1, 0): 1, (1, 0): 2, (0, 1): 3, (-1, 1): 4, (1, 1): 5}
    actions = np.array([table[(int(h), int(j))] for h, j in zip(hor, jump)], np.int32)
    return level, actions


def load_levels(paths, max_entities, max_doors, entity_types, skip_bad: bool = True):
    """Load many maps (map files or replays) into one stacked Level (shared shapes/types)."""
    out, names = [], []
    for p in paths:
        p = Path(p)
        try:
            lv = (load_replay_level(p, max_entities, max_doors, entity_types)[0] if p.suffix == ".replay"
                  else load_human_map(p, max_entities, max_doors, entity_types))
        except ValueError:
            if not skip_bad:
                raise
            continue
        out.append(lv)
        names.append(p.name)
    return stack_levels(out), names
