"""Environment names → instances. ``make(name)`` knows every gymnax env and this project's envs."""

from __future__ import annotations

from typing import Any

from envs.base import MultiAgentEnv


def gymnax_names() -> list[str]:
    import gymnax

    return list(gymnax.registered_envs)


def project_names() -> list[str]:
    return []


def make(name: str, **kwargs: Any) -> MultiAgentEnv:
    """Build an environment by name; unknown names raise one line listing what exists."""
    if name in gymnax_names():
        import gymnax

        from envs.gymnax_adapter import GymnaxAdapter

        env, params = gymnax.make(name)
        return GymnaxAdapter(env, params, max_steps=int(kwargs.get("max_steps", 0) or 0))
    known = project_names() + gymnax_names()
    raise ValueError(f"unknown env {name!r}; known envs: {', '.join(known)}")
