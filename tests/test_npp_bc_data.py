"""Behaviour-cloning pairs from human replays (envs/npp/bc_data.py): the re-simulated
trajectory is the human's (same outcome frame as the reference recording), one pair per block
of ``frame_skip`` frames labelled with the human's input at the block start, splits by replay
file, unusable replays reported one line each, and the per-replay cache reused."""

import json

import jax
import numpy as np
import pytest

from envs.npp.bc_data import ReplaySimulator, build_dataset, inputs_to_action
from envs.npp.env import NppEnv
from envs.npp.golden import npp_golden_dir
from envs.npp.level import load_map
from envs.npp.map_format import decode_inputs, read_replay
from envs.npp.sim import action_to_inputs

# Two short shared replays of the same input-length bucket: one compile.
FILES = ("20251022_142001_train_very_simple_100001.replay",
         "20251022_142009_train_very_simple_100003.replay")


@pytest.fixture(scope="module")
def setup():
    root = npp_golden_dir()
    index = {r["file"]: r for r in json.loads((root / "replays_index.json").read_text())["replays"]}
    env = NppEnv(obs_kind="state")
    return root, index, env, ReplaySimulator(env)


def test_inputs_to_action_inverts_action_to_inputs():
    for a in range(6):
        hor, jump = action_to_inputs(a)
        assert int(inputs_to_action(int(hor), int(jump))) == a


def test_pairs_follow_the_human_trajectory(setup):
    root, index, env, sim = setup
    for name in FILES:
        rp = sim.replay(root / "replays" / name)
        ref = index[name]
        assert rp.won and ref["win"] and rp.frames == ref["outcome_frame"]
        n = -(-rp.frames // env.frame_skip)
        assert rp.obs.shape == (n, *env.observation_space().shape) and rp.actions.shape == (n,)
        hor, jump = decode_inputs(read_replay(root / "replays" / name).inputs)
        np.testing.assert_array_equal(rp.actions, inputs_to_action(hor, jump)[::env.frame_skip][:n])
        level = load_map(read_replay(root / "replays" / name).map_bytes, env.max_entities,
                         env.max_doors, entity_types=env.entity_types)
        obs0, _ = sim.frame_env.reset_env(jax.random.PRNGKey(0), env.make_params(level=level))
        np.testing.assert_allclose(rp.obs[0], np.asarray(obs0)[0], rtol=1e-6)  # jit vs eager
        assert 0 <= rp.changed_in_block <= n


def test_dataset_splits_by_file_reports_skips_and_caches(setup, tmp_path, monkeypatch):
    root, _, env, _ = setup
    bad = tmp_path / "broken.replay"
    bad.write_bytes(b"\x05\x00\x00\x00" * 3)
    paths = [root / "replays" / n for n in FILES] + [bad]
    lines = []
    ds = build_dataset(env, paths, val_fraction=0.5, cache_dir=tmp_path / "cache", report=lines.append)
    assert len(ds.skipped) == 1 and "broken.replay" in ds.skipped[0] and "\n" not in ds.skipped[0]
    assert lines == [f"skipped {ds.skipped[0]}"]
    assert set(ds.train_files) | set(ds.val_files) == set(FILES)
    assert not set(ds.train_files) & set(ds.val_files) and ds.val_files
    assert len(ds.train_obs) == len(ds.train_actions) > 0 and len(ds.val_obs) > 0
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2
    # A second build reads every pair from the cache: no simulation.
    monkeypatch.setattr(ReplaySimulator, "replay", lambda *a: pytest.fail("re-simulated"))
    again = build_dataset(env, paths[:2], val_fraction=0.5, cache_dir=tmp_path / "cache",
                          report=lambda _: None)
    np.testing.assert_array_equal(again.train_obs, ds.train_obs)


def test_a_stale_or_unreadable_cache_entry_is_rebuilt(setup, tmp_path, monkeypatch):
    """The cache key covers the code (``source_version``: the envs/npp sources): another
    version misses and re-simulates; an unreadable entry is simulated again, not skipped."""
    from envs.npp import bc_data

    root, _, env, sim = setup
    path = [root / "replays" / FILES[0]]
    calls = []
    simulate = ReplaySimulator.replay
    monkeypatch.setattr(ReplaySimulator, "replay",
                        lambda self, p: calls.append(p) or simulate(self, p))

    def build():
        return build_dataset(env, path, val_fraction=0, cache_dir=tmp_path,
                             report=lambda _: None, simulator=sim)

    first, again = build(), build()
    assert len(calls) == 1 and len(list(tmp_path.glob("*.npz"))) == 1
    monkeypatch.setattr(bc_data, "source_version", lambda: "another version of the code")
    stale = build()
    assert len(calls) == 2 and len(list(tmp_path.glob("*.npz"))) == 2
    (tmp_path / f"{bc_data.cache_key(env, path[0])}.npz").write_bytes(b"not an npz")
    rebuilt = build()
    assert len(calls) == 3 and not rebuilt.skipped
    for ds in (again, stale, rebuilt):
        np.testing.assert_array_equal(ds.train_obs, first.train_obs)
