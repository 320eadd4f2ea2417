"""``TickOptions``: every exact schedule (fixed-count or partly inline depenetration, substeps in
a fori_loop, logical collisions as the row loop instead of the vectorised pass) gives the
reference results bit for bit in float64, on a human replay with gold, mines, exit and switch
(20 gold collected, a win) that the vectorised pass handles."""

import jax
import jax.numpy as jnp
import numpy as np

from envs.npp.golden import npp_golden_dir, x64_scope
from envs.npp.level import load_map
from envs.npp.sim import REFERENCE, TickOptions, init_state, tick_stats

FILE = npp_golden_dir() / "trajectories" / "replay__shared__20251023_113753_train_very_simple_100008.npz"
ALT = TickOptions(depen_loop="fixed", depen_unroll=2, unroll_substeps=False, vector_logical=False)
# the batched env's schedule (NppEnv.default_tick_options): blocks of a fixed loop, switch pass without a loop
BATCHED = TickOptions(depen_loop="fixed", depen_block=4, switch_passes=1)


def _run(level, hor, jump, options):
    def step(s, hj):
        s, st = tick_stats(s, level, hj[0], hj[1], options)
        n, e = s.ninja, s.ents
        return s, (n.x, n.y, n.vx, n.vy, n.state, n.gravity, n.gold_collected, e.state, e.active, e.in_grid,
                   e.stamp, s.stamp_counter, s.switch_hit, st["depen_evals"])

    return jax.lax.scan(step, init_state(level, jnp.float64), (hor, jump))[1]


def test_exact_schedules_are_bit_identical_and_match_the_golden_run():
    assert ALT.is_reference and BATCHED.is_reference and REFERENCE.is_reference
    assert not TickOptions(depen_cap=8).is_reference
    z = np.load(FILE)
    with x64_scope():
        level = load_map(z["map_bytes"].tobytes(), max_entities=64)     # types (1, 2, 3, 4): vectorised pass
        assert set(level.entity_types) == {1, 2, 3, 4}
        hor, jump = jnp.asarray(z["hor"], jnp.int32), jnp.asarray(z["jump"], jnp.int32)
        run = jax.jit(_run, static_argnums=3)
        ref = jax.tree.map(np.asarray, run(level, hor, jump, REFERENCE))
        alt = jax.tree.map(np.asarray, run(level, hor, jump, ALT))
        batched = jax.tree.map(np.asarray, run(level, hor, jump, BATCHED))
        assert int((np.asarray(level.ent_type) == 4).sum()) == 1     # one exit switch: switch_passes=1 is exact
    for a, b, c in zip(ref, alt, batched):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    x, y, vx, vy, state, _, gold = ref[:7]
    for got, key in ((x, "x"), (y, "y"), (vx, "vx"), (vy, "vy")):
        assert np.abs(got - z[key][1:]).max() <= 1e-9, key
    assert (state == z["state"][1:]).all() and (gold == z["gold_collected"][1:]).all()
    assert gold[-1] == 20 and state[-1] == 8
    evals = ref[-1]
    assert evals.min() >= 1 and evals.max() <= 32      # the ninja is alive throughout: >= 1 search per substep
