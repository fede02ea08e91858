"""What the stages of one run hand to each other: :class:`RunState`.

The runner makes one ``RunState`` when the cluster is up and passes it, with the config, to
every stage function (``stage(config: Config, state: RunState) -> None``). A stage reads
what earlier stages left (``state.matrix`` after ``interactions``, ``state.model`` after
``train``) and leaves its own results there and in ``state.metrics`` (``metrics.json``).
Nothing here outlives the run: what is kept is written under ``state.work_dir``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daskflow.io import Publication

if TYPE_CHECKING:
    import dask.dataframe as dd
    from distributed import Client

    from daskflow.features import InteractionMatrix
    from daskflow.features.tabular import EntityTable
    from daskflow.models import ItemContent

__all__ = ["ConversionState", "RunState"]


@dataclass
class ConversionState:
    """What the classifier stages (features, classify, tune, score) hand to each other."""

    #: One row per user (conversion) or entity (``features.table``), persisted on the cluster.
    features: dd.DataFrame | None = None
    #: The fitted TableEncoder of the training rows.
    encoder: Any = None
    #: (X, y) of the training rows and of the test rows: NumPy arrays when small enough to
    #: gather (``conversion.in_memory_bytes``), else persisted Dask arrays.
    train: tuple[Any, Any] | None = None
    test: tuple[Any, Any] | None = None
    #: The fitted classifiers by name (``classify.models``, ``<name>_tuned`` after tune).
    models: dict[str, Any] = field(default_factory=dict)
    #: The test-set evaluation report of each model, by name (for the ROC/PR/gains plots).
    reports: dict[str, Any] = field(default_factory=dict)
    #: The EntityTable of ``features.table``, when set.
    table: EntityTable | None = None
    #: Validation score on the training rows of each model (classify.selection): score's choice.
    validation: dict[str, float] = field(default_factory=dict)

    def entity_table(self) -> EntityTable:
        """The features stage's table (a stage that needs it runs after that one)."""
        return _present(self.table, "the entity table", "features")

    def training_rows(self) -> tuple[Any, Any]:
        """(X, y) of the training rows, once split and encoded."""
        return _present(self.train, "the training rows", "the split")

    def test_rows(self) -> tuple[Any, Any]:
        """(X, y) of the test rows, once split and encoded."""
        return _present(self.test, "the test rows", "the split")


def _present(value: Any, what: str, stage: str) -> Any:
    if value is None:  # the runner orders the stages, so this is a bug, not a user error
        raise RuntimeError(f"{what} are not there yet: {stage} must run first")
    return value


@dataclass
class RunState:
    """What the stages hand to each other within one run."""

    #: The run's Dask client (the caller's, or the one the runner connected).
    client: Client | None
    #: The claimed working directory that becomes the run directory when the run is published.
    work_dir: Path
    #: What goes into ``metrics.json``; every stage adds its section.
    metrics: dict[str, Any] = field(default_factory=dict)
    #: The interactions stage's matrix (the recommender stages need it).
    matrix: InteractionMatrix | None = None
    #: The run's fitted recommender (train, or tune's refit): what predict uses.
    model: Any = None
    #: ``model.content`` as an ItemContent, read and checked once (train and evaluate share it).
    item_content: ItemContent | None = None
    #: The classifier stages' state.
    conversion: ConversionState = field(default_factory=ConversionState)
    #: The evaluation's (train, test) matrices by split, drawn once (evaluate and tune share them).
    splits: dict[str, tuple[InteractionMatrix, InteractionMatrix]] = field(default_factory=dict)
    #: Test-holdout metrics by (model, params, split, k, metrics): each model is tested once.
    holdout_scores: dict[tuple[Any, ...], dict[str, Any]] = field(default_factory=dict)
    #: Whether this run resumes an interrupted one (model fits continue from their checkpoints).
    resumed: bool = False
    #: Results written to URIs outside the run directory: claimed when the run starts,
    #: published after the run directory (and removed if that fails), never on a failure.
    publish: Publication = field(default_factory=Publication)
