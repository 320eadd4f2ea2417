"""Level loading, malformed-data errors, action mapping and the public API contract.

Section marks (§) cite docs/specs/npp.md.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs.npp as npp
from envs.npp import constants as C
from envs.npp.golden import npp_golden_dir, x64_scope
from envs.npp.map_format import decode_inputs, parse_map

GOLD = npp_golden_dir()
FLAT = (GOLD / "facts_maps" / "flat_room.map").read_bytes()


def _with_mines(n):
    """flat_room plus n type-1 mines appended as records (at distinct positions)."""
    m = bytearray(FLAT)
    for k in range(n):
        m += bytes([1, 10 + (k % 150), 20 + (k // 150) * 10, 0, 0])
    return bytes(m)


def test_load_flat_room():
    level = npp.load_map(FLAT)
    chex.assert_shape(level.tiles, (C.GRID_W, C.GRID_H))
    assert int(level.n_entities) == 2
    types = np.asarray(level.ent_type)[:2]
    assert list(types) == [3, 4]                       # exit door, then its switch (list 3)
    assert bool(level.ent_in_grid[1]) and not bool(level.ent_in_grid[0])
    np.testing.assert_array_equal(np.asarray(level.spawn), [156.0, 564.0])


@pytest.mark.parametrize("mutate,match", [
    (lambda m: m[:1000], "bytes"),
    (lambda m: m[:300] + bytes([38]) + m[301:], "unknown tile id 38"),
    (lambda m: m + bytes([29, 10, 10, 0, 0]), "unknown entity type 29"),
    (lambda m: m[:1231] + bytes([0, 0]) + m[1233:], "no ninja spawn"),
    (lambda m: m[:1235], "no exit"),
])
def test_malformed_maps_raise_one_line_value_error(mutate, match):
    with pytest.raises(ValueError, match=match) as ex:
        npp.load_map(mutate(FLAT))
    assert "\n" not in str(ex.value)


def test_unknown_but_valid_types_are_skipped():
    m = FLAT + bytes([15, 10, 10, 0, 0, 23, 12, 12, 0, 0])      # chaser drone, laser: not instantiated
    assert len(parse_map(m).entities) == 2


def test_capacity_at_least_256_mines():
    level = npp.load_map(_with_mines(256))
    assert int(level.n_entities) == 258 and level.max_entities >= 258
    state = npp.init_state(level)
    assert int(jnp.sum(state.ents.state[:256] == 0)) == 256          # type 1 starts deadly
    with pytest.raises(ValueError, match="capacity"):
        npp.load_map(_with_mines(400))


def test_toggle_mine_initial_states():
    m = FLAT + bytes([1, 40, 40, 0, 0, 21, 50, 40, 0, 0])
    level = npp.load_map(m)
    st = npp.init_state(level)
    types = list(np.asarray(level.ent_type)[:4])
    states = list(np.asarray(st.ents.state)[:4])
    assert dict(zip(types, states))[1] == 0 and dict(zip(types, states))[21] == 1


def test_action_mapping_matches_replay_bytes():
    hor, jump = npp.action_to_inputs(jnp.arange(6))
    assert list(np.asarray(hor)) == [0, -1, 1, 0, -1, 1] and list(np.asarray(jump)) == [0, 0, 0, 1, 1, 1]
    h2, j2 = decode_inputs(np.array([0, 4, 2, 1, 5, 3]))
    assert list(h2) == list(np.asarray(hor)) and list(j2) == list(np.asarray(jump))
    h3, _ = decode_inputs(np.array([6, 7]))
    assert list(h3) == [-1, -1]                                    # left wins


def test_jump_needs_a_rising_edge():
    level = npp.load_map(FLAT)
    step = jax.jit(npp.tick)
    s = npp.init_state(level)
    for _ in range(10):
        s = step(s, level, 0, 0)
    s = step(s, level, 0, 1)
    assert int(s.ninja.state) == C.ST_JUMPING
    for _ in range(120):                                           # hold jump through the landing
        s = step(s, level, 0, 1)
    assert not bool(s.ninja.airborn) and int(s.ninja.jump_event) == 0


def test_vmap_over_levels_and_float32_default():
    maps = [FLAT, (GOLD / "facts_maps" / "ramp45.map").read_bytes()]
    levels = jax.tree.map(lambda *a: jnp.stack(a), *[npp.load_map(m, entity_types=(3, 4)) for m in maps])
    states = jax.vmap(npp.init_state)(levels)
    assert states.ninja.x.dtype == jnp.float32
    hor = jnp.ones(2, jnp.int32)
    jump = jnp.zeros(2, jnp.int32)
    step = jax.jit(jax.vmap(npp.tick))
    for _ in range(5):
        states = step(states, levels, hor, jump)
    chex.assert_shape(states.ninja.x, (2,))
    assert bool(jnp.all(states.ninja.vx > 0)) and not bool(jnp.any(states.won | states.dead))
    assert not bool(jnp.any(states.switch_hit))


def test_float64_requires_x64():
    level = npp.load_map(FLAT)
    if not jax.config.jax_enable_x64:
        with pytest.raises(ValueError, match="x64"):
            npp.init_state(level, jnp.float64)
    with x64_scope():
        s = npp.init_state(npp.load_map(FLAT), jnp.float64)
        assert s.ninja.x.dtype == jnp.float64


def test_regular_door_opens_on_contact_and_recloses_after_5_frames():
    """Spec §6.4.4: contact in frame t keeps it open for frames t+1..t+5; it closes in frame t+6."""
    from envs.npp.golden import simulate
    # flat_room + a vertical regular door (orientation 0) at px (300, 564), on the ninja's path
    m = FLAT + bytes([5, 50, 94, 0, 0])
    with x64_scope():
        out = simulate(m, np.ones(150, np.int32), np.zeros(150, np.int32))
    row = int(np.argmax(out["ent_state"][0] == 1))            # the door (closed at load)
    closed = out["ent_state"][:, row]
    contact = out["ent_aux"][:, row, 0] == 0                    # open_timer reset by every contact
    opened = np.nonzero(closed == 0)[0]
    assert opened.size and out["x"][150] > 330                 # it opened and the ninja went through
    last = int(np.nonzero((closed == 0) & contact)[0].max())
    assert list(closed[last:last + 7]) == [0, 0, 0, 0, 0, 0, 1]
    assert list(out["ent_aux"][last:last + 6, row, 0]) == [0, 1, 2, 3, 4, 5]
