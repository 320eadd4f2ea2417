"""Evaluation GIFs (``eval.gif_every``): the files and TensorBoard images of tiny N++ and arena
runs, one frame per step of the very episode the evaluation scored, the device renderers'
frames equal to the reference renderers', and the one-line error for an env without one."""

import io

import imageio.v2 as imageio
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jaxrl_arena import config as C
from jaxrl_arena import eval_gifs, play
from jaxrl_arena.config import ConfigError
from jaxrl_arena.logging import read_metrics, read_tensorboard_images
from jaxrl_arena.loop import train

# As tests/test_train_npp.py and tests/test_train_arena.py (the same compiled training programs).
NPP_SMALL = ["ppo.num_envs=4", "ppo.num_steps=8", "ppo.num_minibatches=2", "ppo.update_epochs=1",
             "policy.hidden_sizes=32,32", "run.updates_per_chunk=2", "logging.progress=false",
             "npp.max_frames=40"]
ARENA_SMALL = ["ppo.num_envs=4", "ppo.num_steps=16", "ppo.bptt_horizon=8", "ppo.minibatch_size=0",
               "ppo.num_minibatches=4", "run.updates_per_chunk=2", "logging.progress=false",
               "env.max_steps=20", "arena.desync_episodes=false"]


def gif_frames(data: bytes) -> tuple[list[np.ndarray], list[int]]:
    """The frames (RGB) and per-frame durations (ms) of a GIF."""
    with Image.open(io.BytesIO(data)) as im:
        frames, durations = [], []
        for i in range(im.n_frames):
            im.seek(i)
            frames.append(np.asarray(im.convert("RGB")))
            durations.append(im.info["duration"])
    return frames, durations


def check_gif(data, length, height=None, width=None):
    """A GIF of an episode of ``length`` agent steps: the reset's frame and one per step (each
    captioned, so none is merged into its neighbour), the last held longer."""
    frames, durations = gif_frames(data)
    assert len(frames) == length + 1 > 1
    if height is not None:
        assert frames[0].shape == (height, width, 3)
    assert durations[-1] == durations[0] + eval_gifs.HOLD_LAST_MS
    assert len(imageio.mimread(io.BytesIO(data), format="GIF")) == length + 1
    return frames


def check_run_gifs(run, tasks, gif_steps, max_length=None):
    """The GIFs of a run with ``eval.episodes=1``: one per task at each of ``gif_steps``, in
    the run dir and in TensorBoard, each showing the very episode the evaluation scored
    (``max_length``: ``eval.gif_steps``, where it cuts the episode)."""
    rows = read_metrics(run)
    recorded = [r for r in rows if "eval/gif_seconds" in r]
    assert [r["step"] for r in recorded] == gif_steps
    assert all(r["eval/gif_seconds"] > 0 for r in recorded)
    images = read_tensorboard_images(run / "tb")
    assert sorted(images) == sorted(f"eval_gif/{task}" for task in tasks)
    for task in tasks:
        logged = images[f"eval_gif/{task}"]
        assert [step for step, *_ in logged] == gif_steps
        for row, (step, data, height, width) in zip(recorded, logged):
            path = run / "eval_gifs" / eval_gifs.task_dirname(task) / f"step_{step}.gif"
            assert path.read_bytes() == data
            length = int(row[f"eval/episode_length/{task}"])
            check_gif(data, min(length, max_length or length), height, width)
    assert sorted(p.name for p in run.glob("eval_gifs/*")) == sorted(map(eval_gifs.task_dirname,
                                                                         tasks))
    assert not list(run.glob("eval_gifs/*/.*"))  # no partial files
    return rows


