"""Dotted keys over the config schema: ``key=value`` overrides, lookups, and saved configs.

Every field has a type annotation; overrides are parsed to that type (ints with ``_``, floats,
bools, tuples, enums as ``Literal``, ``auto`` where the field allows it). Mistakes raise
:class:`ConfigError` with a single line naming the bad key or value and what is allowed. A key
that moved to another section (``MOVED_KEYS``) is refused with the line naming its new place;
saved configs that still use it are translated when read (:func:`migrate`).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import types
import typing
from typing import Any, Literal, Union

from jaxrl_arena.config.schema import Config, ConfigError

# Keys that moved out of a section, old -> new: one meaning per key, so the env-specific ones
# left ``env``. An N++ run's ``env.max_steps`` (frames before the ``npp`` section existed) also
# moved, to ``npp.max_frames``; ``env.max_steps`` itself stays, in agent steps (see migrate).
MOVED_KEYS = {
    "env.combat": "arena.combat",
    "env.easy_altar": "arena.easy_altar",
    "env.shaped_rewards": "arena.shaped_rewards",
    "env.desync_episodes": "arena.desync_episodes",
    "env.stage": "npp.stage",
}


# ----------------------------------------------------------------------------- key paths
def _fields(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def all_keys(cfg: Any = Config) -> list[str]:
    """Every dotted leaf key of the config tree."""
    cls = cfg if isinstance(cfg, type) else type(cfg)
    keys = []
    for name, tp in _fields(cls).items():
        if dataclasses.is_dataclass(tp):
            keys += [f"{name}.{k}" for k in all_keys(tp)]
        else:
            keys.append(name)
    return keys


def get(cfg: Any, key: str) -> Any:
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


def _field_type(key: str) -> Any:
    cls: Any = Config
    parts = key.split(".")
    for part in parts[:-1]:
        cls = _fields(cls)[part]
    return _fields(cls)[parts[-1]]


def replace(cfg: Any, key: str, value: Any) -> Any:
    """Functional update of one dotted key."""
    head, _, rest = key.partition(".")
    if not rest:
        return dataclasses.replace(cfg, **{head: value})
    return dataclasses.replace(cfg, **{head: replace(getattr(cfg, head), rest, value)})


# ----------------------------------------------------------------------------- parsing
def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"a comma-separated tuple of {_type_name(typing.get_args(tp)[0])}"
    return {int: "an int", float: "a float", bool: "a bool (true/false)", str: "a string",
            type(None): "none"}.get(tp, str(tp))


def _parse_scalar(text: str, tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin is Literal:
        for allowed in typing.get_args(tp):
            if text == str(allowed):
                return allowed
        raise ValueError
    if origin in (Union, types.UnionType):
        for option in typing.get_args(tp):
            try:
                return _parse_scalar(text, option)
            except ValueError:
                continue
        raise ValueError
    if origin is tuple:
        (item_tp, *_) = typing.get_args(tp)
        body = text.strip().strip("()[]")
        if not body:
            return ()
        return tuple(_parse_scalar(item.strip(), item_tp) for item in body.split(",") if item.strip())
    if tp is type(None):
        if text.lower() in ("none", "null", "default"):
            return None
        raise ValueError
    if tp is bool:
        lowered = text.lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise ValueError
    if tp is int:
        value = float(text.replace("_", "")) if "e" in text.lower() else int(text.replace("_", ""))
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError
            value = int(value)
        return value
    if tp is float:
        value = float(text.replace("_", ""))
        return value
    if tp is str:
        return text
    raise ValueError


def parse_value(key: str, text: str) -> Any:
    tp = _field_type(key)
    try:
        return _parse_scalar(text, tp)
    except (ValueError, TypeError):
        raise ConfigError(
            f"bad value {text!r} for {key}: expected {_type_name(tp)}"
        ) from None


def check_key(key: str, keys: list[str] | None = None) -> None:
    if key in MOVED_KEYS:
        raise ConfigError(f"{key} moved to {MOVED_KEYS[key]}")
    keys = all_keys() if keys is None else keys
    if key in keys:
        return
    close = difflib.get_close_matches(key, keys, n=3, cutoff=0.5)
    if not close:
        # Also match on the last component ("lr" -> "ppo.lr").
        close = [k for k in keys if k.split(".")[-1] == key.split(".")[-1]][:3]
    hint = f"; did you mean {', '.join(close)}?" if close else f"; valid sections: {', '.join(f.name for f in dataclasses.fields(Config))}"
    raise ConfigError(f"unknown config key {key!r}{hint}")


def split_override(item: str) -> tuple[str, str]:
    if "=" not in item:
        raise ConfigError(f"bad override {item!r}: expected dotted.key=value")
    key, value = item.split("=", 1)
    return key.strip(), value.strip()


def apply_overrides(cfg: Config, items: list[str]) -> Config:
    keys = all_keys()
    for item in items:
        key, text = split_override(item)
        check_key(key, keys)
        cfg = replace(cfg, key, parse_value(key, text))
    return cfg


# ----------------------------------------------------------------------------- (de)serialise
def to_dict(cfg: Any) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    """A saved config (``config.json``, checkpoint metadata) in the current layout, so runs
    written before a key moved still resume and load: each ``MOVED_KEYS`` entry goes to its
    new section, and in a dict without an ``npp`` section (written when ``env.max_steps``
    counted N++ frames) an N++ run's ``env.max_steps`` becomes ``npp.max_frames``. A dict
    already in the current layout comes back equal; the argument is not modified."""
    data = copy.deepcopy(data)
    frames_in_env = "npp" not in data
    for old, new in MOVED_KEYS.items():
        (old_section, old_name), (new_section, new_name) = old.split("."), new.split(".")
        section = data.get(old_section)
        if isinstance(section, dict) and old_name in section:
            data.setdefault(new_section, {})[new_name] = section.pop(old_name)
    env = data.get("env")
    if frames_in_env and isinstance(env, dict) and env.get("name") == "npp" and env.get("max_steps"):
        data.setdefault("npp", {})["max_frames"] = env["max_steps"]
        env["max_steps"] = 0
    return data


def from_dict(data: dict[str, Any], cls: Any = Config, _path: str = "") -> Any:
    """The config a dict of :func:`to_dict` describes; a whole ``Config`` is read through
    :func:`migrate` (saved configs of older layouts). A key the schema lacks is an error
    naming it (a misspelt knob must not load as its default); ``_``-keys are metadata."""
    if cls is Config:
        data = migrate(data)
    fields = _fields(cls)
    # Keys starting with "_" are metadata saved beside a config (config.json's "_resolved").
    unknown = sorted(k for k in set(data) - set(fields) if not k.startswith("_"))
    if unknown:
        raise ConfigError(f"unknown config key {_path}{unknown[0]}"
                          f"{f' (and {len(unknown) - 1} more)' if len(unknown) > 1 else ''}; "
                          f"{f'keys of {_path[:-1]}' if _path else 'top-level keys'}: "
                          f"{', '.join(fields)}")
    kwargs = {}
    for name, tp in fields.items():
        if name not in data:
            continue
        value = data[name]
        if dataclasses.is_dataclass(tp):
            value = from_dict(value, tp, f"{_path}{name}.")
        elif isinstance(value, list) and any(
                typing.get_origin(t) is tuple for t in (tp, *typing.get_args(tp))):
            value = tuple(value)  # JSON has lists; tuple and tuple | None fields hold tuples
        kwargs[name] = value
    return cls(**kwargs)


def flat(cfg: Any) -> dict[str, Any]:
    return {key: get(cfg, key) for key in all_keys(cfg)}


def diff(a: Config, b: Config) -> dict[str, tuple[Any, Any]]:
    fa, fb = flat(a), flat(b)
    return {k: (fa[k], fb[k]) for k in fa if fa[k] != fb[k]}
