"""Environment names → instances. ``make(name, env_cfg)`` knows every gymnax env and this
project's envs (``arena``)."""

from __future__ import annotations

from typing import Any

from envs.base import MultiAgentEnv

PROJECT_ENVS = ("arena",)


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

    max_steps = int(env_cfg.max_steps or 1000)
    env = ArenaEnv(num_agents=int(env_cfg.num_agents or 24), obs_kind=env_cfg.obs_kind,
                   max_steps=max_steps)
    params = make_params(easy_altar=env_cfg.easy_altar, shaped_rewards=env_cfg.shaped_rewards,
                         combat=env_cfg.combat, max_steps=max_steps,
                         desync_episodes=env_cfg.desync_episodes)
    name = "arena/" + ("combat" if env_cfg.combat else "basic")
    env.named_tasks = lambda: {name: params}
    return env
