"""Scoring every user and writing the results back as Parquet."""

from daskflow.prediction._recommend import recommend_all

__all__ = ["recommend_all"]
