"""CPU smoke test: the arena recipe (24 agents, LSTM "fast" policy over the dense box) trains
a few updates with a handful of envs, and its metrics carry the spec's stat names.

Section marks (§) cite docs/specs/arena.md.
"""

import numpy as np

from jaxrl_arena import config as C
from jaxrl_arena.logging import read_metrics
from jaxrl_arena.loop import train

SMALL = ["ppo.num_envs=4", "ppo.num_steps=16", "ppo.bptt_horizon=8", "ppo.minibatch_size=0",
         "ppo.num_minibatches=4", "run.updates_per_chunk=2", "logging.progress=false",
         "env.max_steps=20", "arena.desync_episodes=false"]


def test_arena_recipe_trains_a_few_updates(tmp_path):
    cfg = C.apply_overrides(C.get_recipe("arena_basic_easy_shaped"),
                            SMALL + ["run.total_timesteps=6144", f"run.dir={tmp_path}",
                                     "eval.episodes=1"])
    result = train(cfg, experiment="arena", recipe="arena_basic_easy_shaped")
    assert result.updates == 4 and result.agent_steps == 6144
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert len(rows) == 4
    # The held-out suites of arena.md §12.1, evaluated at the end (every 10 updates otherwise).
    for suite in ("arena/basic", "arena/combat"):
        assert rows[-1][f"eval/heart.get/{suite}"] >= 0.0
        assert rows[-1][f"eval/episode_length/{suite}"] == 20.0
    assert not any(k.startswith("eval/") for k in rows[0])
    # 20-step episodes end in the 2nd and 3rd/4th updates: per-agent episode stats appear.
    finished = [r for r in rows if r.get("env_agent/action.move.success") is not None]
    assert finished, "no env_agent stats logged"
    for name in ("env_agent/heart.get", "env_agent/ore_red.get", "env_agent/action.attack.success",
                 "env_agent/status.frozen.ticks", "overview/reward", "overview/episode_length"):
        assert name in finished[0], name
    assert all(r["overview/episode_length"] == 20 for r in finished)
    for r in rows:
        assert np.isfinite(r["loss/policy_loss"]) and np.isfinite(r["loss/value_loss"])


def test_render_episode_uses_the_runs_policy(tmp_path):
    import importlib.util

    import imageio.v2 as imageio

    from conftest import REPO

    spec = importlib.util.spec_from_file_location("arena_entry", REPO / "experiments" / "arena.py")
    entry = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(entry)
    cfg = C.apply_overrides(C.get_recipe("arena_basic_easy_shaped"),
                            SMALL + ["run.total_timesteps=1536", f"run.dir={tmp_path / 'run'}",
                                     "eval.every_updates=0"])
    # No checkpoint yet: a random policy, said so.
    path, source = entry.render_run_episode(cfg, "arena_basic_easy_shaped", str(tmp_path / "a.gif"), 4)
    assert "random" in source
    train(cfg, experiment="arena", recipe="arena_basic_easy_shaped")
    path, source = entry.render_run_episode(cfg, "arena_basic_easy_shaped", str(tmp_path / "b.gif"), 4)
    assert "at update 1" in source, source
    frames = imageio.mimread(path)
    assert len(frames) == 5 and frames[0].ndim == 3
