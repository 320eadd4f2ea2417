"""NppEnv: shapes/dtypes, frame-skip semantics, a human replay reaching the win, truncation,
reward terms on hand-made situations. Fixed-level envs only (the generators compile in
tests/test_npp_generators.py); each program is jitted once per module."""


import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.npp import rewards as R
from envs.npp.env import NppEnv, make_npp_env
from envs.npp.generators import STAGE_ORDER
from envs.npp.levels import GEN_ENTITY_TYPES, corridor_level, load_replay_level, replay_paths

KEY = jax.random.PRNGKey(0)
REPLAY = "20251022_142001_train_very_simple_100001.replay"   # 37 frames, exit + switch only


@pytest.fixture(scope="module")
def env4():
    return NppEnv(obs_kind="state", frame_skip=4, level_source="fixed")


@pytest.fixture(scope="module")
def env1():
    return NppEnv(obs_kind="state", frame_skip=1, level_source="fixed")


def _runner(env):
    """jit(run)(params, actions[T]) -> per-step (reward, terminated, truncated, frames, won, frame)."""
    @jax.jit
    def run(params, actions):
        _, s = env.reset_env(KEY, params)

        def body(s, a):
            _, s2, r, te, tr, info = env.step_env(KEY, s, a[None], params)
            return s2, (r[0], te[0], tr[0], info["frames_executed"][0], s2.sim.won, s2.sim.frame, _[0])

        return jax.lax.scan(body, s, actions)[1]
    return run


@pytest.fixture(scope="module")
def run4(env4):
    return _runner(env4)


@pytest.fixture(scope="module")
def run1(env1):
    return _runner(env1)


def test_reset_step_shapes_and_dtypes(env4, run4):
    p = env4.default_params
    obs, s = jax.eval_shape(env4.reset_env, KEY, p)          # shapes without compiling twice
    chex.assert_shape(obs, (1, 40))
    assert obs.dtype == jnp.float32
    obs2, s2, r, te, tr, info = jax.eval_shape(env4.step_env, KEY, s, jnp.array([2]), p)
    chex.assert_shape([obs2, r, te, tr], [(1, 40), (1,), (1,), (1,)])
    assert [x.dtype for x in (obs2, r, te, tr)] == [jnp.float32, jnp.float32, jnp.bool_, jnp.bool_]
    assert env4.observation_space(p).shape == (40,) and env4.action_space(p).n == 6
    assert env4.can_truncate and env4.num_agents == 1
    stats = jax.eval_shape(env4.episode_stats, s2)
    assert set(stats) >= {"success", "death", "frames", "steps"}
    for v in stats.values():
        assert v.shape == (1,) and v.dtype == jnp.float32
    assert jax.eval_shape(env4.action_mask, s2).shape == (1, 6)
    # values: the compiled runner (shared with the tests below)
    r, te, tr, frames, won, frame, o = jax.tree.map(np.asarray, run4(p, jnp.full((32,), 2, jnp.int32)))
    assert np.all(np.abs(o) <= 1.0 + 1e-6) and o.dtype == np.float32
    assert frames[0] == 4 and frame[0] == 4 and r.dtype == np.float32


@pytest.mark.parametrize("kind,shape,dtype", [("grid", (1, 10, 25, 44), jnp.uint8),
                                              ("state_local", (1, 40 + 3 * 169), jnp.float32)])
