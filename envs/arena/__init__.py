"""The Era-B (converter era) MettaGrid arena in pure JAX. Spec: docs/specs/arena.md."""

from envs.arena.ascii_map import from_ascii
from envs.arena.env import ArenaEnv
from envs.arena.state import EnvParams, EnvState, make_params

ArenaParams = EnvParams
ArenaState = EnvState

__all__ = [
    "ArenaEnv",
    "ArenaParams",
    "ArenaState",
    "EnvParams",
    "EnvState",
    "from_ascii",
    "make_params",
]
