"""The human-levels evaluation (experiments/npp_human_levels.py): the evaluation program
replays the humans' own inputs to a win at exactly their frame count (and counts a win inside a
frame-skip block at its exact frame), and the CLI's report of a random-init policy is
well formed; its mistakes are one line on stderr, exit status 2."""

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.npp.env import NppEnv
from envs.npp.golden import npp_golden_dir
from experiments import npp_human_levels as H
from jaxrl_arena import config as config_lib
from jaxrl_arena.cli import main_guard
from jaxrl_arena.config import PolicyConfig
from jaxrl_arena.networks import policy_for_env

GOLD = npp_golden_dir()
INDEX = {r["file"]: r for r in json.loads((GOLD / "replays_index.json").read_text())["replays"]}
# The three shortest replays (21-22 frames, exit and switch only): one small compile each.
FILES = ("20251022_151422_train_very_simple_100010.replay",
         "20251022_152255_train_very_simple_100004.replay",
         "20251022_152405_train_very_simple_100025.replay")


@pytest.fixture(scope="module")
def replays():
    reps, skipped = H.read_human_replays([GOLD / "replays" / f for f in FILES],
                                         H.replay_index(GOLD / "replays"), report=lambda _: None)
    assert not skipped and [r.name for r in reps] == list(FILES)
    return reps


@pytest.fixture(scope="module")
def replayer(replays):
    """Frame skip 1 on the three maps: one compilation for every test's action lists."""
    return H.HumanReplayer(NppEnv(obs_kind="state"), replays, length=32)


def test_human_inputs_win_at_the_human_frame_count(replays, replayer):
    for r in replays:
        assert r.human_source == "index" and r.human_frames == INDEX[r.name]["outcome_frame"]
        assert r.human_frames == len(r.actions)  # the recorded win is the last input
    out = replayer([r.actions for r in replays])
    assert out["won"].all() and out["ended"].all() and not out["died"].any()
    np.testing.assert_array_equal(out["frames"], [r.human_frames for r in replays])


class TablePolicy:
    """Stands in for ``networks.Policy``: its carry counts steps and its logits pick the
    table's (its params') action at the first frame of the step's block of ``frame_skip``."""

    is_recurrent = True

    def __init__(self, obs_shape, frame_skip):
        self.obs_shape, self.frame_skip = tuple(obs_shape), frame_skip

    def initial_carry(self, n):
        return jnp.zeros(n, jnp.int32)

    def apply(self, table, obs, carry, reset):
        t = jnp.where(reset, 0, carry)
        col = t * self.frame_skip
        a = jnp.where(col < table.shape[1], table[jnp.arange(obs.shape[0]),
                                                 jnp.minimum(col, table.shape[1] - 1)], 0)
        return t + 1, jax.nn.one_hot(a, 6) * 100.0, jnp.zeros(obs.shape[0])


def test_a_win_inside_a_frame_skip_block_counts_its_exact_frame(replays, replayer):
    """The policy evaluation (argmax, frame skip 4) of a policy that holds the human's input of
    each block start: its frames equal a frame-by-frame replay of the same held inputs (exact
    inside a block, not the steps times 4)."""
    env = NppEnv(obs_kind="state")
    table = np.zeros((len(replays), 32), np.int32)
    for i, r in enumerate(replays):
        table[i, :len(r.actions)] = r.actions
    agent = H.EvalPolicy(TablePolicy(env.observation_space().shape, env.frame_skip),
                         jnp.asarray(table), env, "human inputs held per block")
    rep = H.evaluate(agent, [r.path for r in replays], episodes=1, max_frames=200,
                     deterministic=True, index=H.replay_index(GOLD / "replays"),
                     report=lambda _: None)
    assert rep["frame_skip"] == 4 and [m["file"] for m in rep["maps"]] == list(FILES)
    want = replayer([np.repeat(r.actions[::4], 4) for r in replays])
    assert want["won"].all() and all(m["episode_won"] == [True] for m in rep["maps"])
    got = np.array([m["episode_frames"][0] for m in rep["maps"]])
    np.testing.assert_array_equal(got, want["frames"])
    assert (got % 4 != 0).any()  # some win inside a block
    for m, r in zip(rep["maps"], replays):
        assert m["median_frames_to_win"] == m["episode_frames"][0]
        assert m["ratio"] == pytest.approx(m["episode_frames"][0] / r.human_frames)


def _agent():
    env = NppEnv(obs_kind="state")
    policy = policy_for_env(PolicyConfig(kind="mlp", hidden_sizes=(16,)), env)
    obs = jnp.zeros((1, *env.observation_space().shape), jnp.float32)
    return H.EvalPolicy(policy, policy.init(jax.random.PRNGKey(1), obs), env, "random-init MLP")