def test_other_observation_kinds(kind, shape, dtype):
    env = NppEnv(obs_kind=kind, level_source="fixed")
    p = env.default_params
    obs, s = jax.jit(env.reset_env)(KEY, p)
    chex.assert_shape(obs, shape)
    chex.assert_type(obs, dtype)
    assert env.observation_space(p).shape == shape[1:]
    if kind == "grid":
        g = np.asarray(obs[0])
        sx, sy = (np.asarray(p.level.spawn) // 24).astype(int)
        assert g[7, sy, sx] == 255 and g[7].sum() == 255          # global ninja channel
        assert g[4, sy, sx] == 0 and g[4, 0, 0] == 255            # global solid: empty at spawn, border solid
        assert g[0, 12, 22] == 0                                  # local window is centred on the ninja
        assert g[6].max() == 255                                  # exit switch visible
        # the policy scales the uint8 grid to [0, 1] (train.py reads env.obs_scale)
        np.testing.assert_allclose(env.obs_scale * g.max(axis=(1, 2)), g.max(axis=(1, 2)) / 255.0)
        chex.assert_shape(env.obs_scale, (shape[1],))
    else:
        assert env.obs_scale is None                        # vector observations are in [-1, 1]


def test_replay_inputs_reach_the_win(env1, run1):
    path = [p for p in replay_paths() if p.name == REPLAY][0]
    level, actions = load_replay_level(path, env1.max_entities, env1.max_doors, GEN_ENTITY_TYPES)
    params = env1.default_params.replace(level=level)
    T = len(actions)
    pad = np.zeros(64, np.int32)
    pad[:T] = actions
    r, te, tr, frames, won, frame, _ = jax.tree.map(np.asarray, run1(params, jnp.asarray(pad)))
    first = int(np.argmax(te))
    assert te[first] and first == T - 1 and won[first] and not tr[:first + 1].any()
    assert not te[:first].any() and int(frame[first]) == T
    assert r[first] > 0.9                                        # +1 win (plus shaping, minus time)


def test_frame_skip_stops_at_the_win(env1, env4, run1, run4):
    level = corridor_level(spawn_x=2, switch_x=4, exit_x=7)
    p1 = env1.default_params.replace(level=level)
    p4 = env4.default_params.replace(level=level)
    right = jnp.full((64,), 2, jnp.int32)
    _, te1, _, _, won1, _, _ = jax.tree.map(np.asarray, run1(p1, right))
    F = int(np.argmax(te1)) + 1                                  # frame of the win at frame skip 1
    assert won1[F - 1] and te1[F - 1]
    r, te, tr, frames, won, frame, _ = jax.tree.map(np.asarray, run4(p4, right[:32]))
    k = int(np.argmax(te))
    assert te[k] and won[k] and k == (F - 1) // 4                # the step containing frame F ends it
    assert frames[k] == F - 4 * k and frame[k] == F              # no frames simulated after the win
    assert F % 4 != 0 or frames[k] == 4
    assert (frames[:k] == 4).all()


def test_death_terminates_with_death_penalty(env4, run4):
    level = corridor_level(spawn_x=2, switch_x=7, exit_x=8, mines_x=(4,))
    p = env4.default_params.replace(level=level)
    r, te, tr, frames, won, frame, _ = jax.tree.map(np.asarray, run4(p, jnp.full((32,), 2, jnp.int32)))
    k = int(np.argmax(te))
    assert te[k] and not won[k]
    assert r[k] == pytest.approx(-0.5)


def test_truncation_at_frame_limit(env4, run4):
    p = env4.default_params.replace(max_frames=jnp.int32(40))
    r, te, tr, frames, won, frame, _ = jax.tree.map(np.asarray, run4(p, jnp.zeros(32, jnp.int32)))
    assert not te.any()
    assert not tr[:9].any() and tr[9] and frame[9] == 40          # 10 steps x 4 frames
    assert tr[9:].all()                                          # (no auto-reset in step_env)


def test_config_time_weight_is_the_whole_reward_of_a_quiet_step(env4, run4):
    """npp.reward_* from the config reach the reward: with every other term off, each living
    step pays exactly npp.reward_time."""
    from jaxrl_arena import config as C
    from jaxrl_arena.registry import make

    off = [f"npp.reward_{k}=0" for k in ("win", "death", "switch", "nav", "explore", "pbrs")]
    cfg = C.apply_overrides(C.get_recipe("npp_grid"), off + ["npp.reward_time=-0.75"])
    weights = make(cfg).default_params.reward
    r, te, tr, *_ = jax.tree.map(np.asarray, run4(env4.default_params.replace(reward=weights),
                                                  jnp.zeros(8, jnp.int32)))
    assert not te.any() and not tr.any()
    np.testing.assert_allclose(r, -0.75)


def test_reward_terms_hand_made():
    w = R.default_weights()
    sw = jnp.array([100.0, 100.0])
    ex = jnp.array([500.0, 100.0])
    z = jnp.zeros((44, 25))
    start = jnp.array([40.0, 100.0])
    tr = R.init_trackers(start, sw, ex, z, z)
    f, t = jnp.array(False), jnp.array(True)
    # standing still: time penalty + the four first-visit bonuses; no shaping
    r, tr1, terms = R.step_reward(w, tr, start, sw, ex, f, f, f, z, z)
    assert float(r) == pytest.approx(-0.01 + 0.004 + (0.99 - 1) * float(R.phi_pbrs(60.0)), abs=1e-7)
    # revisiting the same cell: no exploration bonus
    r2, _, terms2 = R.step_reward(w, tr1, start, sw, ex, f, f, f, z, z)
    assert float(terms2["explore"]) == 0.0
    # moving 30 px closer: improvement 0.0001*30 + potential difference + PBRS
    p = jnp.array([70.0, 100.0])
    r3, tr3, terms3 = R.step_reward(w, tr1, p, sw, ex, f, f, f, z, z)
    nav = 0.0001 * 30 + float(R.phi_nav(30.0) - R.phi_nav(60.0))
    assert float(terms3["nav"]) == pytest.approx(nav, rel=1e-5)
    assert float(terms3["pbrs"]) == pytest.approx(0.99 * float(R.phi_pbrs(30.0)) - float(R.phi_pbrs(60.0)), rel=1e-5)
    assert float(r3) == pytest.approx(-0.01 + nav + float(terms3["pbrs"]) + 0.001, rel=1e-5)  # new 1x1 cell only
    # switch activation: +0.1, the goal becomes the exit, exploration grids reset (+0.004)
    r4, tr4, terms4 = R.step_reward(w, tr3, sw, sw, ex, t, f, f, z, z)
    assert bool(terms4["activated"]) and float(terms4["explore"]) == pytest.approx(0.004)
    assert float(tr4.closest) == pytest.approx(400.0)
    expect = -0.01 + 0.1 + float(terms4["nav"]) + 0.004 + float(terms4["pbrs"])
    assert float(r4) == pytest.approx(expect, rel=1e-5)
    # win: +1; death: exactly the death penalty
    r5, _, _ = R.step_reward(w, tr4, ex, sw, ex, t, t, f, z, z)
    assert float(r5) > 0.99
    r6, _, _ = R.step_reward(w, tr4, ex, sw, ex, t, f, t, z, z)
    assert float(r6) == pytest.approx(-0.5)
    # weights are data
    r7, _, _ = R.step_reward(R.default_weights(death=-2.0), tr4, ex, sw, ex, t, f, t, z, z)
    assert float(r7) == pytest.approx(-2.0)


def test_factory_and_named_tasks():
    class Cfg:
        max_steps = 0
        obs_kind = "dense"
        reward_time = -0.02
    env = make_npp_env(Cfg())
    assert env.obs_kind == "grid" and env.max_frames == 20_000 and env.frame_skip == 4
    assert float(env.default_params.reward.time) == pytest.approx(-0.02)
    tasks = env.named_tasks()
    assert list(tasks) == list(STAGE_ORDER)
    assert all(bool(p.use_generator) for p in tasks.values())
    assert make_npp_env(None).obs_kind == "state"


def test_human_maps_load_as_stackable_levels(env4):
    from envs.npp.levels import human_map_paths, load_levels
    levels, names = load_levels(human_map_paths(), env4.max_entities, env4.max_doors, env4.entity_types)
    assert "simple-walk" in names and len(names) == levels.tiles.shape[0] >= 10
    params = env4.level_params(levels)
    assert params.level.ent_type.shape == (len(names), env4.max_entities)
    assert not bool(params.use_generator.any())


def test_batched_env_state_is_compact():
    """Every env holds its state and params, and the rollout selects both at each reset: a
    generator env's params carry no placeholder level, and a level keeps one int8 segment kind
    per slot (not per-slot geometry), so an env's state stays under 48 KB (it was 129 KB, plus
    110 KB of params)."""
    env = NppEnv(obs_kind="grid", level_source="generator")
    params = env.named_tasks()["simplest"]
    assert params.level is None
    _, state = jax.eval_shape(env.reset_env, jax.random.PRNGKey(0), params)
    nbytes = lambda t: sum(np.prod(x.shape) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(t))
    assert nbytes(params) < 1024
    assert nbytes(state) < 48 * 1024
    assert state.level.seg_kind.dtype == jnp.int8
    # the accelerator schedule has no host round trip per loop iteration; every schedule is exact
    gpu = NppEnv.default_tick_options("generator", backend="gpu")
    assert gpu.depen_loop == "compact" and gpu.switch_passes == 1 and gpu.is_reference
    assert env.tick_options.is_reference
    with pytest.raises(ValueError, match="exact schedule"):
        from envs.npp.sim import TickOptions
        NppEnv(tick_options=TickOptions(depen_cap=4))
