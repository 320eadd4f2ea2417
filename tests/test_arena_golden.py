"""Step-exact conformance of the JAX arena with the reference engine's golden recordings:
every file of <golden>/arena (4 full episodes + 39 scenarios) is replayed and compared field
by field (state rows, rewards, success flags, raw observation tokens, terminals, stats)."""

import numpy as np
import pytest

from tools import arena_golden as golden

FILES = golden.all_golden_files()


def test_golden_folder_is_complete():
    episodes = [p for p in FILES if p.parent == golden.golden_dir()]
    assert len(episodes) == 4, episodes
    assert len(FILES) == 43, [p.name for p in FILES]


@pytest.fixture(scope="module")
def results():
    return golden.replay_files(FILES)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_golden_file_matches_exactly(results, path):
    errors = results[path]
    assert not errors, f"{path.name}: first divergence {errors[0]}"


def test_cli_reports_divergence(tmp_path, capsys):
    """A tampered recording must fail, and the CLI must name the step, agent and field."""
    src = golden.golden_dir() / "scenarios" / "reward_ore_cap.npz"
    with np.load(src) as f:
        data = {k: f[k] for k in f.files}
    data["rewards"] = data["rewards"].copy()
    data["rewards"][3, 0] += np.float32(0.25)  # step 4
    bad = tmp_path / "tampered.npz"
    np.savez(bad, **data)
    assert golden.main([str(src), str(bad)]) == 1
    out = capsys.readouterr().out
    assert "OK    reward_ore_cap.npz" in out
    assert "FAIL  tampered.npz: step=4 agent=0 field=rewards" in out
    assert "1/2 files match exactly" in out
