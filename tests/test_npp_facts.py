"""``physics_facts.json``: every measured fact, re-run from its exact setup in float64."""

import functools
import json

import numpy as np
import pytest

from envs.npp.golden import npp_golden_dir, x64_scope, simulate

GOLD = npp_golden_dir()
DATA = json.loads((GOLD / "physics_facts.json").read_text())
FACTS = DATA["facts"]
TOL = 1e-9


@pytest.fixture(autouse=True)
def _x64():
    with x64_scope():
        yield


def expand(rle):
    hor, jump = [], []
    for h, j, n in rle:
        hor += [h] * n
        jump += [j] * n
    return np.asarray(hor, np.int32), np.asarray(jump, np.int32)


@functools.lru_cache(maxsize=None)
def _run(map_key, spawn, rle):
    path = GOLD / DATA["maps"][map_key]["file"] if map_key in DATA["maps"] else GOLD / map_key
    m = bytearray(path.read_bytes())
    if spawn is not None:
        m[1231], m[1232] = spawn
    hor, jump = expand(rle)
    out = simulate(bytes(m), hor, jump)
    st = out["state"]
    term = np.nonzero((st[1:] == 6) | (st[1:] == 7) | (st[1:] == 8))[0]
    out["end"] = int(term[0]) + 1 if term.size else len(hor)      # runs stop at the first terminal tick
    return out


def run(fact, rle=None, spawn="fact"):
    spawn = fact["spawn_patch_units"] if spawn == "fact" else spawn
    rle = fact["inputs_rle"] if rle is None else rle
    return _run(fact["map"], tuple(spawn) if spawn else None, tuple(tuple(r) for r in rle))


def close(got, exp, tol=TOL):
    got = np.asarray(got, np.float64)
    exp = np.asarray(exp, np.float64)
    assert got.shape == exp.shape, (got.shape, exp.shape)
    assert np.all(np.abs(got - exp) <= tol), f"max err {np.max(np.abs(got - exp))}"


def series(out, field, start, n):
    return out[field][start:start + n]


# (fact, first tick of the series, {golden key: observed field})
SERIES = [
    ("run_right_accel_150", 61, {"vx": "vx", "x": "x", "state": "state"}),
    ("run_release_60", 211, {"vx": "vx", "x": "x", "state": "state"}),
    ("run_left_accel_150", 61, {"vx": "vx"}),
    ("free_fall_top", 1, {"vy": "vy", "y": "y"}),
    ("wall_slide_left", 1, {"vy": "vy", "x": "x", "state": "state", "walled": "walled"}),
    ("wall_slide_right", 1, {"vy": "vy", "x": "x"}),
    ("wall_slide_release", 1, {"state": "state", "vy": "vy", "x": "x", "walled": "walled"}),
    ("ceiling_bonk", 61, {"y": "y", "vy": "vy", "state": "state", "ceiling_count": "ceiling_count"}),
    ("ramp45_run_up", 31, {"x": "x", "y": "y", "vx": "vx", "vy": "vy", "state": "state", "airborn": "airborn"}),
    ("ramp45_run_down", 1, {"x": "x", "y": "y", "vx": "vx", "vy": "vy", "state": "state", "airborn": "airborn"}),
    ("ramp45_idle_on_slope", 1, {"x": "x", "y": "y", "vx": "vx", "vy": "vy", "state": "state",
                                 "airborn": "airborn"}),
    ("air_accel_right_60", 1, {"vx": "vx", "vy": "vy"}),
    ("mine21_toggle_then_die", 1, {"ninja_x": "x", "ninja_state": "state"}),
    ("launch_pad_up", 1, {"y_series": "y", "vy_series": "vy", "state_series": "state"}),
]


@pytest.mark.parametrize("name,start,fields", SERIES, ids=[s[0] for s in SERIES])
def test_series(name, start, fields):
    fact = FACTS[name]
    out = run(fact)
    for gkey, field in fields.items():
        close(series(out, field, start, len(fact[gkey])), fact[gkey])


def test_all_facts_covered():
    covered = {s[0] for s in SERIES} | {n[len("test_fact_"):] for n in globals() if n.startswith("test_fact_")}
    covered |= {"standing_jump_table", "running_jump_table"}      # test_fact_jump_tables
    assert set(FACTS) <= covered


