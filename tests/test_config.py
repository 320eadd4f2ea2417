"""Typed config: override parsing, one-line errors, validation, recipes, CLI exit codes."""

import json
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
    ("lr=1", "did you mean bc.lr, ppo.lr"),
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
        (["--env", "Pendulum-v1"], "error: env.name=Pendulum-v1 has a continuous action space"),
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


def _old_layout(data):
    """A config dict as runs saved it before the env-specific keys left ``env``: arena's
    switches and ``stage`` in ``env``, and an N++ run's frame limit in ``env.max_steps``."""
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    arena, npp = data.pop("arena"), data.pop("npp")
    assert data["env"]["max_steps"] == 0 or data["env"]["name"] != "npp"
    data["env"].update(arena, stage=npp["stage"])
    if data["env"]["name"] == "npp":
        data["env"]["max_steps"] = npp["max_frames"]
    return data


@pytest.mark.parametrize("old, new", sorted(C.MOVED_KEYS.items()))
def test_moved_keys_are_refused_in_one_line_naming_the_new_key(old, new):
    with pytest.raises(ConfigError) as err:
        C.apply_overrides(C.get_recipe("arena_basic_easy_shaped"), [f"{old}=1"])
    assert str(err.value) == f"{old} moved to {new}"


def test_moved_keys_are_refused_in_ab_variants():
    from jaxrl_arena.train import expand_runs

    with pytest.raises(ConfigError, match="^env.combat moved to arena.combat$"):
        expand_runs(C.get_recipe("arena_basic_easy_shaped"), ["env.combat=true,false"])


def test_env_sections_apply_to_their_env_only():
    arena = C.apply_overrides(C.get_recipe("arena_basic_easy_shaped"), ["arena.combat=false"])
    assert arena.arena.combat is False
    C.validate(arena)
    with pytest.raises(ConfigError, match="^arena.combat applies to env.name=arena only, not 'CartPole-v1'$"):
        C.validate(C.apply_overrides(C.Config(), ["arena.combat=false"]))
    with pytest.raises(ConfigError, match="^npp.max_frames applies to env.name=npp only, not 'arena'$"):
        C.validate(C.apply_overrides(C.get_recipe("arena_ff"), ["npp.max_frames=40"]))
    with pytest.raises(ConfigError, match="npp.max_frames=-1 must be >= 0"):
        C.validate(C.apply_overrides(C.get_recipe("npp_simplest"), ["npp.max_frames=-1"]))


@pytest.mark.parametrize("recipe", ["arena_basic_easy_shaped", "npp_simplest", "npp_curriculum", "cartpole"])
def test_saved_configs_of_the_old_layout_migrate(recipe):
    cfg = C.apply_overrides(C.get_recipe(recipe), ["run.seed=5"])
    if cfg.env.name == "arena":
        cfg = C.apply_overrides(cfg, ["arena.combat=false", "arena.desync_episodes=false"])
    current = C.to_dict(cfg)
    old = _old_layout(current)
    assert "arena" not in old and "combat" in old["env"]
    before = json.dumps(old, sort_keys=True)
    assert C.from_dict(old) == cfg
    assert C.to_dict(C.from_dict(C.migrate(old))) == current
    assert json.dumps(old, sort_keys=True) == before  # the argument is left alone
    assert C.migrate(current) == current  # the current layout passes unchanged
    # With its `_resolved` block, as config.json holds it.
    assert C.from_dict({**old, "_resolved": {"devices": 1}}) == cfg


def test_migration_moves_only_old_npp_frame_limits():
    old = {"env": {"name": "npp", "max_steps": 20_000, "stage": "simplest"}}
    assert C.migrate(old) == {"env": {"name": "npp", "max_steps": 0},
                              "npp": {"stage": "simplest", "max_frames": 20_000}}
    # Current layout (an npp section): env.max_steps counts agent steps and stays.
    new = {"env": {"name": "npp", "max_steps": 500}, "npp": {"stage": "", "max_frames": 0}}
    assert C.migrate(new) == new
    # Other envs' max_steps always counted agent steps.
    arena = {"env": {"name": "arena", "max_steps": 20, "combat": False}}
    assert C.migrate(arena) == {"env": {"name": "arena", "max_steps": 20},
                                "arena": {"combat": False}}


def test_cli_moved_key_is_one_line_and_new_key_works():
    def run(*args):
        return subprocess.run([sys.executable, str(REPO / "experiments" / "arena.py"), *args],
                              capture_output=True, text=True, timeout=300, check=False)

    proc = run("--config-override", "env.combat=false", "--print-config")
    assert proc.returncode == 2 and proc.stderr.strip() == "error: env.combat moved to arena.combat"
    proc = run("--config-override", "arena.combat=false", "--print-config")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["arena"]["combat"] is False


def test_no_silent_knobs():
    """A knob that would have no effect is refused in one line; a saved config with a key the
    schema lacks does not load as the defaults."""
    cfg = C.apply_overrides(C.get_recipe("arena_lp"), ["curriculum.num_active_tasks=32"])
    with pytest.raises(C.ConfigError, match="num_active_tasks=32 has no effect"):
        C.validate(cfg)
    saved = C.to_dict(C.get_recipe("arena_ff"))
    saved["ppo"]["lrr"] = 0.1
    with pytest.raises(C.ConfigError, match=r"unknown config key ppo\.lrr"):
        C.from_dict(saved)


def test_every_ranged_key_refuses_a_value_outside_its_range():
    """Each key of the range tables in config/validation.py, set just outside its range, is a
    one-line error naming that key (a key added to a table but not checked fails here)."""
    from jaxrl_arena.config import validation as V

    outside = {V.AT_LEAST_ONE: 0, V.AT_LEAST_ZERO: -1, V.ABOVE_ZERO: 0.0,
               V.UNIT_INTERVAL: 1.5, V.BELOW_ONE: 1.0, V.FRACTIONS: 0.0, V.SHRINK_FACTORS: 1.0}
    for keys, value in outside.items():
        for key in keys:
            if isinstance(C.get(C.Config(), key), float):
                value = float(value)
            cfg = C.replace(C.Config(), key, value)
            with pytest.raises(ConfigError, match=f"^{key}={value} must be"):
                V.check_values(cfg)
