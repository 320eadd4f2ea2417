"""Timing helpers shared by the benchmark scripts (METHOD.md: warm up, block, take medians).

Imported, not run: ``from experiments.benchmarking import median_seconds`` (each script in
``experiments/`` puts the repository root on ``sys.path`` first).
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp


def compile_chunk(program, length: int, state) -> tuple[Any, float]:
    """The compiled train chunk of ``length`` updates and its compile time in seconds."""
    t0 = time.perf_counter()
    executable = program.chunk_for(length).lower(state).compile()
    return executable, time.perf_counter() - t0


def median_chunk_seconds(chunk: Callable, state, repeats: int) -> float:
    """Median seconds of ``chunk(state) -> (state, metrics)`` after a warm-up call. The chunk
    donates its state, so it runs on a copy (the caller's ``state`` stays valid) and each call
    is fed the state the previous one returned."""
    state = jax.tree.map(jnp.copy, state)
    state, metrics = chunk(state)
    jax.block_until_ready(metrics)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        state, metrics = chunk(state)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def median_seconds(fn: Callable, args: tuple, repeats: int) -> float:
    """Median seconds of ``fn(*args)`` (not donating) after a warm-up call."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
