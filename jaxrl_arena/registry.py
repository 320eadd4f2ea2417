"""Environment names -> instances: the binding of the config's ``env`` section to the envs.

``make(name, env_cfg)`` knows every gymnax env and this project's envs (``arena``, ``npp``).
The envs themselves know nothing of the config: each takes constructor arguments, and this
module is the one place that reads ``EnvConfig`` fields for them.

Section marks (§) cite docs/specs/arena.md.
"""

from __future__ import annotations

import types

from envs.base import MultiAgentEnv
from jaxrl_arena.config import ConfigError, EnvConfig

PROJECT_ENVS = ("arena", "npp")


def gymnax_names() -> list[str]:
    import gymnax

    return list(gymnax.registered_envs)


def make(name: str, env_cfg: EnvConfig | None = None) -> MultiAgentEnv:
    """Build an environment by name; unknown names raise one line listing what exists."""
    env_cfg = EnvConfig(name=name) if env_cfg is None else env_cfg
    if name == "arena":
        return make_arena(env_cfg)
    if name == "npp":
        return make_npp(env_cfg)
    if name in gymnax_names():
        import gymnax

        from envs.gymnax_adapter import GymnaxAdapter

        env, params = gymnax.make(name)
        return GymnaxAdapter(env, params, max_steps=int(env_cfg.max_steps or 0))
    known = list(PROJECT_ENVS) + gymnax_names()
    raise ConfigError(f"unknown env {name!r}; known envs: {', '.join(known)}")


def make_arena(env_cfg: EnvConfig) -> MultiAgentEnv:
    """The Era-B arena; the config's task switches become the env's single named task and
    its evaluation suites (§12.1)."""
    from envs.arena import ArenaEnv

    if env_cfg.obs_kind not in ("dense", "tokens"):
        raise ConfigError(f"env.obs_kind={env_cfg.obs_kind!r} is not an arena observation; "
                          "allowed: dense, tokens")
    return ArenaEnv(num_agents=int(env_cfg.num_agents or 24), obs_kind=env_cfg.obs_kind,
                    max_steps=int(env_cfg.max_steps or 1000), easy_altar=env_cfg.easy_altar,
                    shaped_rewards=env_cfg.shaped_rewards, combat=env_cfg.combat,
                    desync_episodes=env_cfg.desync_episodes)


def make_npp(env_cfg: EnvConfig) -> MultiAgentEnv:
    """N++ on generated levels; ``env.stage`` restricts the tasks to one curriculum stage."""
    import dataclasses

    from envs.npp.env import make_npp_env
    from envs.npp.generators import STAGE_ORDER

    if env_cfg.obs_kind not in ("state", "state_local", "grid"):
        raise ConfigError(f"env.obs_kind={env_cfg.obs_kind!r} is not an N++ observation; "
                          "allowed: state, state_local, grid")
    if env_cfg.stage and env_cfg.stage not in STAGE_ORDER:
        raise ConfigError(f"env.stage={env_cfg.stage!r} is not an N++ stage; allowed: "
                          f"{', '.join(STAGE_ORDER)}")
    # Generated levels only (the "mixed" source would also trace the fixed-level path).
    options = {**dataclasses.asdict(env_cfg), "level_source": "generator",
               "npp_stage": env_cfg.stage or None,
               "task_stages": (env_cfg.stage,) if env_cfg.stage else None}
    return make_npp_env(types.SimpleNamespace(**options))
