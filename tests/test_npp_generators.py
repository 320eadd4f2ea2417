"""Level generators: every family produces levels with a spawn, a switch and an exit that are
connected on the empty-tile graph (spawn -> switch -> exit), on a sample of seeds; held-out
sets are deterministic. One compilation of the batched generator (all families), one of the
solvability check."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.npp import generators as G
from envs.npp.levels import geodesic_distance, solvable

N_PER_STAGE = 12            # >= the largest stage's preset count, so every preset is sampled
_solvable = jax.jit(jax.vmap(solvable))


@pytest.fixture(scope="module")
def heldout():
    return {s: G.heldout_set(s, N_PER_STAGE) for s in G.STAGE_ORDER}


def test_every_family_is_in_some_stage():
    fams = {G.PRESETS[p][0] for ps in G.STAGES.values() for p in ps}
    assert fams == set(range(len(G.FAMILIES)))


@pytest.mark.parametrize("stage", G.STAGE_ORDER)
def test_generated_levels_are_solvable(heldout, stage):
    lv = heldout[stage]
    ok = np.asarray(_solvable(lv))
    assert ok.all(), f"{stage}: unsolvable levels {np.flatnonzero(~ok)}"
    et = np.asarray(lv.ent_type)
    assert (et[:, 0] == 3).all() and (et[:, 1] == 4).all()     # exit door + its switch
    tiles = np.asarray(lv.tiles)
    assert (tiles[:, 0, :] == 1).all() and (tiles[:, :, -1] == 1).all()   # solid border
    # spawn, switch and exit sit in three different cells
    cells = lambda p: tuple(np.floor(np.asarray(p) / 24).astype(int).T)
    sp, sw, ex = cells(lv.spawn), cells(lv.ent_pos[:, 1]), cells(lv.ent_pos[:, 0])
    assert all(len({a, b, c}) == 3 for a, b, c in zip(zip(*sp), zip(*sw), zip(*ex)))
    # mines sit on empty cells
    mines = et == 1
    mp = np.floor(np.asarray(lv.ent_pos) / 24).astype(int)
    b, r = np.nonzero(mines)
    assert (tiles[b, mp[b, r, 0], mp[b, r, 1]] == 0).all()


def test_heldout_sets_are_deterministic(heldout):
    again = G.heldout_set("simplest", N_PER_STAGE)
    for a, b in zip(jax.tree.leaves(heldout["simplest"]), jax.tree.leaves(again)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    other = G.heldout_set("simplest", N_PER_STAGE, seed=12345)
    assert not np.array_equal(np.asarray(other.tiles), np.asarray(heldout["simplest"].tiles))
    # levels within a set differ
    t = np.asarray(heldout["medium"].tiles).reshape(N_PER_STAGE, -1)
    assert len({row.tobytes() for row in t}) == N_PER_STAGE


def test_mines_presets_have_mines(heldout):
    assert (np.asarray(heldout["simplest"].ent_type)[:, 2:] == 0).all()
    assert (np.asarray(heldout["mine_heavy"].ent_type) == 1).sum(1).min() >= 3


def test_geodesic_distance_corridor():
    passable = jnp.zeros((44, 25), bool).at[1:11, 5].set(True).at[10, 5:15].set(True)
    src = jnp.zeros((44, 25), bool).at[1, 5].set(True)
    d = np.asarray(jax.jit(geodesic_distance)(passable, src))
    assert d[1, 5] == 0 and d[10, 5] == 9 and d[10, 14] == 18 and np.isinf(d[0, 0])


def test_stage_params_are_data():
    sp = G.stage_params("simple")
    assert sp.presets.shape == (G.MAX_PRESETS, G.NPARAM) and float(sp.weights.sum()) == len(G.STAGES["simple"])
