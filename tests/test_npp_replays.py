"""Every golden replay re-simulates (float64) to its recorded outcome: a win on exactly its last
input, with the recorded exit-switch tick and final ninja state (``replays_index.json``)."""

import json

import pytest

from envs.npp.golden import npp_golden_dir, x64_scope
from tools import npp_replay as replay_cli

GOLD = npp_golden_dir()
INDEX = {r["file"]: r for r in json.loads((GOLD / "replays_index.json").read_text())["replays"]
         if r["split"] == "shared"}
FILES = sorted(p.name for p in (GOLD / "replays").glob("*.replay"))


@pytest.fixture(autouse=True)
def _x64():
    with x64_scope():
        yield


def test_all_shared_replays_present():
    assert len(FILES) == 68 and set(FILES) == set(INDEX)


@pytest.mark.parametrize("name", FILES)
def test_replay_reproduces_recorded_outcome(name):
    rec = INDEX[name]
    exp = {**rec, **rec["repaired"]} if rec["malformed"] else rec
    with pytest.warns(UserWarning, match="one byte short") if rec["malformed"] else _nullcontext():
        got = replay_cli.replay_outcome(GOLD / "replays" / name)
    assert got["repaired"] == rec["malformed"]
    assert got["map_sha256"] == exp["map_sha256"]
    assert got["n_inputs"] == exp["n_inputs"]
    assert exp["outcome"] == "win" and exp["win_on_last_input"]
    assert got["win_tick"] == exp["outcome_frame"] == got["n_inputs"] == got["ticks"]
    assert got["dead_tick"] is None
    assert got["switch_tick"] == exp["exit_switch_frame"]
    assert got["final_state"] == exp["final_state"] == 8
    for a, b in zip(got["final_pos"] + got["final_vel"], exp["final_pos"] + exp["final_vel"]):
        assert abs(a - b) <= 1e-9
    assert got["doors_opened"] == exp["doors_opened"]
    assert got["gold_collected"] == exp["gold_collected"]


def test_cli_exit_codes(tmp_path, capsys):
    ok = [str(GOLD / "replays" / FILES[0]), str(GOLD / "replays" / "20251022_151333_train_simple_100001.replay")]
    assert replay_cli.main(ok) == 0
    out = capsys.readouterr().out
    assert "WARNING" in out and "re-inserted" in out and out.count("OK ") == 2
    bad = tmp_path / "bad.replay"
    bad.write_bytes((GOLD / "replays" / FILES[0]).read_bytes()[:-5])      # 5 bytes short: not repairable
    assert replay_cli.main([str(bad)]) == 1
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("ERROR")]
    assert len(lines) == 1 and "declares" in lines[0]


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def test_cli_reports_missing_inputs_and_checks_the_rest(tmp_path, capsys):
    """A missing path or an empty folder is one ERROR line each; the other inputs still run."""
    one = GOLD / "replays" / FILES[0]
    assert replay_cli.main([str(tmp_path / "missing.replay"), str(tmp_path), str(one)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"ERROR {tmp_path / 'missing.replay'}: no such file or folder"
    assert out[1] == f"ERROR {tmp_path}: folder holds no .replay files"
    assert out[2].startswith(f"OK   {FILES[0]}:")
    assert out[-1] == "1/3 inputs reproduce"
