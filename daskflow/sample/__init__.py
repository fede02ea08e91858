"""A synthetic listening and house-ad data lake with a planted ground truth."""

from daskflow.sample._generate import LAKE_SCHEMAS, LAKE_TABLES, generate_lake
from daskflow.sample._planted_model_kernels import (
           CONVERSION_COEFFICIENTS,
           CONVERSION_WINDOW_DAYS,
           TRACK_CONTENT,
)
from daskflow.sample._scales import SCALES, Scale

__all__ = ["CONVERSION_COEFFICIENTS", "CONVERSION_WINDOW_DAYS", "LAKE_SCHEMAS", "LAKE_TABLES",
           "SCALES", "Scale", "TRACK_CONTENT", "generate_lake"]