def test_npp_recorder_plays_the_scored_episode_of_each_stage(tmp_path):
    """The recorder alone (no training program to compile): the first run's policy of two, on
    the first held-out level of two stages; with one episode per set the evaluator scores the
    very episodes the GIFs show."""
    from envs.npp.env import NppEnv
    from jaxrl_arena.evaluation import Evaluator
    from jaxrl_arena.logging import RunLogger
    from jaxrl_arena.networks import make_policy

    env = NppEnv(obs_kind="state", max_frames=40, task_stages=("simplest", "simpler"))
    policy = make_policy(C.PolicyConfig(kind="mlp", hidden_sizes=(8,)),
                         env.observation_space(env.default_params).shape, 6)
    obs = jnp.zeros((1,) + env.observation_space(env.default_params).shape, jnp.float32)
    runs = [policy.init(jax.random.PRNGKey(seed), obs) for seed in (0, 1)]
    params = jax.tree.map(lambda *xs: jnp.stack(xs), *runs)
    evaluator = Evaluator(env, policy, episodes=1, max_steps=300, seed=7)
    recorder = eval_gifs.GifRecorder(evaluator, eval_gifs.EVAL_FRAMES["npp"](),
                                     directory=tmp_path, steps=300, every=1, every_updates=1)
    with RunLogger(tmp_path) as logger:
        try:
            assert recorder.record(params, 1234, logger) > 0
        finally:
            recorder.close()
    lengths = evaluator(params)
    images = read_tensorboard_images(tmp_path / "tb")
    assert sorted(images) == ["eval_gif/simpler", "eval_gif/simplest"]
    for stage in ("simplest", "simpler"):
        length = int(lengths[f"eval/episode_length/{stage}"][0])
        assert 1 <= length <= 10  # 40-frame episodes: 10 agent steps at most
        [(step, data, height, width)] = images[f"eval_gif/{stage}"]
        assert step == 1234 and (height, width) == (150 + eval_gifs.CAPTION_HEIGHT, 264)
        assert (tmp_path / "eval_gifs" / stage / "step_1234.gif").read_bytes() == data
        frames = check_gif(data, length, height, width)
        assert not np.array_equal(frames[0][:150], frames[-1][:150])  # the ninja moved or died


# ~110 s warm, ~220 s cold on 2 busy CPU cores: tracing N++'s training program and its
# evaluation; the recorder's N++ path is covered above, the loop's by the arena run below.
@pytest.mark.slow
def test_npp_run_writes_a_gif_per_stage_and_evaluation(tmp_path):
    # 4 updates of 32 agent-steps, evaluated at updates 2 and 4; 10-step episodes (40 frames).
    cfg = C.apply_overrides(C.get_recipe("npp_curriculum"), NPP_SMALL + [
        "run.total_timesteps=128", f"run.dir={tmp_path}", "eval.every_updates=2",
        "eval.episodes=1", "eval.gif_every=1"])
    train(cfg, experiment="npp", recipe="npp_curriculum")
    stages = ["simplest", "simplest_few_mines", "simplest_with_mines", "simpler", "simple",
              "medium", "complex", "exploration", "mine_heavy"]
    check_run_gifs(tmp_path, stages, [64, 128])


def test_arena_run_gifs_follow_the_cadence(tmp_path):
    # 6 updates in chunks of 2, evaluated at 2, 4, 6 (evaluations 1-3); with gif_every=2
    # GIFs at evaluations 1 and 3 (also the run's last); 20-step episodes cut at 12 steps.
    cfg = C.apply_overrides(C.get_recipe("arena_basic_easy_shaped"), ARENA_SMALL + [
        "run.total_timesteps=9216", f"run.dir={tmp_path}", "eval.every_updates=2",
        "eval.episodes=1", "eval.gif_every=2", "eval.gif_steps=12"])
    train(cfg, experiment="arena", recipe="arena_basic_easy_shaped")
    rows = check_run_gifs(tmp_path, ["arena/basic", "arena/combat"], [3072, 9216],
                          max_length=12)
    assert [r["update"] for r in rows if "eval/episode_length/arena/basic" in r] == [2, 4, 6]
    assert all(r["eval/episode_length/arena/basic"] == 20 for r in rows if "eval/gif_seconds" in r)


