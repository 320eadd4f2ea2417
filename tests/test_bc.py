"""Behaviour cloning (jaxrl_arena/bc.py): a BC run on a few human replays lowers its training
loss and logs validation accuracy per epoch, reports a malformed replay in one line, loads
strictly into the PPO policy of its recipe (and a partial load is refused), resumes, and its
input normalisation is the same on every path that applies the policy."""

import json
import shutil

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.npp.golden import npp_golden_dir
from jaxrl_arena import bc
from jaxrl_arena import config as C
from jaxrl_arena.config import ConfigError
from jaxrl_arena.logging import read_metrics, read_tensorboard_scalars
from jaxrl_arena.networks import OBS_NORM_CLIP, ObsNorm
from jaxrl_arena.policy_artifact import export_run, init_params_from, load_policy

# Three short replays of one input-length bucket (one compiled simulation): two train, one
# validates.
FILES = ("20251022_142001_train_very_simple_100001.replay",
         "20251022_162716_train_very_simple_100003.replay",
         "20251022_142157_train_very_simple_100048.replay")
BC = ["bc.epochs=2", "bc.batch_size=8", "bc.val_fraction=0.34", "policy.obs_norm=true",
      "logging.progress=false"]
# The PPO side of the same recipe, small enough to build (never run) on a CPU.
PPO = ["ppo.num_envs=4", "ppo.num_steps=2", "ppo.num_minibatches=1", "run.total_timesteps=8"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("bc")
    replays = root / "replays"
    replays.mkdir()
    for name in FILES:
        shutil.copy(npp_golden_dir() / "replays" / name, replays / name)
    (replays / "broken.replay").write_bytes(b"\x05\x00\x00\x00" * 3)
    cfg = bc.bc_config(BC + [f"bc.replays={replays}", f"run.dir={root / 'run'}",
                             f"bc.cache={root / 'cache'}"], recipe="npp_grid")
    lines = []
    result = bc.train_bc(cfg, print_fn=lines.append)
    return cfg, result, lines, root


def test_bc_lowers_the_training_loss_and_logs_validation_accuracy(run):
    _, result, lines, _ = run
    rows = read_metrics(result.run_dir)
    assert [r["epoch"] for r in rows] == [0, 1, 2] and result.epochs == 2
    assert rows[-1]["bc/train_loss"] < rows[0]["bc/train_loss"]
    assert rows[-1]["bc/train_accuracy"] > rows[0]["bc/train_accuracy"]
    for r in rows:
        assert 0.0 <= r["bc/val_accuracy"] <= 1.0 and np.isfinite(r["bc/val_loss"])
    assert all(np.isfinite(r["bc/minibatch_loss"]) for r in rows[1:])
    tb = read_tensorboard_scalars(result.run_dir / "tb")
    assert [s for s, _ in tb["bc/val_accuracy"]] == [r["step"] for r in rows]
    epoch_lines = [x for x in lines if x.startswith("epoch ")]
    assert len(epoch_lines) == 2
    assert all("train loss" in x and "val loss" in x and "val accuracy" in x for x in epoch_lines)


def test_a_malformed_replay_is_reported_in_one_line_and_skipped(run):
    _, result, lines, _ = run
    reported = [x for x in lines if "broken.replay" in x]
    assert len(reported) == 1 and reported[0].startswith("skipped ") and "\n" not in reported[0]
    data = result.dataset
    assert set(data.train_files) | set(data.val_files) == set(FILES) and data.val_files
    saved = json.loads((result.run_dir / "config.json").read_text())["_resolved"]
    assert saved["trainer"] == "bc" and len(saved["skipped"]) == 1


def test_the_run_and_its_artefact_load_strictly_into_the_ppo_policy(run):
    from jaxrl_arena.train import make_train

    cfg, result, _, root = run
    ppo_cfg = C.apply_overrides(C.get_recipe("npp_grid"), ["policy.obs_norm=true"] + PPO)
    program = make_train(ppo_cfg, devices=jax.devices()[:1])
    space = program.env.observation_space(program.env.default_params)

    def train_state_params(policy):
        """Parameters of PPO's train state: its policy's names and shapes, a run axis."""
        shapes = jax.eval_shape(policy.init, jax.random.PRNGKey(1),
                                jax.ShapeDtypeStruct((1, *space.shape), space.dtype))
        return jax.tree.map(lambda s: jnp.zeros((1, *s.shape), s.dtype), shapes)

    state_params = train_state_params(program.policy)
    artefact = export_run(result.run_dir, root / "artefact")
    for source in (result.run_dir, artefact):
        # No allow patterns: every name and shape matches and the values are checked inside.
        params = init_params_from(state_params, source, print_fn=lambda _: None)
        jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a)[0], b),
                     params, result.params)
    stats = result.params["params"]["obs_norm"]
    assert not np.all(np.asarray(stats["std"]) == 1.0)   # set from data, not the identity
    # The recipe as it is (no obs_norm) or another network: refused, naming what differs.
    for other in (C.get_recipe("npp_grid"),
                  C.apply_overrides(C.get_recipe("npp_grid"),
                                    ["policy.obs_norm=true", "policy.hidden_sizes=128"])):
        policy = make_train(C.apply_overrides(other, PPO), devices=jax.devices()[:1]).policy
        with pytest.raises(ConfigError, match="transfer refused"):
            init_params_from(train_state_params(policy), artefact, print_fn=lambda _: None)
    command = bc.ppo_command(cfg, result.run_dir)
    assert command == (f"python experiments/npp.py --recipe npp_grid --init-from "
                       f"{result.run_dir} --config-override policy.obs_norm=true")


