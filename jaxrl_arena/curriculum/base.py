"""The curriculum interface, its shared helpers, and uniform sampling over tasks.

A curriculum owns a fixed-shape state that lives in the train state (checkpointed with it)
and three pure functions the compiled update calls:

* ``sample(state, keys) -> int32[n]``: task ids for ``n`` episodes about to start, one
  key each (so a sample does not depend on how envs are split over devices);
* ``task_params(task_ids) -> params``: the env parameters of those tasks (data, so task
  changes never recompile);
* ``update(state, outcomes, axis_name) -> state``: once per update, with the outcomes of
  every episode that finished in the rollout, each credited to the task id stored in its
  env state by the reset that built it (never the task the env will play next).

``metrics(state)`` returns scalars, plus per-task vectors under ``task_reward/rewards.mean``
that the host expands to ``task_reward/<task>/rewards.mean`` for named tasks.

Section marks (§) cite docs/specs/arena.md.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct


@struct.dataclass
class EpisodeOutcomes:
    """Finished-episode records of one rollout, flattened over time and envs."""

    task_id: jax.Array  # int32[M]
    done: jax.Array  # bool[M]: the row is a finished episode
    score: jax.Array  # float32[M]: the episode's return (mean over agents)
    # float32[M] in [0, 1]: the env's own success flag (``episode_stats()["success"]``, e.g.
    # N++ wins), or None when the env has none.
    success: jax.Array | None = None


@struct.dataclass
class UniformState:
    episodes: jax.Array  # int32[num_tasks], cumulative finished episodes per task
    last_score: jax.Array  # float32[num_tasks], mean score of the last update (NaN: none)


class Curriculum:
    num_tasks: int
    task_names: tuple[str, ...]

    def init(self, key: jax.Array | None = None) -> Any:
        """Fresh state; ``key`` is the run's curriculum key (None: the config's seed only)."""
        raise NotImplementedError

    def sample(self, state, keys: jax.Array) -> jax.Array:
        raise NotImplementedError

    def task_params(self, task_ids: jax.Array) -> Any:
        raise NotImplementedError

    def update(self, state, outcomes: EpisodeOutcomes, axis_name: str | None = None):
        raise NotImplementedError

    def metrics(self, state) -> dict[str, jax.Array]:
        return {}

    def shared_params(self) -> Any:
        """The env parameters when every task has the same ones (rollouts then treat them as
        constants), else None."""
        return None


def shared_row(table) -> Any:
    """Row 0 of a task-parameter table (leaves ``[num_tasks, ...]``) if every row equals it."""
    leaves = [np.asarray(x) for x in jax.tree.leaves(table)]
    if all(np.array_equal(x, x[:1].repeat(len(x), 0)) for x in leaves):
        return jax.tree.map(lambda x: jnp.asarray(x[0]), table)
    return None


def per_task_sums(outcomes: EpisodeOutcomes, num_tasks: int, axis_name: str | None):
    """Episodes and score sums per task: segment sums, O(M + num_tasks), psum'd over devices."""
    ids = jnp.where(outcomes.done, outcomes.task_id, num_tasks)  # non-episodes to a spare bin
    counts = jax.ops.segment_sum(jnp.ones_like(ids, jnp.int32), ids, num_tasks + 1)[:num_tasks]
    scores = jax.ops.segment_sum(
        jnp.where(outcomes.done, outcomes.score, 0.0), ids, num_tasks + 1
    )[:num_tasks]
    if axis_name is not None:
        counts, scores = jax.lax.psum((counts, scores), axis_name)
    return counts, scores


class UniformCurriculum(Curriculum):
    """Uniform sampling over a fixed list of named tasks (the default: one task)."""

    def __init__(self, tasks: dict[str, Any]):
        if not tasks:
            raise ValueError("a curriculum needs at least one task")
        self.task_names = tuple(tasks)
        self.num_tasks = len(tasks)
        self._table = jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]),
                                   *tasks.values())

    def init(self, key: jax.Array | None = None) -> UniformState:
        return UniformState(
            episodes=jnp.zeros(self.num_tasks, jnp.int32),
            last_score=jnp.full(self.num_tasks, jnp.nan, jnp.float32),
        )

    def sample(self, state, keys):
        draw = lambda k: jax.random.randint(k, (), 0, self.num_tasks, dtype=jnp.int32)
        return jax.vmap(draw)(keys)

    def task_params(self, task_ids):
        return jax.tree.map(lambda table: table[task_ids], self._table)

    def shared_params(self):
        return shared_row(self._table)

    def update(self, state, outcomes, axis_name=None):
        counts, scores = per_task_sums(outcomes, self.num_tasks, axis_name)
        mean = jnp.where(counts > 0, scores / jnp.maximum(counts, 1), jnp.nan)
        return UniformState(episodes=state.episodes + counts, last_score=mean)

    def metrics(self, state):
        return {
            "curriculum/num_tasks": jnp.asarray(self.num_tasks, jnp.float32),
            "curriculum/total_episodes": state.episodes.sum().astype(jnp.float32),
            "task_reward/rewards.mean": state.last_score,
        }


@struct.dataclass
class SpaceUniformState:
    episodes: jax.Array  # int32: cumulative finished episodes
    last_score: jax.Array  # float32: mean score of the last update's episodes (NaN: none)


class UniformSpaceCurriculum(Curriculum):
    """Uniform sampling over a whole generated task space (e.g. the arena's 640,000 bucketed
    tasks): the baseline that learning progress over the same space is compared against."""

    def __init__(self, space):
        self.space = space
        self.num_tasks = int(space.num_tasks)
        self.task_names = ()  # too many to name; metrics are aggregates

    def init(self, key: jax.Array | None = None) -> SpaceUniformState:
        return SpaceUniformState(episodes=jnp.zeros((), jnp.int32),
                                 last_score=jnp.full((), jnp.nan, jnp.float32))

    def sample(self, state, keys):
        draw = lambda k: jax.random.randint(k, (), 0, self.num_tasks, dtype=jnp.int32)
        return jax.vmap(draw)(keys)

    def task_params(self, task_ids):
        return self.space.params(task_ids)

    def update(self, state, outcomes, axis_name=None):
        counts, scores = per_task_sums(outcomes.replace(task_id=jnp.zeros_like(outcomes.task_id)),
                                       1, axis_name)
        mean = jnp.where(counts[0] > 0, scores[0] / jnp.maximum(counts[0], 1), jnp.nan)
        return SpaceUniformState(episodes=state.episodes + counts[0], last_score=mean)

    def metrics(self, state):
        return {
            "curriculum/num_tasks": jnp.asarray(self.num_tasks, jnp.float32),
            "curriculum/total_episodes": state.episodes.astype(jnp.float32),
            "curriculum/mean_score": state.last_score,
        }
