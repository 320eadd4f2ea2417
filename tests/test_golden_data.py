"""The golden data the conformance tests read is complete and unaltered: every file of
SHA256SUMS is present with its checksum, no file is unlisted, and every file that an index of
the reference data names (replays, trajectories, maps, scenarios) exists. A partial copy fails
here instead of letting a parametrized test silently collect fewer cases."""

import json
import os
import re
from pathlib import Path

import pytest

from envs import golden_data

ROOT = golden_data.golden_dir()
IN_REPO = ROOT.resolve() == golden_data.IN_REPO_GOLDEN.resolve()


@pytest.mark.skipif(not IN_REPO, reason="JAXRL_GOLDEN_DIR points at another copy")
def test_repository_copy_matches_its_checksums():
    listed = golden_data.read_checksums(ROOT)
    present = set(golden_data.data_files(ROOT))
    assert sorted(set(listed) - present) == [], "files listed in SHA256SUMS are missing"
    assert sorted(present - set(listed)) == [], "files not in SHA256SUMS (refresh the copy)"
    bad = [f for f, digest in listed.items() if golden_data.sha256_of(ROOT / f) != digest]
    assert bad == [], f"files differ from SHA256SUMS: {bad}"


def test_npp_replay_index_files_present():
    index = json.loads((ROOT / "npp" / "replays_index.json").read_text())
    shared = [r for r in index["replays"] if r["split"] == "shared"]
    assert sorted(r["file"] for r in shared) == sorted(index["split"]["shared"])
    missing = [r["file"] for r in shared if not (ROOT / "npp" / "replays" / r["file"]).is_file()]
    assert missing == [], f"replays listed in replays_index.json are missing: {missing}"
    trajectories = [r["trajectory_file"] for r in shared if r["trajectory_file"]]
    assert len(trajectories) == len(index["trajectory_selection"]["shared"])
    missing = [t for t in trajectories if not (ROOT / "npp" / t).is_file()]
    assert missing == [], f"trajectories listed in replays_index.json are missing: {missing}"


def test_npp_maps_and_facts_present():
    # FORMAT.md: nclone's test maps, 16 map files (maps.json is nclone's description list, which
    # names one map that is not there and misses `slopes`: it is no index of this folder)
    files = {p.name for p in (ROOT / "npp" / "maps").iterdir() if p.suffix == ""}
    assert len(files) == 16, sorted(files)
    # every test map has its two random-input trajectories (seeds 0 and 1)
    missing = [f"maps__{m}__seed{s}.npz" for m in sorted(files) for s in (0, 1)
               if not (ROOT / "npp" / "trajectories" / f"maps__{m}__seed{s}.npz").is_file()]
    assert missing == [], f"test-map trajectories missing: {missing}"
    facts = json.loads((ROOT / "npp" / "physics_facts.json").read_text())
    names = {Path(p).name for p in _strings(facts) if str(p).endswith(".map")}
    missing = sorted(n for n in names if not (ROOT / "npp" / "facts_maps" / n).is_file())
    assert missing == [], f"maps named in physics_facts.json are missing: {missing}"


def test_arena_scenarios_and_episodes_present():
    scenarios = json.loads((ROOT / "arena" / "scenarios" / "scenarios.json").read_text())
    missing = [n for n in scenarios if not (ROOT / "arena" / "scenarios" / f"{n}.npz").is_file()]
    assert missing == [], f"scenarios listed in scenarios.json are missing: {missing}"
    episodes = ("ep00_scripted", "ep01_scripted", "ep04_mixed", "ep08_combat")
    missing = [e for e in episodes if not (ROOT / "arena" / f"{e}.npz").is_file()]
    assert missing == [], f"arena episodes (FORMAT.md) missing: {missing}"
    for part in ("arena", "npp"):
        assert (ROOT / part / "FORMAT.md").is_file()


def test_golden_dir_override_and_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("JAXRL_GOLDEN_DIR", str(tmp_path))
    assert golden_data.golden_dir() == tmp_path
    monkeypatch.setenv("JAXRL_GOLDEN_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="JAXRL_GOLDEN_DIR"):
        golden_data.golden_dir()


def _strings(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


SHARED_PATH = re.compile(r"""["']shared["']\s*/|/\s*["']shared["']|\.\./shared""")


def test_no_module_reads_the_shared_folder_beside_the_repository():
    """Tests and CLIs must not depend on ../shared (a clone does not have it). The conformance
    CLIs in tools/ are checked too; tools/refresh_golden.py is exempt: it copies from a SOURCE
    folder given on its command line, and its help names ../shared/golden as an example."""
    repo = golden_data.REPO_ROOT
    offenders = []
    for py in list(repo.glob("envs/**/*.py")) + list(repo.glob("jaxrl_arena/**/*.py")) \
            + list(repo.glob("tests/*.py")) + list(repo.glob("experiments/*.py")) \
            + list(repo.glob("tools/*.py")):
        if py.name == Path(__file__).name or py.relative_to(repo).as_posix() == "tools/refresh_golden.py":
            continue
        if SHARED_PATH.search(py.read_text()):
            offenders.append(str(py.relative_to(repo)))
    assert offenders == [], offenders
    assert os.path.isdir(repo / "docs" / "specs")
