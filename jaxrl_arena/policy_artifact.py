"""A policy without its training run: a parameters-only artefact, and strict weight transfer.

An artefact is a directory of two files: ``policy.msgpack`` (the network's parameters) and
``policy.json`` (what rebuilds the network exactly: the ``policy`` config section, the
observation shape and dtype, the number of actions, and the observation scale the policy
multiplies its inputs by). The scale travels inside the artefact, so a policy always sees its
inputs normalised the way it was trained, wherever it runs. A few MB where a checkpoint holds
the whole train state (env states, optimizer, curriculum).

    save_policy(path, cfg.policy, params, env)          # or: export_run(run_dir, path)
    loaded = load_policy(path)                           # LoadedPolicy
    actions, carry = loaded.act(key, obs, loaded.initial_carry(num_agents))

``transfer(target, source, allow=...)`` copies parameters by name into a freshly initialised
tree and reports loaded / missing / unexpected / shape-mismatched names; anything but a full
match is an error unless every offending name matches an ``allow`` pattern (e.g. a new value
head). ``run.init_from`` uses it to start PPO from a run (PPO or behaviour cloning,
``jaxrl_arena.bc``) or an artefact.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization, traverse_util

from jaxrl_arena.config import ConfigError, PolicyConfig
from jaxrl_arena.networks import Policy, make_policy

PARAMS_FILE, META_FILE = "policy.msgpack", "policy.json"
FORMAT = 1


@dataclasses.dataclass
class LoadedPolicy:
    policy: Policy
    params: Any
    meta: dict

    def initial_carry(self, batch: int):
        return self.policy.initial_carry(batch)

    def act(self, key, obs, carry, deterministic: bool = False):
        """``(int32[B] actions, carry)`` for observations ``[B, *obs_shape]``."""
        reset = jnp.zeros(jax.tree.leaves(obs)[0].shape[:1], bool)
        carry, logits, _ = self.policy.apply(self.params, obs, carry, reset)
        if deterministic:
            return jnp.argmax(logits, -1).astype(jnp.int32), carry
        return jax.random.categorical(key, logits).astype(jnp.int32), carry

    def logits(self, obs, carry=None):
        carry = self.initial_carry(jax.tree.leaves(obs)[0].shape[0]) if carry is None else carry
        return self.policy.apply(self.params, obs, carry, None)[1]


def save_policy(path, policy_cfg: PolicyConfig, params, env, source: str = "") -> Path:
    """Write the artefact of ``params`` (one run's tree, no run axis) for ``env``'s spaces."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    p = env.default_params
    space = env.observation_space(p)
    scale = None if env.obs_scale is None else np.asarray(env.obs_scale, np.float32).tolist()
    meta = {"format": FORMAT, "policy": dataclasses.asdict(policy_cfg),
            "obs_shape": list(space.shape), "obs_dtype": np.dtype(space.dtype).name,
            "num_actions": int(env.action_space(p).n), "obs_scale": scale,
            "env": env.name, "source": source}
    (path / PARAMS_FILE).write_bytes(serialization.msgpack_serialize(
        jax.tree.map(np.asarray, jax.device_get(params))))
    (path / META_FILE).write_text(json.dumps(meta, indent=1))
    return path


def _policy_config(d: dict) -> PolicyConfig:
    fields = {f.name: f for f in dataclasses.fields(PolicyConfig)}
    unknown = sorted(set(d) - set(fields))
    if unknown:
        raise ConfigError(f"policy artefact has unknown policy keys {unknown}; "
                          f"allowed: {', '.join(fields)}")
    return PolicyConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def load_policy(path) -> LoadedPolicy:
    """The artefact at ``path``: its network rebuilt and its parameters, checked strictly
    against that network (a missing, extra or reshaped parameter is an error)."""
    path = Path(path)
    if not (path / META_FILE).exists() or not (path / PARAMS_FILE).exists():
        raise FileNotFoundError(f"{path} is not a policy artefact (needs {META_FILE} and "
                                f"{PARAMS_FILE})")
    meta = json.loads((path / META_FILE).read_text())
    if meta.get("format") != FORMAT:
        raise ConfigError(f"{path}: artefact format {meta.get('format')!r}; this version reads {FORMAT}")
    scale = None if meta["obs_scale"] is None else np.asarray(meta["obs_scale"], np.float32)
    policy = make_policy(_policy_config(meta["policy"]), tuple(meta["obs_shape"]),
                         meta["num_actions"], scale, np.dtype(meta["obs_dtype"]))
    # Names, shapes and dtypes are all the strict transfer reads: no initialisation is run.
    shapes = jax.eval_shape(policy.init, jax.random.PRNGKey(0), jax.ShapeDtypeStruct(
        (1, *meta["obs_shape"]), np.dtype(meta["obs_dtype"])))
    template = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    saved = serialization.msgpack_restore((path / PARAMS_FILE).read_bytes())
    params, _ = transfer(template, saved)
    return LoadedPolicy(policy, params, meta)


@dataclasses.dataclass
class TransferReport:
    loaded: list[str]
    missing: list[str]  # in the target, not in the source: keep their fresh values
    unexpected: list[str]  # in the source, not in the target
    mismatched: list[str]  # in both, different shapes: "name: source shape -> target shape"

    def lines(self) -> list[str]:
        out = [f"loaded {len(self.loaded)} parameter arrays"]
        for title, names in (("missing (kept fresh)", self.missing),
                             ("unexpected (ignored)", self.unexpected),
                             ("shape mismatch", self.mismatched)):
            if names:
                out.append(f"{title}: {', '.join(names)}")
        return out


def _flat(tree) -> dict[str, Any]:
    if isinstance(tree, dict) and not tree:
        return {}
    return {"/".join(map(str, k)): v for k, v in
            traverse_util.flatten_dict(serialization.to_state_dict(tree)).items()}


def transfer(target, source, allow: Sequence[str] = ()) -> tuple[Any, TransferReport]:
    """``target``'s tree with every parameter of the same name and shape taken from ``source``.

    Raises ``ConfigError`` naming the offending parameters when any is missing, unexpected or
    reshaped, unless each matches one of the ``allow`` glob patterns (e.g. ``"*/critic_out/*"``).
    """
    tgt, src = _flat(target), _flat(source)
    report = TransferReport([], [], [], [])
    out = dict(tgt)
    for name, value in tgt.items():
        if name not in src:
            report.missing.append(name)
        elif np.shape(src[name]) != np.shape(value):
            report.mismatched.append(f"{name}: {np.shape(src[name])} -> {np.shape(value)}")
        else:
            out[name] = jnp.asarray(src[name], jnp.asarray(value).dtype)
            report.loaded.append(name)
    report.unexpected = sorted(set(src) - set(tgt))
    allowed = lambda n: any(fnmatch.fnmatch(n.split(":")[0], pat) for pat in allow)
    bad = [n for n in report.missing + report.unexpected + report.mismatched if not allowed(n)]
    if bad:
        raise ConfigError(f"parameter transfer refused: {len(bad)} of {len(tgt)} names do not "
                          f"match ({'; '.join(bad[:6])}{' ...' if len(bad) > 6 else ''}); allow "
                          "them by name with run.init_from_allow if that is intended")
    nested = traverse_util.unflatten_dict({tuple(k.split("/")): v for k, v in out.items()})
    return serialization.from_state_dict(target, nested), report


def restore_run_params(directory, env=None) -> tuple[Any, Any, Any, int]:
    """``(config, program, params of the first run, update)`` of the latest checkpoint in a run
    directory, restored onto one device. ``program`` is the run's ``train.TrainProgram``, or for
    a behaviour-cloning run (``jaxrl_arena.bc``; ``update`` counts its epochs) its
    ``bc.BCProgram``: both carry the run's ``env`` and ``policy``. ``env``: the run's env when
    the registry cannot build it from the saved config (an env made in code; BC runs are N++
    runs, always built from their config)."""
    from jaxrl_arena import config as config_lib
    from jaxrl_arena.checkpoint import Checkpointer
    from jaxrl_arena.train import make_train

    directory = Path(directory)
    if not (directory / "config.json").exists():
        raise FileNotFoundError(f"{directory}: no config.json (not a run directory)")
    saved = json.loads((directory / "config.json").read_text())
    resolved = saved.pop("_resolved", None) or {}
    run_cfg = config_lib.from_dict(saved)
    if resolved.get("trainer") == "bc":
        from jaxrl_arena.bc import restore_bc_run

        program, params, epoch = restore_bc_run(directory, run_cfg)
        return run_cfg, program, params, epoch
    with Checkpointer(directory / "checkpoints") as checkpoints:
        if checkpoints.latest_step() is None:
            raise FileNotFoundError(f"{directory}: no checkpoint to load")
        device = jax.devices()[0]
        # Per-device leaves (the pooled reset pool) need the saved device count when present.
        saved_devices = int(resolved.get("devices") or 1)
        devices = jax.devices()[:saved_devices] if len(jax.devices()) >= saved_devices else [device]
        program = make_train(run_cfg, env=env, ab=resolved.get("ab") or None, devices=devices)
        one = jax.sharding.SingleDeviceSharding(device)
        target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=one),
                              jax.eval_shape(program.init))
        state, _, step = checkpoints.restore(target)
    return run_cfg, program, jax.tree.map(lambda x: x[0], state.params), int(step)


