"""experiments/npp.py --render-episode: a GIF of one episode on a level of the config's stage,
played by a uniform random policy (no checkpoint) or by the run's trained policy."""

import importlib.util

import numpy as np
import pytest
from conftest import REPO
from PIL import Image

from jaxrl_arena import config as C
from jaxrl_arena.config import ConfigError
from jaxrl_arena.loop import train
from jaxrl_arena.policy_io import load_run_policy

# As tests/test_train_npp.py (the same compiled training program: a persistent-cache hit),
# without the held-out evaluation.
SMALL = ["ppo.num_envs=4", "ppo.num_steps=8", "ppo.num_minibatches=2", "ppo.update_epochs=1",
         "policy.hidden_sizes=32,32", "run.updates_per_chunk=2", "logging.progress=false",
         "npp.max_frames=40", "eval.every_updates=0", "logging.tensorboard=false"]
RECIPE = "npp_curriculum"


@pytest.fixture(scope="module")
def entry():
    spec = importlib.util.spec_from_file_location("npp_entry", REPO / "experiments" / "npp.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _gif_frames(path):
    with Image.open(path) as im:
        frames = []
        for i in range(im.n_frames):
            im.seek(i)
            frames.append(np.asarray(im.convert("RGB")))
    return frames


def test_render_episode_cli_random_policy(tmp_path, entry, monkeypatch, capsys):
    out = tmp_path / "random.gif"
    monkeypatch.setattr("sys.argv", [
        "npp.py", "--recipe", RECIPE, "--render-episode", str(out), "--render-steps", "6",
        "--config-override", *SMALL, f"run.dir={tmp_path / 'run'}"])
    assert entry.main() == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith(f"wrote {out} (uniform random policy: no checkpoint in "), line
    assert not (tmp_path / "run").exists()  # looking for a checkpoint creates nothing
    frames = _gif_frames(out)
    assert len(frames) > 1 and frames[0].shape == (300, 528, 3)
    # the caption (white text on black) is drawn on the last frame only
    assert (frames[-1][:12, :40] == 0).any() and not (frames[0][:12, :40] == 0).any()


# ~145 s on 2 cold CPU cores (tracing the level generator for training, restore and render);
# the shared checkpoint loader is also covered by tests/test_train_arena.py in the default run.
@pytest.mark.slow
def test_render_episode_uses_the_runs_policy(tmp_path, entry):
    cfg = C.apply_overrides(C.get_recipe(RECIPE),
                            SMALL + ["run.total_timesteps=128", f"run.dir={tmp_path / 'run'}"])
    train(cfg, experiment="npp", recipe=RECIPE)
    # 12 steps > the 10-step (40-frame) episode limit: the episode ends inside the GIF.
    path, source = entry.render_run_episode(cfg, RECIPE, str(tmp_path / "policy.gif"), 12)
    assert f"policy of {tmp_path / 'run'} at update 4; " in source, source
    assert any(f"; {how} at step" in source for how in ("won", "died", "timed out")), source
    frames = _gif_frames(path)
    assert 1 < len(frames) <= 11 and frames[0].shape == (300, 528, 3)
    # Another env's entry point refuses this run dir in one line.
    arena = C.apply_overrides(C.get_recipe("arena_basic_easy_shaped"), [f"run.dir={tmp_path / 'run'}"])
    with pytest.raises(ConfigError, match="holds a run of env 'npp', not 'arena'"):
        load_run_policy(arena, "arena", "arena_basic_easy_shaped")
