"""Content models for cold-start items: ``ItemContent``, ``ContentEncoder`` and
``ContentToFactors`` (``_content_models``), their per-partition math and regressors
(``_content_kernels``, no Dask). Nothing is imported until a name is used."""

from __future__ import annotations

from typing import TYPE_CHECKING

from daskflow._lazy import attach

if TYPE_CHECKING:
    from daskflow.models.content._content_models import ContentEncoder, ContentToFactors, ItemContent

__getattr__, __dir__, __all__ = attach(__name__, {
    "_content_models": ["ContentEncoder", "ContentToFactors", "ItemContent"],
})