def test_cli_report_of_a_random_policy(tmp_path, capsys):
    folder = tmp_path / "replays"
    folder.mkdir()
    for f in FILES:
        shutil.copy(GOLD / "replays" / f, folder / f)
    shutil.copy(GOLD / "replays_index.json", folder / "replays_index.json")
    out, md = tmp_path / "r.json", tmp_path / "r.md"
    argv = [str(tmp_path / "run"), "--replays", str(folder), "--episodes", "4",
            "--max-frames", "60", "--out", str(out), "--markdown", str(md)]
    assert H.main(argv, load=lambda _: _agent()) == 0
    printed = capsys.readouterr().out
    rep = json.loads(out.read_text())
    assert md.read_text() == printed and "| map | category | human frames |" in printed
    assert rep["episodes_per_map"] == 4 and rep["max_frames"] == 60 and rep["frame_skip"] == 4
    assert rep["env"]["entity_types"] == [3, 4] and rep["env"]["max_entities"] == 2
    assert [m["file"] for m in rep["maps"]] == list(FILES) and not rep["skipped"]
    for m in rep["maps"]:
        assert m["category"] == "very_simple"
        assert m["human_frames"] == INDEX[m["file"]]["outcome_frame"]
        assert 0 <= m["success_rate"] <= 1 and m["wins"] == sum(m["episode_won"])
        assert len(m["episode_frames"]) == 4 and all(0 < f <= 60 for f in m["episode_frames"])
        assert m["wins"] + m["deaths"] + m["timeouts"] == 4
        # an episode neither won nor lost is truncated at the frame cap, exactly
        assert all(f == 60 for f, w, d in zip(m["episode_frames"], m["episode_won"],
                                              m["episode_died"]) if not (w or d))
        if m["wins"]:
            assert m["ratio"] == pytest.approx(m["median_frames_to_win"] / m["human_frames"])
        else:
            assert m["ratio"] is None and m["median_frames_to_win"] is None
    s = rep["overall"]
    assert s["maps"] == 3 and s["episodes"] == 12 and 0 <= s["success_rate"] <= 1
    assert list(rep["categories"]) == ["very_simple"]
    assert "| **overall** | 3 | 12 |" in printed


def test_categories_and_unseen_types():
    assert H.category("20251022_142030_train_complex_100007.replay") == "complex"
    assert H.category("20251022_145330_train_mine_heavy_100066.replay") == "mine_heavy"
    assert H.category("x_006 both flavours of ramp jumping (and the control).replay") == "other"
    assert H.unseen_types("state", [1, 3, 4, 14, 2]) == [2, 14]
    assert H.unseen_types("grid", [5, 6, 3, 4]) == []


def _fails(argv, capsys, match):
    with pytest.raises(SystemExit) as exc:
        main_guard(lambda: H.main(argv))
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and match in err, err


def test_mistakes_are_one_line_exit_2(tmp_path, capsys):
    replays = str(GOLD / "replays")
    _fails([str(tmp_path / "missing"), "--replays", replays], capsys, "not a directory")
    (tmp_path / "empty").mkdir()
    _fails([str(tmp_path), "--replays", str(tmp_path / "empty")], capsys, "holds no .replay")
    _fails([str(tmp_path), "--replays", replays], capsys, "no config.json")
    for name, recipe in (("cartpole", "cartpole"), ("npp", "npp_simplest")):
        run = tmp_path / name
        run.mkdir()
        cfg = config_lib.get_recipe(recipe)
        (run / "config.json").write_text(json.dumps(config_lib.to_dict(cfg)))
        _fails([str(run), "--replays", replays], capsys,
               "not an N++ run" if name == "cartpole" else "no checkpoint")


def test_a_policy_artefact_with_its_runs_config(tmp_path, capsys):
    from jaxrl_arena.policy_artifact import save_policy
    from jaxrl_arena.registry import make

    cfg = config_lib.apply_overrides(config_lib.get_recipe("npp_simplest"),
                                     ["policy.hidden_sizes=8"])
    env = make(cfg)
    policy = policy_for_env(cfg.policy, env)
    obs = jnp.zeros((1, *env.observation_space().shape), jnp.float32)
    params = policy.init(jax.random.PRNGKey(3), obs)
    art = save_policy(tmp_path / "policy", cfg.policy, params, env)
    (tmp_path / "config.json").write_text(json.dumps(config_lib.to_dict(cfg)))
    agent = H.load_artefact(art, tmp_path / "config.json")
    assert agent.env.obs_kind == "state_local" and agent.env.frame_skip == 4
    for a, b in zip(jax.tree.leaves(agent.params), jax.tree.leaves(params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    grid = config_lib.apply_overrides(cfg, ["env.obs_kind=grid"])
    (tmp_path / "grid.json").write_text(json.dumps(config_lib.to_dict(grid)))
    replays = str(GOLD / "replays")
    _fails([str(art), "--replays", replays, "--config", str(tmp_path / "grid.json")], capsys,
           "the policy reads observations")
    _fails([str(art), "--replays", replays], capsys, "needs --config")
    _fails([str(tmp_path), "--replays", replays, "--config", str(tmp_path / "config.json")],
           capsys, "applies to a policy artefact only")
