"""Dask cluster connection: the only package that creates a ``distributed.Client``."""

from daskflow.cluster._client import (
    BACKENDS,
    connect,
    dashboard_link,
    reach_remote,
    start_kubernetes,
    start_local,
)
from daskflow.cluster._kubernetes import (
    ManifestError,
    build_manifest,
    check_api,
    default_image,
    manifest_to_yaml,
    render_manifest,
    start_kubecluster,
    validate_manifest,
)

__all__ = [
    "BACKENDS",
    "ManifestError",
    "build_manifest",
    "check_api",
    "connect",
    "dashboard_link",
    "default_image",
    "manifest_to_yaml",
    "reach_remote",
    "render_manifest",
    "start_kubecluster",
    "start_kubernetes",
    "start_local",
    "validate_manifest",
]