def test_fact_spawn_settle():
    f = FACTS["spawn_settle"]
    out = run(f)
    close(out["y"][1:9], f["y_1_8"])
    close(out["vy"][1:9], f["vy_1_8"])
    assert list(out["state"][1:9]) == f["state_1_8"] and list(out["airborn"][1:9].astype(int)) == f["airborn_1_8"]
    assert int(np.argmax(~out["airborn"][1:])) + 1 == f["first_grounded_tick"]
    assert out["y"][60] == f["rest_y"] and out["state"][60] == f["rest_state"]


def test_fact_run_right_accel_150():
    f = FACTS["run_right_accel_150"]
    vx = series(run(f), "vx", 61, 150)
    assert int(np.argmax(vx >= 3.0)) + 1 == f["first_tick_vx_ge_3"]
    assert int(np.argmax(vx >= 3.3)) + 1 == f["first_tick_vx_ge_3_3"]
    close(vx.max(), f["vx_max"])
    close(vx[-1], f["vx_at_150"])
    assert vx.max() < 3.333


def test_fact_run_left_accel_150():
    f = FACTS["run_left_accel_150"]
    left = series(run(f), "vx", 61, 150)
    right = series(run(FACTS["run_right_accel_150"]), "vx", 61, 150)
    assert f["mirror_exact"] and np.array_equal(left, -right)


def _jump_metrics(out, t0, n_max=400):
    """Golden definitions: tick 1 of the jump is t0; y/x relative to the row before."""
    y0, x0 = out["y"][t0 - 1], out["x"][t0 - 1]
    air = out["airborn"][t0:t0 + n_max]
    land = next(k for k in range(3, n_max + 1) if not air[k - 1])
    ys = out["y"][t0:t0 + land]
    return dict(apex_px=y0 - ys.min(), apex_tick=int(np.argmin(ys)) + 1, airtime_ticks=land,
                dx_px=out["x"][t0 + land - 1] - x0, y_land=out["y"][t0 + land - 1],
                state_after=int(out["state"][t0 + land - 1]), jump_event_first_tick=int(out["jump_event"][t0]),
                dy=ys - y0)


@pytest.mark.parametrize("table,t0", [("standing_jump_table", 61), ("running_jump_table", 151)])
def test_fact_jump_tables(table, t0):
    f = FACTS[table]
    for n, row in f["table"].items():
        m = _jump_metrics(run(f, rle=row["inputs_rle"]), t0)
        for k in ("apex_px", "dx_px", "y_land"):
            close(m[k], row[k])
        for k in ("apex_tick", "airtime_ticks", "state_after", "jump_event_first_tick"):
            assert m[k] == row[k], (n, k)
        if n in f.get("dy_series", {}):
            close(m["dy"], f["dy_series"][n])




def test_fact_free_fall_top():
    f = FACTS["free_fall_top"]
    out = run(f)
    assert out["end"] == f["death_tick"] and out["state"][f["death_tick"]] == f["final_state"]
    close(out["vy_old"][f["death_tick"]], f["impact_vy_old"])


def test_fact_fall_threshold_flat():
    f = FACTS["fall_threshold_flat"]
    for row in f["rows"]:
        out = run(f, rle=[[0, 0, 400]], spawn=[26, row["spawn_uy"]])
        land = next(t for t in range(3, 401) if not out["airborn"][t] or out["state"][t] in (6, 7))
        assert land == row["landing_tick"], row
        assert ("dead" if out["state"][land] in (6, 7) else "survived") == row["outcome"] or \
            (row["outcome"] != "dead" and out["state"][land] not in (6, 7)), row
        close(out["vy_old"][land], row["impact_vy_old"])
    dead = [r["drop_px"] for r in f["rows"] if r["outcome"] == "dead"]
    alive = [r["drop_px"] for r in f["rows"] if r["outcome"] != "dead"]
    assert max(alive) == f["max_survived_drop_px"] and min(dead) == f["min_fatal_drop_px"]


