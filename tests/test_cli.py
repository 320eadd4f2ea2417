"""The shared command line (jaxrl_arena/cli.py): --help lists every config key with its type,
default and meaning, --list-recipes, --config FILE.json (overrides on top, one-line errors);
and ``python -m jaxrl_arena.play RUN`` on a tiny arena run."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO
from PIL import Image

from jaxrl_arena import cli
from jaxrl_arena import config as C
from jaxrl_arena.config import ConfigError


def _entry(script, *args):
    return subprocess.run([sys.executable, str(REPO / "experiments" / script), *args],
                          capture_output=True, text=True, timeout=300, cwd=REPO, check=False)


def _one_line_error(proc, expected):
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], proc.stderr


# ----------------------------------------------------------------------------- --help
def test_help_lists_every_config_key_with_type_default_and_meaning():
    proc = _entry("arena.py", "--help")
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line for line in proc.stdout.splitlines()
            if line.startswith("  ") and "." in line.split()[0]}
    missing = [key for key in C.all_keys() if key not in rows]
    assert not missing, f"keys missing from --help: {missing}"
    # type = schema default [the entry point's recipe where it differs]  meaning
    assert "ppo.num_steps " in rows["ppo.num_steps"]
    assert "int = 128 [recipe: 64]  rollout length T" in rows["ppo.num_steps"]
    assert "int|auto = auto  resets computed per step" in rows["env.reset_pool"]
    assert "int = 0 [recipe: 6]  0 keeps the env's default" in rows["env.num_agents"]
    assert "mlp|cnn|lstm = mlp  the network" in rows["policy.kind"]
    assert "tuple[str] = ()" in rows["run.init_from_allow"]
    # A comment block above a field gives its first sentence ("e.g." does not end one).
    assert rows["run.compile_cache"].endswith(
        "JAX's persistent compilation cache: \"auto\" = <run dirs' parent>/.jax_cache, \"off\", "
        "or a path")
    assert rows["run.init_from"].endswith('(e.g. "params/critic_out/*").')
    assert "An N++ step holds" not in rows["env.max_steps"]


def test_key_docs_read_the_schema_comments():
    docs = {d.key: d for d in cli.key_docs()}
    assert list(docs) == C.all_keys()
    assert docs["eval.every_updates"].meaning.startswith("evaluate every n-th update")
    assert docs["env.truncation_bootstrap"].type == "auto|dense|chunked|cond"
    assert docs["curriculum.ema_timescale"].type == "float|none"
    assert docs["curriculum.ema_timescale"].default == "none"


# ----------------------------------------------------------------------------- recipes
def test_list_recipes_prints_each_recipe_with_its_env_and_description():
    proc = _entry("npp.py", "--list-recipes")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == sorted(C.RECIPES)
    npp = next(line for line in lines if line.startswith("npp_simplest"))
    assert npp.split()[1:3] == ["(default)", "npp"]
    assert "N++ on generated `simplest` levels" in npp
    cartpole = next(line for line in lines if line.startswith("cartpole "))
    assert "CartPole-v1" in cartpole and "PureJaxRL's CartPole settings" in cartpole


# ----------------------------------------------------------------------------- --config
def test_config_file_loads_and_overrides_apply_on_top(tmp_path):
    cfg = C.apply_overrides(C.get_recipe("cartpole"), ["ppo.lr=0.5", "policy.hidden_sizes=8,8"])
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(C.to_dict(cfg)))
    proc = _entry("gymnax_env.py", "--config", str(path), "--config-override", "run.seed=7",
                  "--print-config")
    assert proc.returncode == 0, proc.stderr
    printed = C.from_dict(json.loads(proc.stdout))
    assert printed == C.replace(cfg, "run.seed", 7)


def test_config_file_names_runs_after_its_recipe(tmp_path):
    p = cli.parser("test", default_recipe="cartpole")
    saved = {**C.to_dict(C.get_recipe("arena_ff")), "_resolved": {"recipe": "arena_ff"}}
    (tmp_path / "config.json").write_text(json.dumps(saved))
    args = p.parse_args(["--config", str(tmp_path / "config.json")])
    assert cli.build_config(args) == C.get_recipe("arena_ff") and args.recipe == "arena_ff"
    (tmp_path / "plain.json").write_text(json.dumps({"ppo": {"lr": 1, "num_envs": 8.0}}))
    args = p.parse_args(["--config", str(tmp_path / "plain.json")])
    cfg = cli.build_config(args)
    assert args.recipe == "plain" and cfg.env == C.Config().env  # absent keys: schema defaults
    assert cfg.ppo.lr == 1.0 and isinstance(cfg.ppo.lr, float) and cfg.ppo.num_envs == 8
    args = p.parse_args([])
    assert cli.build_config(args) == C.get_recipe("cartpole") and args.recipe == "cartpole"


@pytest.mark.parametrize("content, expected", [
    ('{"ppo": {"lrr": 1}}', "unknown config key ppo.lrr; keys of ppo: num_envs"),
    ('{"pop": {}}', "unknown config key pop; top-level keys: run"),
    ('{"ppo": {"num_steps": "many"}}', "bad value 'many' for ppo.num_steps: expected an int"),
    ('{"policy": {"kind": "transformer"}}', "bad value 'transformer' for policy.kind"),
    ('{"ppo": 3}', "section 'ppo' must be an object of keys, got int"),
    ('{"ppo": {', "not JSON (Expecting property name"),
    ('[1, 2]', "expected a JSON object of config sections, got list"),
])
def test_config_file_mistakes_are_one_line_errors(tmp_path, content, expected):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ConfigError) as err:
        cli.config_from_file(str(path))
    assert str(err.value).startswith(f"--config {path}: ") and expected in str(err.value)
    assert "\n" not in str(err.value)


def test_config_file_errors_exit_2_in_one_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"ppo": {"lrr": 1}}')
    _one_line_error(_entry("gymnax_env.py", "--config", str(path)),
                    f"error: --config {path}: unknown config key ppo.lrr")
    _one_line_error(_entry("gymnax_env.py", "--config", str(tmp_path / "none.json")),
                    "cannot read it (No such file or directory)")
    path.write_text("{}")
    _one_line_error(_entry("gymnax_env.py", "--config", str(path), "--recipe", "cartpole"),
                    "error: --config and --recipe both give the starting config; pass one")


# ----------------------------------------------------------------------------- play
def _play(*args):
    return subprocess.run([sys.executable, "-m", "jaxrl_arena.play", *map(str, args)],
                          capture_output=True, text=True, timeout=300, cwd=REPO, check=False)


def test_play_refuses_what_it_cannot_play_in_one_line(tmp_path):
    _one_line_error(_play(tmp_path / "nope"), "is not a directory")
    _one_line_error(_play(tmp_path), "has no config.json: not a run directory")
    (tmp_path / "config.json").write_text(json.dumps(C.to_dict(C.get_recipe("cartpole"))))
    _one_line_error(_play(tmp_path), "is a run of env 'CartPole-v1', which has no renderer; "
                                     "envs with one: arena, npp")
    arena = tmp_path / "arena"
    arena.mkdir()
    (arena / "config.json").write_text(json.dumps(C.to_dict(C.get_recipe("arena_ff"))))
    _one_line_error(_play(arena), "holds no checkpoint yet")
    _one_line_error(_play(arena, "--out", tmp_path / "x.avi"), "unknown format .avi")


def test_gif_to_mp4_writes_a_video_or_says_what_is_missing(tmp_path):
    from jaxrl_arena.play import gif_to_mp4

    frames = [np.full((9, 12, 3), v, np.uint8) for v in (0, 128, 255)]
    Image.fromarray(frames[0]).save(tmp_path / "a.gif", save_all=True,
                                    append_images=[Image.fromarray(f) for f in frames[1:]])
    try:
        gif_to_mp4(tmp_path / "a.gif", tmp_path / "a.mp4")
    except ConfigError as err:
        assert "writing MP4 needs imageio's ffmpeg plugin" in str(err) and "\n" not in str(err)
    else:
        assert (tmp_path / "a.mp4").stat().st_size > 0


# The arena settings of tests/test_train_arena.py's render test: the same compiled programs
# (training chunk, restore, 4-step render), so on a warm compilation cache this test is short.
ARENA_SMALL = ["ppo.num_envs=4", "ppo.num_steps=16", "ppo.bptt_horizon=8",
               "ppo.minibatch_size=0", "ppo.num_minibatches=4", "run.updates_per_chunk=2",
               "logging.progress=false", "env.max_steps=20", "arena.desync_episodes=false",
               "run.total_timesteps=1536", "eval.every_updates=0"]


def test_play_writes_an_episode_of_the_runs_latest_policy(tmp_path, capsys):
    from jaxrl_arena.loop import train
    from jaxrl_arena.play import main

    run = tmp_path / "run"
    cfg = C.apply_overrides(C.get_recipe("arena_basic_easy_shaped"),
                            ARENA_SMALL + [f"run.dir={run}"])
    train(cfg, experiment="arena", recipe="arena_basic_easy_shaped")
    capsys.readouterr()
    assert main([str(run), "--steps", "4"]) == 0
    out = run / "play.gif"  # the default --out
    assert capsys.readouterr().out.strip() == f"wrote {out} (policy of {run} at update 1)"
    with Image.open(out) as gif:
        assert gif.n_frames == 5  # the reset state, then one frame per step
