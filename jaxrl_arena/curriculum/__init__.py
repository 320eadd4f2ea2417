"""Curricula: which task each environment plays next, updated inside the compiled step."""

from jaxrl_arena.curriculum.base import Curriculum, EpisodeOutcomes, UniformCurriculum, make_curriculum
from jaxrl_arena.curriculum.learning_progress import LearningProgressCurriculum, LPState
from jaxrl_arena.curriculum.staged import StagedCurriculum, StagedState

__all__ = ["Curriculum", "EpisodeOutcomes", "UniformCurriculum", "make_curriculum",
           "LearningProgressCurriculum", "LPState", "StagedCurriculum", "StagedState"]