def test_fact_wall_slide_left():
    f = FACTS["wall_slide_left"]
    out = run(f)
    st = out["state"][1:601]
    assert int(np.argmax(st == 5)) + 1 == f["first_slide_tick"] and st[-1] == f["final_state"]
    close(out["vy"][600], f["vy_last_slide_tick"])
    close(out["vy"][600], f["analytic_terminal"], tol=1e-12)


def test_fact_wall_slide_right():
    f = FACTS["wall_slide_right"]
    left = run(FACTS["wall_slide_left"])["vy"][1:601]
    right = run(f)["vy"][1:601]
    assert np.max(np.abs(left - right)) <= f["max_abs_vy_diff_vs_left"] + 1e-12


def test_fact_wall_jumps():
    f = FACTS["wall_jumps"]
    for name, v in f["variants"].items():
        out = run(f, rle=v["inputs_rle"], spawn=v.get("spawn_patch_units", f["spawn_patch_units"]))
        close([out["vx"][61], out["vy"][61]], v["v_after_jump_tick"])
        assert out["jump_event"][61] == v["jump_event"], name
        if "state_before" in v:
            assert out["state"][60] == v["state_before"] and out["state"][61] == v["state_after"]
            close([out["vx"][60], out["vy"][60]], v["v_before"])
            close([out["x"][60], out["y"][60]], v["pos_before"])
            close([out["x"][61], out["y"][61]], v["pos_after_jump_tick"])
            close(out["x"][61:61 + len(v["x_next60"])], v["x_next60"])


def _first_event(out, start, events, window=10):
    for t in range(start, start + window + 1):
        if out["jump_event"][t] in events:
            return t
    return None


def test_fact_wall_coyote():
    f = FACTS["wall_coyote"]
    for row in f["rows"]:
        k = row["k"]
        out = run(f, rle=[[-1, 0, 60], [1, 0, k], [1, 1, 1], [1, 0, 10]])
        p = row["press_tick"]
        assert p == 61 + k
        assert out["jump_event"][p] == row["jump_event_on_press_tick"]
        assert _first_event(out, p, (2, 3)) == row["wall_jump_tick"]
        assert int(out["walled"][p]) == row["walled_at_press"]
        assert out["wall_buffer"][p - 1] == row["wall_buffer_before"]
    assert max(r["k"] for r in f["rows"] if r["wall_jump_tick"] is not None) == f["max_k_with_wall_jump"]


def test_fact_floor_coyote():
    f = FACTS["floor_coyote"]
    L = f["first_airborne_tick"]
    for row in f["rows"]:
        j = row["j"]
        out = run(f, rle=[[0, 0, 30], [1, 0, L - 31 + j], [1, 1, 1], [1, 0, 30]])
        p = row["press_tick"]
        assert p == L + j and int(np.argmax(out["airborn"][31:])) + 31 == L
        assert out["jump_event"][p] == row["jump_event_on_press_tick"]
        assert _first_event(out, p, (1,)) == row["floor_jump_tick"]
        assert int(out["airborn"][p]) == row["airborn_at_press"]
        assert out["floor_buffer"][p - 1] == row["floor_buffer_before"]


def test_fact_jump_buffer_landing():
    f = FACTS["jump_buffer_landing"]
    Ld = f["landing_tick"]
    for row in f["rows"]:
        j = row["j"]
        out = run(f, rle=[[0, 0, Ld - j - 1], [0, 1, 40]])
        assert int(np.argmax(~out["airborn"][1:])) + 1 == Ld
        ev = np.nonzero(out["jump_event"] == 1)[0]
        assert (int(ev[0]) if ev.size else None) == row["floor_jump_tick"]


def test_fact_ceiling_bonk():
    f = FACTS["ceiling_bonk"]
    out = run(f)
    close(series(out, "ceil_nx", 61, 80), f["ceil_n"][0])
    close(series(out, "ceil_ny", 61, 80), f["ceil_n"][1])
    close(series(out, "y", 61, 80).min(), f["min_y"])
    assert out["state"][180] == f["final_state"]


