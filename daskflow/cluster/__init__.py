"""Dask cluster connection: the only package that creates a ``distributed.Client``."""

from daskflow.cluster._client import BACKENDS, connect, dashboard_link

__all__ = ["BACKENDS", "connect", "dashboard_link"]
