"""``make_curriculum(cfg, env)``: the curriculum a config names, over the tasks the env declares.

The knob tables hold the spec's defaults (docs/specs/arena.md §12, npp.md §10.1); a config field
left at None takes them.
"""

from __future__ import annotations

from jaxrl_arena.curriculum.base import Curriculum, UniformCurriculum, UniformSpaceCurriculum
from jaxrl_arena.curriculum.learning_progress import LearningProgressCurriculum
from jaxrl_arena.curriculum.staged import MIX_EDGES, MIX_PROBS, StagedCurriculum
from jaxrl_arena.config import ConfigError


def _knobs(c, names_defaults: dict) -> dict:
    """Curriculum knobs from ``cfg.curriculum``: a field set to None takes this kind's default
    (e.g. ``score_max`` is 1.0 for named tasks and the task space's own for ``arena_lp``)."""
    out = {}
    for name, default in names_defaults.items():
        value = getattr(c, name)
        out[name] = default if value is None else value
    return out


LP_KNOBS = dict(ema_timescale=0.001, progress_smoothing=0.05, num_active_tasks=16,
                rand_task_rate=0.25, sample_threshold=10, memory=25, min_outcomes=None,
                explore_rate=0.2, explore_boost=2.0, score_min=0.0, score_max=1.0, seed=0)
POOL_KNOBS = dict(pool_size=256, evict_per_update=1, evict_min_outcomes=None)
STAGED_MIX = dict(mix_edges=MIX_EDGES, mix_probs=MIX_PROBS)
STAGED_KNOBS = dict(window=50, check_every=10, early_threshold=0.90, early_min_episodes=50,
                    regression_min_episodes=200, success_score=0.5)
# Per-stage columns of the staged curriculum: config key -> StagedCurriculum argument.
STAGE_COLUMNS = {"stage_thresholds": "thresholds", "stage_min_episodes": "min_episodes",
                 "stage_regression": "regression_thresholds"}
KINDS = ("uniform", "learning_progress", "arena_uniform", "arena_lp", "staged")


def stage_columns(c, num_stages: int) -> dict:
    """The staged curriculum's per-stage tables and mixing set in ``cfg.curriculum``: one value
    applies to every stage, ``num_stages`` values to the stages in order; unset ones are left to
    the env's table (and the spec's mixing)."""
    out = {}
    for key, arg in STAGE_COLUMNS.items():
        values = getattr(c, key)
        if values is None:
            continue
        if len(values) not in (1, num_stages):
            raise ConfigError(f"curriculum.{key}={','.join(map(str, values))} needs one value "
                              f"or one per stage ({num_stages})")
        out[arg] = list(values) * num_stages if len(values) == 1 else list(values)
    edges = STAGED_MIX["mix_edges"] if c.mix_edges is None else tuple(c.mix_edges)
    probs = STAGED_MIX["mix_probs"] if c.mix_probs is None else tuple(c.mix_probs)
    if len(probs) != len(edges) + 1:
        raise ConfigError(f"curriculum.mix_probs={','.join(map(str, probs))} needs one more "
                          f"value than curriculum.mix_edges={','.join(map(str, edges))}")
    if any(b <= a for a, b in zip(edges, edges[1:])):
        raise ConfigError(f"curriculum.mix_edges={','.join(map(str, edges))} must increase")
    if c.mix_edges is not None or c.mix_probs is not None:
        out.update(mix_edges=edges, mix_probs=probs)
    return out


def make_curriculum(cfg, env) -> Curriculum:
    """The curriculum named by ``cfg.curriculum.kind`` over what the env declares.

    * ``uniform``: uniform over ``env.named_tasks()``;
    * ``learning_progress``: LP over the named tasks;
    * ``arena_lp``: LP over a pool of the env's generated task space (``env.task_space()``:
      the arena's 640,000 bucketed tasks on top of its named task);
    * ``arena_uniform``: uniform over that space (the baseline for ``arena_lp``);
    * ``staged``: staged thresholds over ``env.curriculum_stages()`` (ordered name -> params;
      the named tasks in order if the env declares none), with the env's
      ``stage_thresholds()`` when it declares them.
    """
    c = cfg.curriculum
    kind = c.kind
    if kind not in KINDS:
        raise ValueError(f"unknown curriculum {kind!r}; allowed: {', '.join(KINDS)}")
    tasks = env.named_tasks()
    if kind == "uniform":
        return UniformCurriculum(tasks)
    if kind == "learning_progress":
        return LearningProgressCurriculum(tasks, **_knobs(c, LP_KNOBS))
    if kind == "staged":
        stages = env.curriculum_stages() or tasks
        return StagedCurriculum(stages, stage_table=env.stage_thresholds(),
                                **_knobs(c, STAGED_KNOBS), **stage_columns(c, len(stages)))
    space = env.task_space()
    if space is None:
        raise ValueError(f"curriculum.kind={kind} needs an env with a generated task space; "
                         f"{env.name!r} declares none (env.task_space())")
    if kind == "arena_uniform":
        return UniformSpaceCurriculum(space)
    knobs = _knobs(c, {**LP_KNOBS, **POOL_KNOBS, "score_max": space.score_max})
    return LearningProgressCurriculum.over_space(space, **knobs)
