"""Scoring every user or entity and writing the results back as Parquet."""

from daskflow.prediction._classify import EntityScores, score_entities
from daskflow.prediction._recommend import recommend_all

__all__ = ["recommend_all", "score_entities", "EntityScores"]
