"""Contract, map generation, observations and episode-end behaviour of the JAX arena.

Section marks (§) cite docs/specs/arena.md.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.arena import ArenaEnv, ArenaParams, from_ascii, make_params
from envs.arena import constants as K
from envs.arena.observations import dense_from_tokens, dense_observations, token_observations
from envs.base import Box, Discrete

A = 24


@pytest.fixture(scope="module")
def env():
    return ArenaEnv(num_agents=A, obs_kind="dense", max_steps=1000)


@pytest.fixture(scope="module")
def reset(env):
    return jax.jit(env.reset_env)


@pytest.fixture(scope="module")
def step(env):
    return jax.jit(env.step_env)


def test_spaces_and_params(env):
    params = env.default_params
    assert isinstance(params, ArenaParams)
    assert env.action_space(params) == Discrete(16)
    space = env.observation_space(params)
    assert isinstance(space, Box) and space.shape == (27, 11, 11) and space.dtype == jnp.uint8
    tok = ArenaEnv(obs_kind="tokens").observation_space(params)
    assert tok.shape == (200, 3) and tok.dtype == jnp.uint8
    assert env.obs_scale.shape == (27,) and env.obs_scale.dtype == np.float32
    np.testing.assert_allclose(env.obs_scale[[0, 1, 7, 17]], [1, 0.1, 1 / 255, 0.01])
    for leaf in jax.tree.leaves(params):
        assert isinstance(leaf, jax.Array)
    with pytest.raises(ValueError):
        ArenaEnv(obs_kind="pixels")


def test_reset_and_step_shapes(env, reset, step):
    params = env.default_params
    obs, state = reset(jax.random.key(0), params)
    chex.assert_shape(obs, (A, 27, 11, 11))
    chex.assert_type(obs, jnp.uint8)
    actions = jax.random.randint(jax.random.key(1), (A,), 0, 16, dtype=jnp.int32)
    obs, state, reward, term, trunc, info = step(jax.random.key(2), state, actions, params)
    chex.assert_shape(obs, (A, 27, 11, 11))
    chex.assert_shape([reward, term, trunc], (A,))
    chex.assert_type(reward, jnp.float32)
    chex.assert_type([term, trunc], jnp.bool_)
    assert isinstance(info, dict)
    assert int(state.time) == 1 and not bool(term.any())
    stats = env.episode_stats(state)
    for name in (
        "heart.gained",
        "heart.get",
        "ore_red.get",
        "battery_red.put",
        "action.move.success",
        "action.attack.success",
        "status.frozen.ticks",
        "action.failure_penalty",
        "status.max_steps_without_motion",
    ):
        chex.assert_shape(stats[name], (A,))
        chex.assert_type(stats[name], jnp.float32)
    # every agent did exactly one valid action: success + failed + frozen ticks = 1
    total = sum(stats[f"action.{h}.{r}"] for h in K.HANDLER_NAMES for r in ("success", "failed"))
    np.testing.assert_array_equal(np.asarray(total + stats["status.frozen.ticks"]), 1)


def test_generated_map_layout(env, reset):
    params = env.default_params
    _, s = reset(jax.random.key(3), params)
    grid = np.asarray(s.grid_obj)
    assert grid.shape == (62, 62)
    assert (grid == K.CELL_WALL).sum() == 1384
    border = np.ones((62, 62), bool)
    border[6:56, 6:56] = False
    assert (grid[border] == K.CELL_WALL).all()
    pos = np.asarray(s.agent_pos).astype(int)
    flat = pos[:, 0] * 62 + pos[:, 1]
    assert (np.diff(flat) > 0).all(), "agent ids are row-major"
    assert (grid[pos[:, 0], pos[:, 1]] == K.CELL_EMPTY).all(), "agents on free cells"
    ga = np.asarray(s.grid_agent)
    assert (ga[pos[:, 0], pos[:, 1]] == np.arange(A)).all() and (ga >= 0).sum() == A
    kinds = np.asarray(s.conv_kind)
    cpos = np.asarray(s.conv_pos).astype(int)
    assert (grid[cpos[:, 0], cpos[:, 1]] == np.arange(len(kinds))).all()
    for q in range(4):
        r0, c0 = 6 + 25 * (q // 2), 6 + 25 * (q % 2)

        def inq(p, r0=r0, c0=c0):
            return (p[:, 0] >= r0) & (p[:, 0] < r0 + 25) & (p[:, 1] >= c0) & (p[:, 1] < c0 + 25)

        assert inq(pos).sum() == 6
        for kind, count in (
            (K.MINE, 10),
            (K.GENERATOR, 5),
            (K.ALTAR, 5),
            (K.LASERY, 1),
            (K.ARMORY, 1),
        ):
            assert (inq(cpos) & (kinds == kind)).sum() == count
        assert (grid[r0 : r0 + 25, c0 : c0 + 25] == K.CELL_WALL).sum() == 10
    # mines start converting at t = 0, the others are idle
    assert (np.asarray(s.conv_converting) == (kinds == K.MINE)).all()
    # a new map per key
    _, s2 = reset(jax.random.key(4), params)
    assert not np.array_equal(np.asarray(s2.agent_pos), pos)


def test_per_env_params_vmapped_without_recompiling(env):
    """Counts, initial resources, combat and reward shaping are data: one compiled reset/step
    serves a batch of different tasks."""
    p_default = env.default_params
    p_other = make_params(
        combat=False,
        easy_altar=False,
        shaped_rewards=False,
        initial_resource_count=(1, 1, 1, 1, 1),
        quadrant_counts=(3, 2, 4, 1, 0, 1),
    )
    params = jax.tree.map(lambda a, b: jnp.stack([a, b]), p_default, p_other)
    keys = jax.random.split(jax.random.key(5), 2)
    obs, s = jax.jit(jax.vmap(env.reset_env))(keys, params)
    chex.assert_shape(obs, (2, A, 27, 11, 11))
    kinds = np.asarray(s.conv_kind)
    assert (kinds[0] == K.MINE).sum() == 40 and (kinds[1] == K.MINE).sum() == 16
    assert (kinds[1] == K.LASERY).sum() == 0 and (kinds[1] == -1).sum() == 88 - 4 * 8
    assert (np.asarray(s.grid_obj[1]) == K.CELL_WALL).sum() == 1344 + 12
    inv = np.asarray(s.conv_inv[1])
    out_item = {K.MINE: K.ORE_RED, K.GENERATOR: K.BATTERY_RED, K.ALTAR: K.HEART, K.ARMORY: K.ARMOR}
    for kind, item in out_item.items():
        assert (inv[kinds[1] == kind, item] == 1).all()
    assert (np.asarray(s.conv_inv[0]) == 0).all()
    assert (
        int(params.attack_cost[1]) == 100
        and int(params.recipe_input[1, K.ALTAR, K.BATTERY_RED]) == 3
    )


def test_dense_box_equals_scattered_tokens(env, reset, step):
    """The dense box is exactly the policy-side scatter of the raw tokens (§9.6)."""
    params = env.default_params
    _, s = reset(jax.random.key(6), params)
    both = jax.jit(lambda s: (dense_observations(s), dense_from_tokens(token_observations(s))))
    for t in range(12):
        actions = jax.random.randint(jax.random.key(100 + t), (A,), 0, 16, dtype=jnp.int32)
        _, s, *_ = step(jax.random.key(200 + t), s, actions, params)
        dense, scattered = both(s)
        np.testing.assert_array_equal(np.asarray(dense), np.asarray(scattered))
    assert int(np.asarray(dense)[:, K.F_TYPE_ID].max()) >= 2  # converters / walls visible


def test_terminal_at_max_steps_and_completion_pct(env, reset, step):
    params = env.default_params.replace(max_steps=jnp.asarray(10, jnp.int32))
    _, s = reset(jax.random.key(7), params)
    for t in range(1, 11):
        obs, s, _, term, trunc, _ = step(jax.random.key(t), s, jnp.zeros(A, jnp.int32), params)
        assert bool(term.all()) == (t == 10) and not bool(trunc.any())
        # round(255 t / 10), half away from zero (76.5 -> 77)
        pct = [26, 51, 77, 102, 128, 153, 179, 204, 230, 255][t - 1]
        assert (np.asarray(obs[:, K.F_EPISODE_PCT, 5, 5]) == pct).all()


def test_desync_first_episode_horizon(env, reset, step):
    params = env.default_params
    desync = params.replace(desync_episodes=jnp.asarray(True))
    assert env.can_truncate is False  # the arena only terminates
    reset_first = jax.jit(env.reset_env_first)
    horizons = [int(reset_first(jax.random.key(k), desync)[1].horizon) for k in range(8)]
    assert all(1 <= h <= 1000 for h in horizons) and len(set(horizons)) > 1
    assert int(reset_first(jax.random.key(0), params)[1].horizon) == 1000  # flag off
    assert int(reset(jax.random.key(0), desync)[1].horizon) == 1000  # later episodes
    # the first episode terminates (not truncates) at H, and the clock counts toward H
    s = reset_first(jax.random.key(1), desync)[1].replace(horizon=jnp.asarray(3, jnp.int32))
    terms = []
    for t in range(3):
        obs, s, _, term, trunc, _ = step(jax.random.key(t), s, jnp.zeros(A, jnp.int32), params)
        terms.append(bool(term.all()))
        assert not bool(trunc.any())
    assert terms == [False, False, True]
    assert (np.asarray(obs[:, K.F_EPISODE_PCT, 5, 5]) == 255).all()


ATTACK_MAP = ["#####", "#.@.#", "#.@.#", "#...#", "#####"]


_STEP_CACHE = {}


def _replay(rows, actions, params, inventories=None):
    """Run an ASCII map with agents processed in id order; one compiled step per map shape."""
    s = from_ascii(rows, params=params, inventories=inventories)
    n = s.agent_pos.shape[0]
    shape = (n, s.grid_obj.shape, s.conv_kind.shape[0])
    if shape not in _STEP_CACHE:
        e = ArenaEnv(num_agents=n, obs_kind="tokens", map_shape=shape[1], num_converters=shape[2])
        _STEP_CACHE[shape] = jax.jit(e.step_env_ordered)
    step = _STEP_CACHE[shape]
    out = []
    for a in actions:
        _, s, r, _, _, info = step(
            None, s, jnp.asarray(a, jnp.int32), params, jnp.arange(n, dtype=jnp.int32)
        )
        out.append((np.asarray(r), np.asarray(info["action_success"])))
    return s, out


def test_combat_off_attack_never_paid():
    inv = {0: {"laser": 50}, 1: {"ore_red": 3}}
    for combat, expect in ((True, True), (False, False)):
        params = make_params(combat=combat)
        s, out = _replay(ATTACK_MAP, [[2, 0], [7, 0]], params, inv)
        assert bool(out[1][1][0]) == expect
        assert (int(s.agent_frozen[1]) == 9) == expect
        assert int(s.agent_inv[0, K.LASER]) == (49 if expect else 50)


def test_steal_rewards_and_freeze():
    params = make_params()
    inv = {0: {"laser": 2}, 1: {"ore_red": 3, "battery_red": 1}}
    s, out = _replay(ATTACK_MAP, [[2, 0], [7, 2]] + [[0, 2]] * 10, params, inv)
    np.testing.assert_allclose(
        out[1][0], [0.6, -1.1], atol=1e-6
    )  # laser -0.5, ore +0.3, battery +0.8
    moves = [bool(o[1][1]) for o in out[1:]]
    assert moves == [False] * 10 + [True]  # frozen for 10 actions (incl. the attack step)
    assert list(np.asarray(s.agent_inv[0])[[K.ORE_RED, K.BATTERY_RED, K.LASER]]) == [3, 1, 1]


def test_step_env_is_step_env_ordered_with_its_permutation(env, reset, step):
    params = env.default_params
    _, s = reset(jax.random.key(8), params)
    actions = jax.random.randint(jax.random.key(9), (A,), 0, 16, dtype=jnp.int32)
    key = jax.random.key(10)
    order = jax.random.permutation(key, A).astype(jnp.int32)
    a = step(key, s, actions, params)
    b = jax.jit(env.step_env_ordered)(key, s, actions, params, order)
    chex.assert_trees_all_equal(a[:5], b[:5])



def test_reward_potential_sums_in_engine_order():
    """Phi is a float32 sum whose order shows in the last bit. The reference engine recorded
    (ep00_scripted, step 60, agent 15) ore_red 1, battery_red 1, heart 1 -> 1.9000001, the
    item-id order's sum; alphabetical order by item name would give 1.8999999."""
    from envs.arena.env import potential
    from envs.golden_data import golden_dir

    rec = np.load(golden_dir() / "arena" / "ep00_scripted.npz")
    inv = rec["agent_inventory"][60, 15]
    recorded = rec["agent_stat_reward"][60, 15]
    held = {K.RESOURCE_NAMES[i]: int(inv[i]) for i in np.nonzero(inv)[0]}
    assert held == {"ore_red": 1, "battery_red": 1, "heart": 1}
    assert recorded == np.float32(1.9000001)
    params = make_params()
    phi = np.asarray(jax.jit(potential)(jnp.asarray(inv), params))
    assert phi.dtype == np.float32 and phi == recorded, repr(phi)
    # the alphabetical sum differs in the last bit: the test would catch that order
    per_item = np.minimum(inv.astype(np.float32) * np.asarray(params.reward_weight),
                          np.asarray(params.reward_cap)).astype(np.float32)
    alphabetical = np.float32(0)
    for i in sorted(range(K.NUM_RESOURCES), key=lambda i: K.RESOURCE_NAMES[i]):
        alphabetical = np.float32(alphabetical + per_item[i])
    assert alphabetical != recorded
    # the same value through a step: an initial inventory is rewarded at step 1 (Phi(0) = 0)
    _, out = _replay(["#####", "#.@.#", "#####"], [[0]], params, {0: held})
    assert out[0][0].dtype == np.float32 and out[0][0][0] == recorded, repr(out[0][0])
