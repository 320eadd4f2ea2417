"""Policy artefacts and strict weight transfer: an artefact reproduces the policy's logits bit
for bit (normalisation included), a transfer that would leave parameters behind or reshape them
is refused with a report, and ``run.init_from`` starts a run from exactly the source's
parameters."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from toy_envs import CountdownEnv

from envs.base import Box
from jaxrl_arena import config as C
from jaxrl_arena.config import ConfigError
from jaxrl_arena.networks import make_policy
from jaxrl_arena.policy_artifact import export_run, load_policy, save_policy, transfer

TOY = ["ppo.num_envs=8", "ppo.num_steps=4", "ppo.num_minibatches=2", "ppo.update_epochs=1",
       "run.total_timesteps=128", "run.updates_per_chunk=2", "policy.hidden_sizes=(8,)",
       "eval.every_updates=0", "logging.tensorboard=false", "logging.progress=false",
       "run.compile_cache=off"]


class ScaledCountdown(CountdownEnv):
    """Countdown whose observation scale is not 1: an artefact must carry it."""

    obs_scale = np.asarray([2.0, 0.5], np.float32)

    def observation_space(self, params):
        return Box(0.0, 10.0, (2,), jnp.float32)


def test_artefact_round_trip_is_bit_identical(tmp_path):
    env = ScaledCountdown(num_agents=2)
    cfg = C.PolicyConfig(kind="mlp", hidden_sizes=(16,), obs_scale="env")
    policy = make_policy(cfg, (2,), 3, env.obs_scale, jnp.float32)
    params = policy.init(jax.random.PRNGKey(0), jnp.zeros((1, 2)))
    obs = jax.random.uniform(jax.random.PRNGKey(1), (5, 2)) * 4
    _, logits, _ = policy.apply(params, obs, (), None)
    loaded = load_policy(save_policy(tmp_path / "a", cfg, params, env))
    np.testing.assert_array_equal(loaded.logits(obs), logits)
    # The scale is the artefact's: a policy rebuilt without it sees different inputs.
    plain = make_policy(cfg, (2,), 3, None, jnp.float32)
    assert not np.array_equal(plain.apply(params, obs, (), None)[1], logits)
    size = sum(f.stat().st_size for f in (tmp_path / "a").iterdir())
    assert size < 100_000


def test_artefact_carries_the_obs_norm_statistics_bit_for_bit(tmp_path):
    """``policy.obs_norm`` statistics are parameters: the artefact holds them, its logits are
    the saved policy's bit for bit, and an artefact written before the key existed (no
    ``obs_norm`` in its policy config) still loads, without the layer."""
    import json

    env = ScaledCountdown(num_agents=2)
    cfg = C.PolicyConfig(kind="mlp", hidden_sizes=(16,), obs_scale="env", obs_norm=True)
    policy = make_policy(cfg, (2,), 3, env.obs_scale, jnp.float32)
    params = policy.set_obs_norm(policy.init(jax.random.PRNGKey(0), jnp.zeros((1, 2))),
                                 [1.0, -0.5], [0.25, 4.0])
    obs = jax.random.uniform(jax.random.PRNGKey(1), (5, 2)) * 4
    logits = jax.jit(lambda p, o: policy.apply(p, o, (), None)[1])(params, obs)
    loaded = load_policy(save_policy(tmp_path / "a", cfg, params, env))
    np.testing.assert_array_equal(jax.jit(loaded.logits)(obs), logits)
    for key in ("mean", "std"):
        np.testing.assert_array_equal(loaded.params["params"]["obs_norm"][key],
                                      params["params"]["obs_norm"][key])
    plain = C.PolicyConfig(kind="mlp", hidden_sizes=(16,), obs_scale="env")
    old = make_policy(plain, (2,), 3, env.obs_scale, jnp.float32)
    save_policy(tmp_path / "old", plain, old.init(jax.random.PRNGKey(0), jnp.zeros((1, 2))), env)
    meta = json.loads((tmp_path / "old" / "policy.json").read_text())
    del meta["policy"]["obs_norm"]
    (tmp_path / "old" / "policy.json").write_text(json.dumps(meta))
    assert "obs_norm" not in load_policy(tmp_path / "old").params["params"]


def test_transfer_refuses_a_partial_or_reshaped_load_and_names_what():
    small = make_policy(C.PolicyConfig(hidden_sizes=(8,)), (2,), 3)
    deep = make_policy(C.PolicyConfig(hidden_sizes=(8, 8)), (2,), 3)
    wide = make_policy(C.PolicyConfig(hidden_sizes=(16,)), (2,), 3)
    p_small = small.init(jax.random.PRNGKey(0), jnp.zeros((1, 2)))
    p_deep = deep.init(jax.random.PRNGKey(1), jnp.zeros((1, 2)))
    p_wide = wide.init(jax.random.PRNGKey(2), jnp.zeros((1, 2)))
    same, report = transfer(p_small, jax.tree.map(lambda x: x + 1, p_small))
    assert not (report.missing or report.unexpected or report.mismatched)
    assert len(report.loaded) == len(jax.tree.leaves(p_small))
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b + 1), same, p_small)
    with pytest.raises(ConfigError, match="transfer refused"):
        transfer(p_deep, p_small)   # the deeper net's extra layers would silently stay random
    with pytest.raises(ConfigError, match=r"-> \(16"):
        transfer(p_wide, p_small)   # same names, other shapes
    # Allowed by name: those keep their fresh values, everything that matches is loaded.
    out, rep = transfer(p_deep, p_small, allow=("params/Dense_[1-5]/*",))
    assert rep.loaded == ["params/Dense_0/kernel", "params/Dense_0/bias"]
    assert rep.missing and rep.mismatched
    for name, leaf in jax.tree_util.tree_flatten_with_path(out)[0]:
        key = "/".join(k.key for k in name)
        ref = p_small if key in rep.loaded else p_deep
        want = ref
        for k in name:
            want = want[k.key]
        np.testing.assert_array_equal(leaf, want, err_msg=key)


def test_init_from_gives_every_run_the_source_parameters(tmp_path, capsys):
    from jaxrl_arena.loop import train
    from jaxrl_arena.policy_artifact import init_params_from
    from jaxrl_arena.train import make_train

    first = C.apply_overrides(C.Config(), TOY + [f"run.dir={tmp_path / 'a'}"])
    train(first, env=CountdownEnv(num_agents=2))
    artefact = export_run(tmp_path / "a", tmp_path / "artefact", env=CountdownEnv(num_agents=2))
    source = load_policy(artefact).params
    two_seeds = make_train(C.apply_overrides(C.Config(), TOY + ["run.num_seeds=2"]),
                           env=CountdownEnv(num_agents=2), devices=jax.devices()[:1])
    state = two_seeds.init()
    for path in (tmp_path / "a", artefact):
        params = init_params_from(state.params, path, env=CountdownEnv(num_agents=2))
        for run in range(2):
            jax.tree.map(lambda a, b, r=run: np.testing.assert_array_equal(np.asarray(a)[r], b),
                         params, source)
    # Through the loop: the report is printed and training runs from there.
    second = C.apply_overrides(C.Config(), TOY + [f"run.dir={tmp_path / 'b'}",
                                                  f"run.init_from={artefact}"])
    assert train(second, env=CountdownEnv(num_agents=2)).updates >= 1
    n = len(jax.tree.leaves(source))
    assert f"loaded {n} parameter arrays" in capsys.readouterr().out
    # A run with another network is refused before any training, naming the mismatch.
    third = C.apply_overrides(C.Config(), TOY + [f"run.dir={tmp_path / 'c'}",
                                                 f"run.init_from={artefact}",
                                                 "policy.hidden_sizes=(16,)"])
    with pytest.raises(ConfigError, match="transfer refused"):
        train(third, env=CountdownEnv(num_agents=2))
