"""Curricula: which task each environment plays next, updated inside the compiled step."""

from jaxrl_arena.curriculum.base import Curriculum, EpisodeOutcomes, UniformCurriculum, make_curriculum

__all__ = ["Curriculum", "EpisodeOutcomes", "UniformCurriculum", "make_curriculum"]
