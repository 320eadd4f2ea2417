"""Held-out evaluation: exact numbers on the countdown env, the cap, the host loop's rows, and
the N++ held-out stage sets (``eval/success_rate/<stage>``: tests/test_train_npp.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from toy_envs import CountdownEnv

from jaxrl_arena import config as C
from jaxrl_arena.evaluation import Evaluator
from jaxrl_arena.logging import read_metrics
from jaxrl_arena.loop import train
from jaxrl_arena.networks import make_policy

TOY = ["ppo.num_envs=8", "ppo.num_steps=4", "ppo.num_minibatches=2", "ppo.update_epochs=2",
       "policy.hidden_sizes=8,8", "run.updates_per_chunk=2", "logging.progress=false"]


def _policy_and_params(env, runs=1):
    policy = make_policy(C.PolicyConfig(kind="mlp", hidden_sizes=(8,)), (2,), 3)
    params = policy.init(jax.random.PRNGKey(0), jnp.zeros((1, 2), jnp.float32))
    return policy, jax.tree.map(lambda x: jnp.stack([x] * runs), params)


def test_countdown_episodes_give_their_exact_returns_lengths_and_stats():
    env = CountdownEnv(num_agents=2)
    policy, params = _policy_and_params(env, runs=2)
    out = Evaluator(env, policy, episodes=3, max_steps=50, seed=0)(params)
    expect = {"short": (3.0, 3.0), "long": (10.0, 5.0)}  # (return per agent, length)
    for task, (ret, length) in expect.items():
        np.testing.assert_allclose(out[f"eval/reward/{task}"], [ret, ret])
        np.testing.assert_allclose(out[f"eval/episode_length/{task}"], [length, length])
        np.testing.assert_allclose(out[f"eval/steps/{task}"], [length, length])  # stat at the end
        np.testing.assert_allclose(out[f"eval/finished/{task}"], [1.0, 1.0])


def test_episodes_cut_by_max_steps_are_scored_as_they_stand():
    env = CountdownEnv(num_agents=2)
    policy, params = _policy_and_params(env)
    out = Evaluator(env, policy, episodes=2, max_steps=4, seed=0)(params)
    assert out["eval/finished/short"][0] == 1.0 and out["eval/finished/long"][0] == 0.0
    assert out["eval/reward/long"][0] == pytest.approx(8.0)  # 4 steps × 2
    assert out["eval/steps/long"][0] == 4.0 and out["eval/steps/short"][0] == 3.0


def test_bad_episode_count_is_refused():
    env = CountdownEnv()
    policy, _ = _policy_and_params(env)
    with pytest.raises(ValueError, match="eval.episodes"):
        Evaluator(env, policy, episodes=0, max_steps=5, seed=0)
    with pytest.raises(C.ConfigError, match="eval.every_updates=-1"):
        C.validate(C.apply_overrides(C.Config(), ["eval.every_updates=-1"]))


def test_host_loop_logs_evaluations_at_chunk_ends_and_at_the_end(tmp_path):
    cfg = C.apply_overrides(C.Config(), TOY + [
        f"run.dir={tmp_path}", "run.total_timesteps=640", "run.num_seeds=2",  # 10 updates
        "eval.every_updates=4", "eval.episodes=2", "eval.max_steps=10"])
    result = train(cfg, env=CountdownEnv(num_agents=2), experiment="toy")
    rows = read_metrics(tmp_path / "metrics.jsonl")
    evaluated = [r["update"] for r in rows if "eval/reward/long" in r]
    assert evaluated == [4, 8, 10]  # chunks of 2: crossing 4, 8, and the last update
    for r in rows:
        if "eval/reward/long" in r:
            assert r["eval/reward/long"] == pytest.approx(10.0)
            assert r["runs/seed=1/eval/reward/short"] == pytest.approx(3.0)
    assert result.last_metrics["eval/finished/long"] == 1.0


def test_npp_heldout_stage_sets_are_fixed_levels_played_by_a_fixed_level_env():
    from envs.npp.env import NppEnv

    env = NppEnv(obs_kind="state", level_source="generator")
    env.named_tasks = lambda: {s: NppEnv.named_tasks(env)[s] for s in ("simplest", "simpler")}
    eval_env, sets = env.eval_sets(2)
    assert eval_env.level_source == "fixed" and env.level_source == "generator"
    assert list(sets) == ["simplest", "simpler"]
    again = env.eval_sets(2)[1]["simplest"]
    np.testing.assert_array_equal(again.level.tiles, sets["simplest"].level.tiles)  # fixed
    assert not np.array_equal(sets["simplest"].level.tiles[0], sets["simplest"].level.tiles[1])
    assert not bool(np.any(sets["simplest"].use_generator))
