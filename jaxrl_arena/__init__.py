"""jaxrl_arena: JAX-native multi-agent RL — one-scan PPO, compiled curricula, pure-JAX envs."""

__version__ = "0.1.0"
