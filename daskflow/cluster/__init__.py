"""Dask cluster connection: the only package that creates a ``distributed.Client``."""

from daskflow.cluster._client import BACKENDS, connect, dashboard_link
from daskflow.cluster._kubernetes import (
    ManifestError,
    build_manifest,
    default_image,
    manifest_to_yaml,
    render_manifest,
    validate_manifest,
)

__all__ = [
    "BACKENDS",
    "ManifestError",
    "build_manifest",
    "connect",
    "dashboard_link",
    "default_image",
    "manifest_to_yaml",
    "render_manifest",
    "validate_manifest",
]