def export_run(directory, path, env=None) -> Path:
    """The artefact of a run directory's latest checkpoint (its first seed)."""
    run_cfg, program, params, step = restore_run_params(directory, env)
    return save_policy(path, run_cfg.policy, params, program.env,
                       source=f"{Path(directory)} at update {step}")


def source_params(path, env=None) -> tuple[Any, str]:
    """Parameters of an artefact or of a run directory's latest checkpoint, and a label."""
    path = Path(path)
    if (path / META_FILE).exists():
        return load_policy(path).params, f"artefact {path}"
    _, _, params, step = restore_run_params(path, env)
    return params, f"run {path} at update {step}"


def init_params_from(state_params, path, allow: Sequence[str] = (),
                     print_fn: Callable[[str], None] = print, env=None):
    """Train-state parameters (leading run axis) with every run starting from ``path``'s
    parameters (strict ``transfer``); prints the report. Without ``allow`` patterns the
    transfer is full, and the placed parameters are checked element for element against the
    source. ``env``: as ``restore_run_params``."""
    source, label = source_params(path, env)
    one = jax.tree.map(lambda x: x[0], state_params)
    params, report = transfer(one, source, allow)
    print_fn(f"run.init_from {label}: " + "; ".join(report.lines()))
    placed = jax.tree.map(
        lambda x, ref: jax.device_put(jnp.broadcast_to(x[None], ref.shape).astype(ref.dtype),
                                      ref.sharding), params, state_params)
    if not allow:
        jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a)[0], b),
                     jax.device_get(placed), jax.device_get(source))
    return placed
