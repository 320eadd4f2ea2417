"""The compiled update on toy envs whose numbers are known: episode crediting, episode stats
only over finished episodes, truncation bootstrap from the final observation, one trace per
chunk, seeds × A/B variants in one jit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_arena import config as C
from jaxrl_arena.rollout import Rollout
from jaxrl_arena.train import make_train
from toy_envs import CountdownEnv

BASE = [
    "ppo.num_envs=8", "ppo.num_steps=4", "ppo.num_minibatches=2", "ppo.update_epochs=1",
    "policy.hidden_sizes=8,8", "run.total_timesteps=1_000_000", "run.updates_per_chunk=6",
]


def toy_program(*overrides, env=None, devices=None, ab=None):
    cfg = C.apply_overrides(C.Config(), BASE + list(overrides))
    return make_train(cfg, env=env or CountdownEnv(num_agents=2), devices=devices, ab=ab)


@pytest.mark.parametrize("strategy", ["optimistic", "every_step", "pooled"])
def test_outcomes_are_credited_to_the_task_they_were_played_under(strategy):
    prog = toy_program(f"env.reset_strategy={strategy}", "env.reset_pool=2", "env.reset_refresh=1")
    state = prog.init()
    state, m = prog.train_chunk(state)
    m = jax.device_get(m)
    short, long = m["task_reward/rewards.mean"][0, :, 0], m["task_reward/rewards.mean"][0, :, 1]
    # Returns per agent: short task 3 steps × 1.0, long task 5 steps × 2.0. Any episode
    # credited to the wrong task would pull these means off their exact values.
    assert np.all(np.isnan(short) | (short == 3.0)) and np.any(short == 3.0)
    assert np.all(np.isnan(long) | (long == 10.0)) and np.any(long == 10.0)
    # Episode stats are means over finished episodes only, consistent with the returns:
    # with a fraction f of long episodes, steps = 3 + 2f and reward = 3 + 7f.
    steps, reward = m["env_agent/steps"][0], m["overview/reward"][0]
    seen = ~np.isnan(steps)
    f = (steps[seen] - 3.0) / 2.0
    np.testing.assert_allclose(reward[seen], 3.0 + 7.0 * f, rtol=1e-5)
    # The first update (4 steps) finishes only short episodes (length 3); none are placeholders.
    assert steps[0] == 3.0
    assert np.all(m["overview/episodes"][0] >= 0)
    if strategy == "pooled":  # per device: 1 of 2 entries regenerated per step, 6 × 4 steps
        entries, write, take = state.rollout.pool
        np.testing.assert_array_equal(write, np.full((1, 4), 24 % 2))
        assert entries[3].shape == (1, 8)  # task ids of 2 entries on each of 4 devices


def test_no_finished_episode_means_no_value_not_zero():
    prog = toy_program("ppo.num_steps=2", "run.updates_per_chunk=2")
    _, m = prog.train_chunk(prog.init())
    m = jax.device_get(m)
    # Steps 1-2 end no episode (the shortest is 3 steps): NaN, which the host drops.
    assert m["overview/episodes"][0, 0] == 0
    assert np.isnan(m["env_agent/steps"][0, 0]) and np.isnan(m["overview/reward"][0, 0])
    assert m["env_agent/steps"][0, 1] == 3.0


@pytest.mark.parametrize("mode,capacity", [("chunked", "auto"), ("chunked", 1), ("chunked", 3),
                                           ("dense", "auto"), ("cond", "auto")])
def test_truncation_bootstraps_from_the_final_observation(mode, capacity):
    """V(final observation) where truncated, 0 elsewhere, in every mode: per step over every
    env (dense, cond) or over the truncated envs ``capacity`` at a time (chunked; auto = the
    batch here)."""
    env = CountdownEnv(num_agents=2, truncate=True)
    prog = toy_program(env=env)
    state = prog.init()
    single = jax.tree.map(lambda x: x[0], state)
    rollout = Rollout(env, prog.policy, prog.curriculum, num_envs=8, num_steps=4, horizon=4,
                      pool_size=8, truncation_capacity=capacity, truncation_bootstrap=mode)
    assert rollout.truncation_bootstrap == mode
    _, tr, _, _, _ = jax.jit(rollout.run)(single.params, single.curriculum, single.rollout,
                                          jax.random.PRNGKey(0))
    assert bool(tr.truncated.any()) and not bool(tr.terminated.any())
    # The final observation of a finished episode is [t/length = 1, reward]; the reset
    # observation (what the next row stores) is [0, reward'].
    rows = np.argwhere(np.asarray(tr.truncated[:, :, 0]))
    for t, n in rows:
        reward = float(tr.obs[t, n, 0, 1])
        final_obs = jnp.tile(jnp.array([[1.0, reward]]), (2, 1))
        _, _, v = prog.policy.apply(single.params, final_obs, (), None)
        np.testing.assert_allclose(tr.final_value[t, n], v, rtol=1e-6)
    assert float(jnp.abs(tr.final_value).sum()) > 0
    assert np.all(np.asarray(tr.final_value)[~np.asarray(tr.truncated)] == 0)
    if capacity != "auto":   # steps where more envs than the capacity truncated occurred
        assert int(np.asarray(tr.truncated[:, :, 0]).sum(axis=1).max()) > capacity


def test_chunk_compiles_once_and_state_stays_finite():
    import chex

    prog = toy_program()
    state = prog.init()
    # chex raises if the chunk is traced more than once across calls.
    chunk = jax.jit(prog.chunk_fn(6, wrap=lambda f: chex.assert_max_traces(f, n=1)),
                    donate_argnums=0)
    for _ in range(3):
        state, m = chunk(state)
    assert int(state.update[0]) == 18
    for name in ("loss/policy_loss", "loss/value_loss", "loss/entropy", "loss/approx_kl",
                 "loss/clipfrac", "train/learning_rate", "train/grad_norm"):
        assert m[name].shape == (1, 6) and np.all(np.isfinite(np.asarray(m[name]))), name
    assert np.all(np.asarray(m["train/skipped_updates"]) == 0)
    jax.tree.map(lambda x: np.testing.assert_array_equal(np.isfinite(x), True),
                 jax.device_get(state.params))


def test_seeds_and_ab_variants_share_one_jit():
    cfg = C.apply_overrides(C.Config(), BASE + ["run.num_seeds=2", "run.updates_per_chunk=2"])
    prog = make_train(cfg, env=CountdownEnv(num_agents=2), ab=["ppo.lr=1e-2,1e-4"])
    assert [r.label for r in prog.runs] == ["ppo.lr=0.01,seed=0", "ppo.lr=0.01,seed=1",
                                            "ppo.lr=0.0001,seed=0", "ppo.lr=0.0001,seed=1"]
    state, m = prog.train_chunk(prog.init())
    m = jax.device_get(m)
    assert m["loss/entropy"].shape == (4, 2)
    np.testing.assert_allclose(m["train/learning_rate"][:, 0], [1e-2, 1e-2, 1e-4, 1e-4], rtol=1e-6)
    # Same seed, same first rollout (lr only acts after it); different seeds differ.
    ent = m["loss/entropy"][:, 0]
    assert ent[0] != ent[1]
    p = jax.device_get(state.params)
    first = lambda r: np.concatenate([np.ravel(x[r]) for x in jax.tree.leaves(p)])
    assert not np.array_equal(first(0), first(2))  # lr made them diverge
    with pytest.raises(C.ConfigError, match="changes the compiled program"):
        make_train(cfg, env=CountdownEnv(), ab=["ppo.num_steps=2,4"])


def test_sharded_training_matches_single_device():
    # every_step resets draw one key per env from its global index: device-count invariant.
    cfg = C.apply_overrides(C.Config(), BASE + ["run.updates_per_chunk=3", "ppo.num_minibatches=1",
                                                "env.reset_strategy=every_step"])
    env = CountdownEnv(num_agents=2)
    results = []
    for n in (1, 4):
        prog = make_train(cfg, env=env, devices=jax.devices()[:n])
        state, m = prog.train_chunk(prog.init(jax.random.PRNGKey(0)))
        results.append((jax.device_get(state.params), jax.device_get(m)))
    (p1, m1), (p4, m4) = results
    np.testing.assert_allclose(m1["overview/reward"], m4["overview/reward"], rtol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), p1, p4)


def test_updates_round_up_to_whole_chunks():
    """One compiled program per run: a short last chunk would be a second compile."""
    from jaxrl_arena.train import plan_chunks

    assert plan_chunks(15625, 2) == (15626, 2)
    assert plan_chunks(10, 4) == (12, 4)
    assert plan_chunks(3, 10) == (3, 3)
    assert plan_chunks(20, 5) == (20, 5)
    prog = toy_program("run.total_timesteps=640", "run.updates_per_chunk=4")  # 10 updates asked
    assert (prog.num_updates, prog.chunk_len) == (12, 4)


def test_auto_reset_strategy_follows_the_envs_declared_reset_cost():
    """``env.reset_strategy=auto`` resolves once, into the program's config: every_step for an
    env that declares a cheap reset (gymnax), optimistic otherwise."""
    cheap = toy_program(env=type("Cheap", (CountdownEnv,), {"cheap_reset": True})(num_agents=2))
    assert cheap.config.env.reset_strategy == "every_step"
    assert toy_program().config.env.reset_strategy == "optimistic"
    assert toy_program("env.reset_strategy=pooled").config.env.reset_strategy == "pooled"


def test_update_step_is_the_compiled_update():
    """``train.update_step`` (module level) run under a plain ``vmap`` over the env axis gives
    the compiled chunk's update: same state, same metrics."""
    from jaxrl_arena.train import AXIS, update_step

    prog = toy_program("run.updates_per_chunk=1", devices=jax.devices()[:1])
    state = prog.init()   # leading axis: the one run, which the vmap also names the env axis
    one = jax.vmap(lambda ts: update_step(ts, rollout=prog.rollout, learner=prog.learner,
                                          curriculum=prog.curriculum), axis_name=AXIS)
    ours, metrics = jax.jit(one)(state)
    ref, ref_metrics = prog.chunk_for(1)(prog.init())
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                 ours.params, ref.params)
    assert int(ours.update[0]) == 1
    for name, value in metrics.items():
        np.testing.assert_allclose(value, np.asarray(ref_metrics[name])[:, 0], rtol=1e-5,
                                   atol=1e-6, err_msg=name)
