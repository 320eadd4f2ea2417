"""``TickOptions``: every exact schedule (fixed-count or partly inline depenetration, substeps in
a fori_loop, logical collisions as the row loop instead of the vectorised pass) gives the
reference results bit for bit in float64, on a human replay with gold, mines, exit and switch
(20 gold collected, a win) that the vectorised pass handles; the batched straggler schedule
(``depen_loop="compact"``) does so per lane on a scattered batch in that level."""

import chex
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


def _scattered_batch(level, lanes, steps):
    """``lanes`` ninjas at random positions (many inside tiles: up to the full 32 depenetration
    steps) with random velocities, and random inputs for ``steps`` frames."""
    s0 = init_state(level, jnp.float64)
    k_pos, k_vel, k_hor, k_jump = jax.random.split(jax.random.PRNGKey(0), 4)
    xy = jax.random.uniform(k_pos, (lanes, 2), jnp.float64, 24.0, jnp.array([43 * 24.0, 24 * 24.0]))
    v = 3 * jax.random.normal(k_vel, (lanes, 2), jnp.float64)
    states = jax.vmap(lambda p, v: s0.replace(ninja=s0.ninja.replace(x=p[0], y=p[1], vx=v[0], vy=v[1])))(xy, v)
    return states, jax.random.randint(k_hor, (steps, lanes), -1, 2), jax.random.randint(k_jump, (steps, lanes), 0, 2)


def _run_batch(level, states, hor, jump, options, vmap_over=jax.vmap):
    """The trajectory (positions, velocities, states, evaluations) of a vmapped batch."""
    def step(s, hj):
        s, st = vmap_over(lambda s, h, j: tick_stats(s, level, h, j, options))(s, *hj)
        n = s.ninja
        return s, (n.x, n.y, n.vx, n.vy, n.state, n.floor_count, n.ceil_count, n.crush_len, st["depen_evals"])

    return jax.lax.scan(step, states, (hor, jump))[1]


def test_compact_depenetration_matches_the_reference_per_lane():
    """The straggler schedule (the first 4 steps on every lane, the rest on the gathered lanes
    still running) equals the reference bit for bit: over 32 lanes with room for 2 stragglers
    (calls with more run the full-batch fallback too), and under a nested vmap (2 x 16 lanes,
    room for 4 each; calls where only one half overflows take the fallback on that half only)."""
    z = np.load(FILE)
    lanes, steps, block = 32, 4, 4
    # substeps in a fori_loop: one depenetration to compile (and the custom vmap inside a loop body)
    compact = lambda divisor: TickOptions(depen_loop="compact", depen_block=block, unroll_substeps=False,
                                          depen_compact_divisor=divisor, depen_compact_floor=2)
    assert compact(2).is_reference
    halves = lambda t: jax.tree.map(lambda x: x.reshape((2, lanes // 2) + x.shape[1:]), t)
    with x64_scope():
        level = load_map(z["map_bytes"].tobytes(), max_entities=64)
        states, hor, jump = _scattered_batch(level, lanes, steps)
        run = jax.jit(_run_batch, static_argnums=(4, 5))
        ref = jax.tree.map(np.asarray, run(level, states, hor, jump, REFERENCE))
        flat = run(level, states, hor, jump, compact(lanes))                 # capacity 2
        nested = run(level, halves(states), jax.vmap(halves)(hor), jax.vmap(halves)(jump), compact(4),
                     lambda f: jax.vmap(jax.vmap(f)))                         # capacity 4 per half
    evals = ref[-1]                                                           # [steps, lanes, substeps]
    stragglers = (evals > block).sum(axis=1)                                  # per call
    assert evals.max() == 32 and (stragglers > 2).any() and ((stragglers > 0) & (stragglers <= 2)).any()
    overflow = (halves(np.swapaxes(evals, 0, 1)) > block).sum(axis=1) > 4      # [2 halves, steps, substeps]
    assert (overflow[0] != overflow[1]).any()
    chex.assert_trees_all_equal(ref, jax.tree.map(np.asarray, flat))
    chex.assert_trees_all_equal(ref, jax.tree.map(lambda x: np.asarray(x).reshape((steps, lanes) + x.shape[3:]),
                                                  nested))