def test_the_cadence_counts_evaluations_from_the_first():
    recorder = eval_gifs.GifRecorder.__new__(eval_gifs.GifRecorder)
    recorder.every, recorder.every_updates = 3, 10
    due = [u for u in range(10, 200, 10) if recorder.due(u - 10, u, last=False)]
    assert due == [10, 40, 70, 100, 130, 160, 190]  # evaluations 1, 4, 7, ...
    assert recorder.due(40, 60, last=False) is False and recorder.due(40, 60, last=True)
    assert recorder.due(50, 80, last=False)  # a chunk passing evaluation 7 (update 70)


def test_an_env_without_a_renderer_is_a_config_error_at_the_start(tmp_path):
    cfg = C.apply_overrides(C.get_recipe("cartpole"), [
        f"run.dir={tmp_path}", "eval.every_updates=1", "eval.gif_every=1"])
    with pytest.raises(ConfigError, match=r"^eval.gif_every=1: env 'CartPole-v1' has no "
                                          r"renderer for evaluation GIFs"):
        train(cfg)
    assert not (tmp_path / "config.json").exists()  # refused before anything was written


def test_the_eval_gif_envs_are_the_envs_with_a_renderer():
    assert set(eval_gifs.EVAL_FRAMES) == set(play.RENDERERS)


def test_device_frames_equal_the_reference_renderers():
    from envs.arena import from_ascii
    from envs.arena import render as arena_render
    from envs.npp import constants as NC
    from envs.npp import render as npp_render
    from envs.npp.levels import corridor_level
    from envs.npp.observations import TILE_MASKS
    from envs.npp.sim import init_state

    level = corridor_level(mines_x=(3, 5))
    state = init_state(level)
    e, ninja = state.ents, state.ninja
    E = e.active.shape[0]
    rng = np.random.default_rng(0)
    # Every drawn kind at once on random tiles: mines both ways, exits, switches, door
    # switches and closed door segments (one cell edge long), a dead ninja at the left edge;
    # positions across the level's edges.
    types = np.resize([NC.T_MINE, NC.T_MINE_SAFE, NC.T_EXIT, NC.T_SWITCH, NC.T_DOOR_REGULAR,
                       NC.T_DOOR_LOCKED, NC.T_DOOR_TRAP, 0], E)
    centre = rng.uniform([-10, -10], [1066, 610], (E, 2))
    half = np.where(rng.random(E)[:, None] < 0.5, [0.0, 12.0], [12.0, 0.0])
    level = level.replace(
        tiles=jnp.asarray(rng.integers(0, len(TILE_MASKS), level.tiles.shape), level.tiles.dtype),
        ent_type=jnp.asarray(types, level.ent_type.dtype),
        door_seg=jnp.asarray(np.concatenate([centre - half, centre + half], -1), jnp.float32))
    state = state.replace(
        switch_hit=jnp.asarray(True),
        ents=e.replace(active=jnp.asarray(rng.random(E) < 0.8),
                       state=jnp.asarray(rng.integers(0, 2, E), e.state.dtype),
                       door_closed=jnp.asarray(rng.random(E) < 0.7),
                       pos=jnp.asarray(rng.uniform([-10, -10], [1066, 610], (E, 2)), jnp.float32)),
        ninja=ninja.replace(x=jnp.float32(5.0), y=jnp.float32(300.0),
                            state=jnp.asarray(NC.ST_DEAD, ninja.state.dtype)))
    for ds in (4, 3):
        reference = np.asarray(jax.jit(npp_render.render, static_argnums=2)(state, level, ds))
        indexed = np.asarray(jax.jit(npp_render.render_indexed, static_argnums=2)(state, level, ds))
        assert len(np.unique(indexed)) >= 9  # the scene draws most layers
        np.testing.assert_array_equal(npp_render.PALETTE[indexed], reference)

    state = from_ascii(["#######", "#@m.n@#", "#.@_S.#", "#######"])
    state = state.replace(agent_ori=state.agent_ori.at[1].set(3),
                          agent_frozen=state.agent_frozen.at[2].set(5))
    indexed = np.asarray(arena_render.render_indexed(state, 5))
    np.testing.assert_array_equal(arena_render.PALETTE[indexed],
                                  np.asarray(arena_render.render(state, 5)))
