"""Typed configuration, split by concern; this package re-exports the public names.

``schema`` (the frozen dataclasses, ``ConfigError``), ``overrides`` (dotted keys,
``key=value`` parsing, saved configs), ``recipes`` (named configs), ``validation``
(consistency checks and the keys an env and its devices resolve).
"""

from jaxrl_arena.config.overrides import (
    MOVED_KEYS,
    all_keys,
    apply_overrides,
    check_key,
    diff,
    flat,
    from_dict,
    get,
    migrate,
    parse_value,
    replace,
    split_override,
    to_dict,
)
from jaxrl_arena.config.recipes import RECIPES, describe, get_recipe, recipe
from jaxrl_arena.config.schema import (
    ArenaConfig,
    Auto,
    BCConfig,
    CheckpointConfig,
    Config,
    ConfigError,
    CurriculumConfig,
    EnvConfig,
    EvalConfig,
    LoggingConfig,
    NppConfig,
    PolicyConfig,
    PPOConfig,
    RunConfig,
)
from jaxrl_arena.config.validation import (
    ENV_SECTIONS,
    pending,
    resolve_minibatches,
    resolve_reset_strategy,
    resolve_static,
    validate,
)

__all__ = [
    "ENV_SECTIONS", "MOVED_KEYS", "RECIPES", "ArenaConfig", "Auto", "BCConfig",
    "CheckpointConfig", "Config", "ConfigError", "CurriculumConfig", "EnvConfig", "EvalConfig",
    "LoggingConfig", "NppConfig", "PPOConfig", "PolicyConfig", "RunConfig", "all_keys",
    "apply_overrides", "check_key", "describe", "diff", "flat", "from_dict", "get", "get_recipe", "migrate",
    "parse_value", "pending", "recipe", "replace", "resolve_minibatches",
    "resolve_reset_strategy", "resolve_static", "split_override", "to_dict", "validate",
]
