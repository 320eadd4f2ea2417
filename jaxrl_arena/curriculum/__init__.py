"""Curricula: which task each environment plays next, updated inside the compiled step.

``base`` (the interface, shared helpers, uniform sampling), ``ring`` (outcome rings),
``learning_progress`` and ``staged`` (implementations), ``factory`` (``make_curriculum``).
"""

from jaxrl_arena.curriculum.base import Curriculum, EpisodeOutcomes, UniformCurriculum
from jaxrl_arena.curriculum.factory import make_curriculum
from jaxrl_arena.curriculum.learning_progress import LearningProgressCurriculum, LPState
from jaxrl_arena.curriculum.staged import StagedCurriculum, StagedState

__all__ = ["Curriculum", "EpisodeOutcomes", "LPState", "LearningProgressCurriculum",
           "StagedCurriculum", "StagedState", "UniformCurriculum", "make_curriculum"]
