"""Environment names → instances. ``make(name, env_cfg)`` knows every gymnax env and this
project's envs (``arena``).

Section marks (§) cite docs/specs/arena.md.
"""

from __future__ import annotations

import types
from typing import Any

from envs.base import MultiAgentEnv

PROJECT_ENVS = ("arena", "npp")


def gymnax_names() -> list[str]:
    import gymnax

    return list(gymnax.registered_envs)


def make(name: str, env_cfg: Any = None) -> MultiAgentEnv:
    """Build an environment by name; unknown names raise one line listing what exists.

    ``env_cfg`` is the config's ``env`` section (``jaxrl_arena.config.EnvConfig``) or None
    for defaults.
    """
    if env_cfg is None:
        from jaxrl_arena.config import EnvConfig

        env_cfg = EnvConfig(name=name)
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
    from jaxrl_arena.config import ConfigError

    raise ConfigError(f"unknown env {name!r}; known envs: {', '.join(known)}")


def make_arena(env_cfg: Any) -> MultiAgentEnv:
    """The Era-B arena; the config's task switches become the env's single named task."""
    from envs.arena import ArenaEnv, make_params

    if env_cfg.obs_kind not in ("dense", "tokens"):
        from jaxrl_arena.config import ConfigError

        raise ConfigError(f"env.obs_kind={env_cfg.obs_kind!r} is not an arena observation; "
                          "allowed: dense, tokens")
    max_steps = int(env_cfg.max_steps or 1000)
    env = ArenaEnv(num_agents=int(env_cfg.num_agents or 24), obs_kind=env_cfg.obs_kind,
                   max_steps=max_steps)
    params = make_params(easy_altar=env_cfg.easy_altar, shaped_rewards=env_cfg.shaped_rewards,
                         combat=env_cfg.combat, max_steps=max_steps,
                         desync_episodes=env_cfg.desync_episodes)
    name = "arena/" + ("combat" if env_cfg.combat else "basic")
    env.named_tasks = lambda: {name: params}

    def eval_sets(episodes: int, seed: int):
        """The evaluation suites of arena.md §12.1 on the un-bucketed env: ``arena/basic``
        (attack cost 100) and ``arena/combat`` (cost 1), with this config's altar and reward
        switches, no desync; the maps come from the evaluator's fixed reset keys."""
        from jaxrl_arena.evaluation import repeat_params

        suites = {}
        for suite, combat in (("arena/basic", False), ("arena/combat", True)):
            p = make_params(easy_altar=env_cfg.easy_altar, shaped_rewards=env_cfg.shaped_rewards,
                            combat=combat, max_steps=max_steps, desync_episodes=False)
            suites[suite] = repeat_params(p, episodes)
        return env, suites

    env.eval_sets = eval_sets
    return env


def make_npp(env_cfg: Any) -> MultiAgentEnv:
    """N++ on generated levels; ``env.stage`` restricts the tasks to one curriculum stage."""
    import dataclasses

    from envs.npp.env import make_npp_env

    if env_cfg.obs_kind not in ("state", "state_local", "grid"):
        from jaxrl_arena.config import ConfigError

        raise ConfigError(f"env.obs_kind={env_cfg.obs_kind!r} is not an N++ observation; "
                          "allowed: state, state_local, grid")
    from envs.npp.generators import STAGE_ORDER

    if env_cfg.stage and env_cfg.stage not in STAGE_ORDER:
        from jaxrl_arena.config import ConfigError

        raise ConfigError(f"env.stage={env_cfg.stage!r} is not an N++ stage; allowed: "
                          f"{', '.join(STAGE_ORDER)}")
    # Generated levels only (the "mixed" source would also trace the fixed-level path).
    options = {**dataclasses.asdict(env_cfg), "level_source": "generator",
               "npp_stage": env_cfg.stage or None}
    env = make_npp_env(types.SimpleNamespace(**options))
    stages = env.named_tasks()
    if env_cfg.stage:
        only = {env_cfg.stage: stages[env_cfg.stage]}
        env.named_tasks = lambda: only
    return env