@pytest.mark.parametrize("name,start,n", [("ramp45_run_up", 31, 200), ("ramp45_run_down", 1, 120)])
def test_fact_ramp_floor_normals(name, start, n):
    f = FACTS[name]
    out = run(f)
    close(series(out, "floor_nx", start, n), f["floor_n"][0])
    close(series(out, "floor_ny", start, n), f["floor_n"][1])
    if "first_ramp_tick" in f:
        sloped = (out["floor_nx"] != 0) & ~out["airborn"]
        assert int(np.argmax(sloped)) == f["first_ramp_tick"]




def test_fact_slope_jumps():
    f = FACTS["slope_jumps"]
    for name, v in f["variants"].items():
        out = run(f, rle=v["inputs_rle"], spawn=v.get("spawn_patch_units"))
        t = v["jump_tick"]
        assert out["jump_event"][t] == v["jump_event"], name
        close([out["vx"][t - 1], out["vy"][t - 1]], v["v_before"])
        close([out["floor_nx"][t - 1], out["floor_ny"][t - 1]], v["floor_n_before"])
        close([out["vx"][t], out["vy"][t]], v["v_after"])
        close([out["x"][t - 1], out["y"][t - 1]], v["pos_before"])
        close([out["x"][t], out["y"][t]], v["pos_after"])


def _mine_row(out):
    t = out["ent_state"][0]
    return int(np.argmax(np.isin(np.arange(t.shape[0]), np.nonzero(out["ent_active"][0])[0]) &
                         (out["ent_xy"][0][:, 0] == 300)))


def test_fact_mine21_toggle_then_die():
    f = FACTS["mine21_toggle_then_die"]
    out = run(f)
    i = _mine_row(out)
    assert list(out["ent_state"][1:1 + len(f["mine_state"]), i]) == f["mine_state"]
    assert out["end"] == f["death_tick"] and out["ent_state"][f["death_tick"], i] == f["mine_state_after_death"]


def test_fact_mine1_touch_dies():
    f = FACTS["mine1_touch_dies"]
    out = run(f)
    i = _mine_row(out)
    t = f["death_tick"]
    assert out["end"] == t and out["ent_state"][t, i] == f["mine_state_after"]
    close(out["x"][t], f["x_at_death"])
    close(300 - out["x"][t], f["dist_at_death"])   # recorded as the horizontal offset to the mine
    assert np.hypot(out["x"][t] - out["ent_xy"][t, i, 0], out["y"][t] - out["ent_xy"][t, i, 1]) < 4 + 10


def _door_row(out):
    return int(np.argmax(out["ent_state"][0] == 1))


def test_fact_locked_door_blocks():
    f = FACTS["locked_door_blocks"]
    out = run(f)
    close(out["x"][200], f["x_final"])
    close(out["vx"][200], f["vx_final"])
    close(out["x"][1:201].max(), f["x_max"])
    assert out["state"][200] == f["state_final"] and int(out["walled"][200]) == f["walled_final"]
    assert out["ent_state"][200, _door_row(out)] == f["door_closed_final"]


def test_fact_locked_door_switch_opens():
    f = FACTS["locked_door_switch_opens"]
    out = run(f)
    i = _door_row(out)
    assert int(np.argmax(out["ent_state"][:, i] == 0)) == f["door_open_tick"]
    close(out["x"][200], f["x_final"])
    assert out["doors_opened"][200] == f["doors_opened"]


def test_fact_launch_pad_up():
    f = FACTS["launch_pad_up"]
    out = run(f)
    t = int(np.argmax(out["launch_pad_buffer"] >= 0))
    assert t == f["launch_tick"]
    close([out["vx"][t], out["vy"][t]], f["v_after"])
    close([out["x"][t - 1], out["y"][t - 1]], f["pos_before"])
    close([out["x"][t], out["y"][t]], f["pos_after"])


def test_fact_simple_walk_hold_right():
    f = FACTS["simple_walk_hold_right"]
    out = run(f)
    assert int(np.argmax(out["switch_hit"])) == f["switch_tick"]
    assert out["end"] == f["win_tick"] and out["state"][f["win_tick"]] == f["final_state"]
    close(out["x"][f["win_tick"]], f["final_x"])


def test_fact_air_accel_right_60():
    test_series("air_accel_right_60", 1, {"vx": "vx", "vy": "vy"})