def test_training_leaves_the_normalisation_statistics_as_computed(run):
    cfg, result, _, _ = run
    program = bc.make_bc(cfg)
    data = result.dataset
    mean, std = bc.input_statistics(program.policy, bc.padded(data.train_obs),
                                    len(data.train_obs))
    stats = result.params["params"]["obs_norm"]
    np.testing.assert_array_equal(stats["mean"], mean.astype(np.float32))
    np.testing.assert_array_equal(stats["std"], np.where(std < 1e-6, 1, std).astype(np.float32))


def test_the_normalised_input_is_the_same_on_every_path(run, tmp_path):
    """BC scoring, the rollout (packed observations), the learner (sequences), evaluation, a
    rendered run's policy and a loaded artefact: the same raw observation reaches the first
    layer as the same normalised input, the training set's statistics applied."""
    from jaxrl_arena.policy_io import load_run_policy
    from jaxrl_arena.train import make_train

    cfg, result, _, _ = run
    params = jax.tree.map(jnp.asarray, result.params)
    obs = jnp.asarray(result.dataset.val_obs[:1])
    seen = []

    def capture(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        if isinstance(context.module, ObsNorm):
            jax.debug.callback(lambda y: seen.append(np.asarray(y, np.float32)), out)
        return out

    program = make_train(C.apply_overrides(C.get_recipe("npp_grid"),
                                           ["policy.obs_norm=true"] + PPO),
                         devices=jax.devices()[:1])
    policy = program.rollout.policy
    reset = jnp.zeros(1, bool)
    # Loaded before the capture: loading builds parameter templates through the network too.
    rendered = load_run_policy(C.replace(cfg, "run.dir", str(result.run_dir)), "npp", "npp_grid")
    loaded = load_policy(export_run(result.run_dir, tmp_path / "a"))
    paths = {
        "bc": lambda: bc.make_scorer(bc.make_bc(cfg).policy)(params, bc.padded(np.asarray(obs)),
                                                             bc.padded(np.zeros(1, np.int32)), 1),
        "rollout": lambda: jax.jit(lambda p, o: policy.apply(p, policy.pack(o), (), reset))(
            params, obs),
        "learner": lambda: jax.jit(lambda p, o: program.learner.policy.apply_sequence(
            p, policy.pack(o)[None], (), reset[None]))(params, obs),
        "evaluation": lambda: jax.jit(lambda p, o: program.policy.apply(p, o, (), reset))(
            params, obs),
        # envs/npp/render.py calls the policy inside its jitted episode; artefacts act jitted.
        "render": lambda: jax.jit(rendered.act)(jax.random.PRNGKey(0), obs, ()),
        "artefact": lambda: jax.jit(lambda o: loaded.act(jax.random.PRNGKey(0), o, ()))(obs),
    }
    inputs = {}
    for name, fn in paths.items():
        seen.clear()
        with nn.intercept_methods(capture):
            jax.block_until_ready(fn())
        jax.effects_barrier()
        assert len(seen) == 1, (name, len(seen))
        inputs[name] = seen[0][:1]
    stats = result.params["params"]["obs_norm"]
    x = np.asarray(jax.jit(policy.network_input)(obs), np.float32)
    expected = np.clip((x - stats["mean"]) / stats["std"], -OBS_NORM_CLIP, OBS_NORM_CLIP)
    for name, y in inputs.items():
        # Up to float32 rounding: XLA fuses the same formula differently in each program (an
        # ulp); a path without the statistics, or applying them twice, is off by O(1).
        np.testing.assert_allclose(y, inputs["bc"], rtol=1e-6, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(inputs["bc"], expected, rtol=1e-5, atol=1e-4)
    assert np.abs(expected - x).max() > 0.5   # the statistics change the input


def test_a_rerun_resumes_after_the_last_epoch(run, tmp_path):
    cfg, result, _, _ = run
    shutil.copytree(result.run_dir, tmp_path / "run")
    more = C.apply_overrides(cfg, [f"run.dir={tmp_path / 'run'}", "bc.epochs=3"])
    lines = []
    again = bc.train_bc(more, print_fn=lines.append)
    assert again.resumed_from == 2 and again.epochs == 3
    assert [r["epoch"] for r in read_metrics(tmp_path / "run")] == [0, 1, 2, 3]
    assert f"resumed {tmp_path / 'run'} after epoch 2" in lines
    changed = C.apply_overrides(more, ["bc.lr=1e-3"])
    with pytest.raises(ConfigError, match="different config"):
        bc.train_bc(changed, print_fn=lambda _: None)


def test_cross_entropy_masks_and_class_weights():
    logits = jnp.log(jnp.asarray([[0.5, 0.25, 0.25], [0.2, 0.3, 0.5]]))
    actions = jnp.asarray([0, 2])
    np.testing.assert_allclose(bc.cross_entropy(logits, actions), -np.log([0.5, 0.5]), rtol=1e-6)
    valid = jnp.asarray([[True, True, False], [True, True, True]])
    np.testing.assert_allclose(bc.cross_entropy(logits, actions, valid),
                               -np.log([0.5 / 0.75, 0.5]), rtol=1e-6)
    w = bc.class_weights(np.asarray([0, 0, 0, 1]), 3, "balanced")
    np.testing.assert_allclose(w, [4 / 9, 4 / 3, 0.0], rtol=1e-6)
    np.testing.assert_array_equal(bc.class_weights(np.asarray([0, 1]), 3, "none"), 1.0)


@pytest.mark.parametrize("overrides, recipe, message", [
    ([], "cartpole", "not npp"),
    (["policy.kind=lstm"], "npp_simplest", "feed-forward"),
    (["bc.val_fraction=1"], "npp_simplest", r"bc.val_fraction=1.0 must be in \[0, 1\)"),
    (["bc.recipe=npp_simplest"], "npp_grid", "two recipes"),
])
def test_what_bc_cannot_train_is_a_one_line_error(overrides, recipe, message):
    with pytest.raises(ConfigError, match=message) as err:
        bc.make_bc(bc.bc_config(overrides, recipe=recipe))
    assert "\n" not in str(err.value)
