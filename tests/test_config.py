"""Typed config: override parsing, one-line errors, validation, recipes, CLI exit codes."""

import subprocess
import sys

import pytest

from jaxrl_arena import config as C
from jaxrl_arena.config import ConfigError

from conftest import REPO


def test_overrides_parse_to_field_types():
    cfg = C.apply_overrides(C.Config(), [
        "ppo.num_envs=1_024", "ppo.lr=3e-4", "run.total_timesteps=2e6", "ppo.norm_adv=false",
        "policy.hidden_sizes=32,16", "policy.kind=lstm", "env.reset_pool=auto", "run.seed=3",
    ])
    assert cfg.ppo.num_envs == 1024 and isinstance(cfg.ppo.num_envs, int)
    assert cfg.ppo.lr == 3e-4
    assert cfg.run.total_timesteps == 2_000_000 and isinstance(cfg.run.total_timesteps, int)
    assert cfg.ppo.norm_adv is False
    assert cfg.policy.hidden_sizes == (32, 16)
    assert cfg.policy.kind == "lstm"
    assert cfg.env.reset_pool == "auto"
    assert C.apply_overrides(cfg, ["ppo.num_envs=auto"]).ppo.num_envs == "auto"


def test_later_overrides_win_and_config_is_frozen():
    cfg = C.apply_overrides(C.Config(), ["ppo.lr=1", "ppo.lr=2"])
    assert cfg.ppo.lr == 2.0
    with pytest.raises(Exception):
        cfg.ppo.lr = 3.0


@pytest.mark.parametrize("item, message", [
    ("ppo.lrr=1", "unknown config key 'ppo.lrr'; did you mean ppo.lr"),
    ("lr=1", "did you mean ppo.lr"),
    ("ppo.num_envs=many", "bad value 'many' for ppo.num_envs: expected an int or one of 'auto'"),
    ("policy.kind=gru", "expected one of 'mlp', 'cnn', 'lstm'"),
    ("ppo.norm_adv=maybe", "expected a bool"),
    ("run.seed=1.5", "bad value '1.5' for run.seed"),
    ("ppo.lr", "expected dotted.key=value"),
])
def test_bad_overrides_give_one_line_errors(item, message):
    with pytest.raises(ConfigError) as err:
        C.apply_overrides(C.Config(), [item])
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_validation_catches_inconsistent_sizes():
    cfg = C.apply_overrides(C.Config(), ["ppo.num_envs=6", "ppo.num_steps=5", "ppo.num_minibatches=4"])
    with pytest.raises(ConfigError, match="batch 30 .* not divisible by ppo.num_minibatches=4"):
        C.validate(cfg)
    cfg = C.apply_overrides(C.Config(), ["policy.cnn_channels=[16,32]", "policy.cnn_kernels=[4]"])
    with pytest.raises(ConfigError, match=r"cnn_kernels=\[4\] .* must have one entry per conv layer"):
        C.validate(cfg)
    cfg = C.apply_overrides(C.Config(), ["ppo.num_envs=6"])
    with pytest.raises(ConfigError, match="ppo.num_envs=6 is not divisible by the 4 devices"):
        C.validate(cfg, num_devices=4)
    cfg = C.apply_overrides(C.Config(), ["policy.kind=lstm", "ppo.num_steps=10", "ppo.bptt_horizon=4"])
    with pytest.raises(ConfigError, match="not divisible by ppo.bptt_horizon=4"):
        C.validate(cfg)
    with pytest.raises(ConfigError, match="ppo.num_steps=0 must be >= 1"):
        C.validate(C.apply_overrides(C.Config(), ["ppo.num_steps=0"]))
    with pytest.raises(ConfigError, match="grad_accum_steps"):
        C.validate(C.apply_overrides(C.Config(), ["ppo.grad_accum_steps=3"]))
    C.validate(C.Config())  # the defaults are consistent


def test_recipes_and_roundtrip():
    with pytest.raises(ConfigError, match="unknown recipe 'nope'; known recipes: .*cartpole"):
        C.get_recipe("nope")
    cfg = C.apply_overrides(C.get_recipe("cartpole"), ["policy.hidden_sizes=8,8"])
    assert C.from_dict(C.to_dict(cfg)) == cfg
    assert C.diff(cfg, C.get_recipe("cartpole")) == {"policy.hidden_sizes": ((8, 8), (64, 64))}


def _cli(*args):
    return subprocess.run([sys.executable, str(REPO / "experiments" / "gymnax_env.py"), *args],
                          capture_output=True, text=True, timeout=300)


def test_cli_errors_are_one_line_and_nonzero():
    for args, expected in [
        (["--config-override", "ppo.lrr=1"], "error: unknown config key 'ppo.lrr'"),
        (["--config-override", "ppo.num_envs=x"], "error: bad value 'x' for ppo.num_envs"),
        (["--recipe", "nope"], "error: unknown recipe 'nope'"),
        (["--env", "NoSuchEnv"], "error: unknown gymnax env 'NoSuchEnv'"),
        (["--config-override", "ppo.num_envs=4", "ppo.num_steps=3", "run.dir=/tmp/jaxrl_bad"],
         "not divisible by ppo.num_minibatches=4"),
    ]:
        proc = _cli(*args)
        assert proc.returncode == 2, proc.stderr
        lines = [l for l in proc.stderr.strip().splitlines() if l.strip()]
        assert len(lines) == 1 and expected in lines[0], proc.stderr
        assert "Traceback" not in proc.stderr


def test_cli_print_config_resolves_overrides():
    proc = _cli("--config-override", "ppo.lr=0.5", "--config-override", "run.seed=7", "--print-config")
    assert proc.returncode == 0, proc.stderr
    assert '"lr": 0.5' in proc.stdout and '"seed": 7' in proc.stdout
