"""Environment names -> instances: the binding of the config's env sections to the envs.

``make(cfg)`` builds ``cfg.env.name``: every gymnax env and this project's envs (``arena``,
``npp``). The envs themselves know nothing of the config: each takes constructor arguments,
and this module is the one place that reads ``env``, ``arena`` and ``npp`` for them.

Section marks (§) cite docs/specs/arena.md.
"""

from __future__ import annotations

import types

from envs.base import MultiAgentEnv
from jaxrl_arena.config import Config, ConfigError

PROJECT_ENVS = ("arena", "npp")


def gymnax_names() -> list[str]:
    import gymnax

    return list(gymnax.registered_envs)


def make(cfg: Config) -> MultiAgentEnv:
    """Build ``cfg.env.name``; unknown names raise one line listing what exists."""
    name = cfg.env.name
    if name == "arena":
        return make_arena(cfg)
    if name == "npp":
        return make_npp(cfg)
    if name in gymnax_names():
        import gymnax

        from envs.gymnax_adapter import GymnaxAdapter

        env, params = gymnax.make(name)
        from gymnax.environments import spaces

        if not isinstance(env.action_space(params), spaces.Discrete):
            raise ConfigError(f"env.name={name} has a continuous action space; the trainer's "
                              "policies act in discrete spaces (e.g. CartPole-v1, Acrobot-v1)")
        return GymnaxAdapter(env, params, max_steps=int(cfg.env.max_steps or 0))
    known = list(PROJECT_ENVS) + gymnax_names()
    raise ConfigError(f"unknown env {name!r}; known envs: {', '.join(known)}")


def make_arena(cfg: Config) -> MultiAgentEnv:
    """The Era-B arena; the ``arena`` task switches become the env's single named task and
    its evaluation suites (§12.1)."""
    from envs.arena import ArenaEnv

    env_cfg, arena = cfg.env, cfg.arena
    if env_cfg.obs_kind not in ("dense", "tokens"):
        raise ConfigError(f"env.obs_kind={env_cfg.obs_kind!r} is not an arena observation; "
                          "allowed: dense, tokens")
    return ArenaEnv(num_agents=int(env_cfg.num_agents or 24), obs_kind=env_cfg.obs_kind,
                    max_steps=int(env_cfg.max_steps or 1000), easy_altar=arena.easy_altar,
                    shaped_rewards=arena.shaped_rewards, combat=arena.combat,
                    desync_episodes=arena.desync_episodes)


def npp_max_frames(cfg: Config) -> int:
    """The N++ episode limit in frames: ``npp.max_frames``, or ``env.max_steps`` agent steps
    of ``npp.frame_skip`` frames; 0 keeps the env's own. Both set is refused (two limits)."""
    steps, frames = cfg.env.max_steps, cfg.npp.max_frames
    if steps and frames:
        raise ConfigError(f"env.max_steps={steps} (agent steps) and npp.max_frames={frames} "
                          "(frames) both limit N++ episodes; set one of them to 0")
    return steps * cfg.npp.frame_skip if steps else frames


def npp_reward_weights(cfg: Config) -> dict[str, float]:
    """``npp.reward_<name>`` -> the env's reward weights (``envs.npp.rewards.RewardWeights``)."""
    n = cfg.npp
    return {"win": n.reward_win, "death": n.reward_death, "switch": n.reward_switch,
            "time": n.reward_time, "nav": n.reward_nav, "explore": n.reward_explore,
            "pbrs": n.reward_pbrs, "gamma": n.reward_pbrs_gamma, "geo": n.reward_geo}


def make_npp(cfg: Config) -> MultiAgentEnv:
    """N++ on generated levels; ``npp.stage`` restricts the tasks to one curriculum stage."""
    from envs.npp.env import make_npp_env
    from envs.npp.generators import STAGE_ORDER

    obs_kind, stage = cfg.env.obs_kind, cfg.npp.stage
    if obs_kind not in ("state", "state_local", "grid"):
        raise ConfigError(f"env.obs_kind={obs_kind!r} is not an N++ observation; "
                          "allowed: state, state_local, grid")
    if stage and stage not in STAGE_ORDER:
        raise ConfigError(f"npp.stage={stage!r} is not an N++ stage; allowed: "
                          f"{', '.join(STAGE_ORDER)}")
    # make_npp_env reads ``max_steps`` as its frame limit. Generated levels only (the "mixed"
    # source would also trace the fixed-level path).
    weights = npp_reward_weights(cfg)
    options = {"obs_kind": obs_kind, "frame_skip": cfg.npp.frame_skip,
               "max_steps": npp_max_frames(cfg), "level_source": "generator",
               "npp_stage": stage or None, "task_stages": (stage,) if stage else None,
               "geodesic": weights["geo"] != 0.0,
               **{f"reward_{name}": value for name, value in weights.items()}}
    return make_npp_env(types.SimpleNamespace(**options))
