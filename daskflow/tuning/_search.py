"""Hyperparameter search for classifiers and recommenders, trials as futures on the cluster.

The data is placed on the cluster once: a table that fits the ``memory_budget`` is
gathered and scattered to every worker (one copy each), and every (trial, fold) pair
becomes one future that fits a clone of the estimator in memory on a worker — so trials
run side by side, one per worker thread. A larger table stays a persisted Dask array;
its folds are sets of row blocks, and trials run one after another, each fit itself
spread over the workers. Either way the result is an :class:`xarray.Dataset` with the
hyperparameters as dimensions (a grid) or as per-trial coordinates (random draws).
"""

from __future__ import annotations

import itertools
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from daskflow._errors import ParameterError
from daskflow._progress import Progress, gather_with_progress
from daskflow.evaluation import _classification_kernels as kernels

__all__ = ["SCORERS", "SearchResult", "parameter_trials", "search", "search_recommender"]

log = logging.getLogger("daskflow")


def _scorer(metric: Callable[[Any], float]) -> Callable[[np.ndarray, np.ndarray], float]:
    """A fold's score from the evaluation kernels: one definition of each metric in daskflow
    (evaluate_classifier reports the same numbers; checked against scikit-learn there)."""
    def score(y: np.ndarray, p: np.ndarray) -> float:
        return float(metric(kernels.score_table(np.asarray(y), np.asarray(p), where="tuning")))

    return score


SCORERS: dict[str, tuple[Any, bool]] = {
    "roc_auc": (_scorer(kernels.roc_auc), True),
    "pr_auc": (_scorer(kernels.average_precision), True),
    "log_loss": (_scorer(kernels.log_loss), False),
    "brier": (_scorer(kernels.brier_score), False),
}


@dataclass
class SearchResult:
    """What a search found.

    Attributes
    ----------
    dataset : xarray.Dataset
        ``<metric>_mean``, ``<metric>_std``, ``<metric>`` (per fold) and ``fit_seconds_mean``
        over the hyperparameters (dimensions for a grid; coordinates along ``trial`` for
        random draws). ``attrs`` hold the metric, its direction and the best parameters.
    best_params : dict
    best_score : float
    best_estimator : estimator or None
        A clone with ``best_params`` refitted on all the data (when ``refit``).
    """

    dataset: Any
    best_params: dict[str, Any]
    best_score: float
    best_estimator: Any = None

    def to_netcdf(self, path: str) -> None:
        """Save the dataset (object coordinates written as strings)."""
        dataset = self.dataset.copy()
        for name, coord in dataset.coords.items():
            if coord.dtype == object:
                dataset = dataset.assign_coords({name: coord.astype(str)})
        dataset.to_netcdf(path)


def parameter_trials(space: Mapping[str, Sequence[Any]], *, method: str = "grid",
                     n_trials: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """The parameter settings a search tries: the full grid, or ``n_trials`` random draws from it."""
    if not space:
        raise ParameterError("the search space is empty (tune.params): name at least one "
                             "hyperparameter with a list of values")
    for name, values in space.items():
        if isinstance(values, str) or not isinstance(values, Sequence) or len(values) == 0:
            raise ParameterError(f"tune.params.{name} must be a non-empty list of values, got {values!r}")
    names = list(space)
    grid = [dict(zip(names, combo, strict=True)) for combo in itertools.product(*space.values())]
    if method == "grid":
        return grid
    if method != "random":
        raise ParameterError(f"unknown search method {method!r} (tune.method): expected 'grid' or 'random'")
    if n_trials is None or n_trials < 1:
        raise ParameterError("a random search needs tune.n_trials >= 1")
    picks = np.random.default_rng(seed).permutation(len(grid))[: min(n_trials, len(grid))]
    return [grid[i] for i in sorted(picks)]


def _estimator_trials(estimator: Any, space: Mapping[str, Sequence[Any]], method: str,
                      n_trials: int | None, seed: int) -> list[dict[str, Any]]:
    """The trials of a search, after checking the estimator has every searched parameter."""
    valid = estimator.get_params(deep=False)
    unknown = sorted(set(space) - set(valid))
    if unknown:
        raise ParameterError(f"tune.params names {', '.join(unknown)}, which {type(estimator).__name__} "
                             f"does not have: expected some of {', '.join(sorted(valid))}")
    return parameter_trials(space, method=method, n_trials=n_trials, seed=seed)


def _trial_key(trial: int, fold: int) -> str:
    # Unique (a trial may be submitted again by a later search) and read by the dashboard
    # as the task prefix tune-trial: the digits end the prefix.
    return f"tune-trial-{trial}-fold-{fold}-{uuid.uuid4().hex}"


def _fit_and_score(estimator: Any, params: dict[str, Any], X: Any, y: np.ndarray, w: Any,
                   train: np.ndarray, test: np.ndarray, metric: str) -> tuple[float, float]:
    """One (trial, fold): fit a clone on ``train`` rows, score on ``test`` rows (runs on a worker)."""
    from sklearn.base import clone

    model = clone(estimator).set_params(**params)
    started = time.perf_counter()
    model.fit(X[train], y[train], sample_weight=None if w is None else w[train])
    seconds = time.perf_counter() - started
    score = SCORERS[metric][0](y[test], model.predict_proba(X[test])[:, 1])
    return score, seconds


def _fit_and_score_blocks(estimator: Any, params: dict[str, Any], X: Any, y: Any, w: Any,
                          test_blocks: list[int], metric: str, client: Any) -> tuple[float, float]:
    """One (trial, fold) on a persisted Dask table whose folds are sets of row blocks."""
    import dask.array as da
    from sklearn.base import clone

    from daskflow._dask import compute

    n_blocks = len(X.chunks[0])
    train_blocks = [b for b in range(n_blocks) if b not in set(test_blocks)]

    def take(array: Any, blocks: list[int]) -> Any:
        return da.concatenate([array.blocks[b] for b in blocks])

    model = clone(estimator).set_params(**params)
    started = time.perf_counter()
    model.fit(take(X, train_blocks), take(y, train_blocks),
              sample_weight=None if w is None else take(w, train_blocks), client=client)
    seconds = time.perf_counter() - started
    proba = model.predict_proba(take(X, test_blocks))[:, 1]
    truth, scores = compute([take(y, test_blocks), proba], client)
    return SCORERS[metric][0](np.asarray(truth), np.asarray(scores)), seconds


def search(estimator: Any, space: Mapping[str, Sequence[Any]], X: Any, y: Any, *,
           method: str = "grid", n_trials: int | None = None, folds: int = 3,
           holdout: float | None = None, metric: str = "roc_auc", sample_weight: Any = None,
           seed: int = 0, refit: bool = True, memory_budget: float = 1e9,
           client: Any = None) -> SearchResult:
    """Grid or random search with k-fold (or holdout) validation, trials run in parallel.

    Parameters
    ----------
    estimator : classifier
        Any daskflow (or scikit-learn) classifier; trials are ``clone(estimator)`` with
        the trial's parameters set.
    space : mapping of name -> list of values
        The grid; ``method="random"`` draws ``n_trials`` settings from it.
    X, y : feature table and binary labels (in memory or Dask)
    folds : int
        k of stratified k-fold (>= 2); ignored when ``holdout`` is set.
    holdout : float, optional
        Validate on one stratified holdout of this share instead of k folds.
    metric : str
        One of :data:`SCORERS` (``roc_auc``, ``pr_auc``, ``log_loss``, ``brier``).
    memory_budget : float
        Bytes up to which a Dask table is gathered and scattered to every worker so
        trials run in parallel as futures; larger tables are searched block-wise.
    client : distributed.Client, optional
        Where trials run; without one they run one after another in this process.

    Returns
    -------
    SearchResult
    """
    from sklearn.base import clone

    from daskflow.models._classifier_input import as_table, binary_labels

    if metric not in SCORERS:
        raise ParameterError(f"unknown tuning metric {metric!r} (tune.metric): expected one of "
                             f"{', '.join(SCORERS)}")
    if holdout is None and (not isinstance(folds, int) or folds < 2):
        raise ParameterError(f"tune.folds must be an integer >= 2, got {folds!r}")
    if holdout is not None and not 0 < holdout < 1:
        raise ParameterError(f"tune.holdout must be a share in (0, 1), got {holdout!r}")
    trials = _estimator_trials(estimator, space, method, n_trials, seed)
    table = as_table(X)
    _, positive = binary_labels(y, table.data.shape[0])
    started = time.perf_counter()
    in_memory = not table.lazy or table.data.nbytes <= memory_budget
    if in_memory:
        scores, seconds = _search_in_memory(estimator, trials, table, positive, sample_weight, folds,
                                            holdout, metric, seed, client)
    else:
        scores, seconds = _search_blockwise(estimator, trials, table, positive, sample_weight, folds,
                                            holdout, metric, client)
    log.info("search: %d trials x %d folds in %.1fs (%s)", len(trials), scores.shape[1],
             time.perf_counter() - started, "futures on in-memory copies" if in_memory else "block-wise")
    greater = SCORERS[metric][1]
    means = scores.mean(axis=1)
    best = int(np.nanargmax(means) if greater else np.nanargmin(means))
    dataset = _as_dataset(space, trials, scores, seconds, metric, greater, method, best)
    result = SearchResult(dataset, dict(trials[best]), float(means[best]))
    if refit:
        result.best_estimator = clone(estimator).set_params(**trials[best])
        result.best_estimator.fit(X, y, sample_weight=sample_weight, client=client)
    return result


def _fold_indices(positive: np.ndarray, folds: int, holdout: float | None,
                  seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import StratifiedKFold, StratifiedShuffleSplit

    splitter = (StratifiedShuffleSplit(n_splits=1, test_size=holdout, random_state=seed)
                if holdout is not None else StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed))
    return list(splitter.split(np.zeros(len(positive)), positive))


def _search_in_memory(estimator: Any, trials: list[dict[str, Any]], table: Any, positive: Any,
                      sample_weight: Any, folds: int, holdout: float | None, metric: str, seed: int,
                      client: Any) -> tuple[np.ndarray, np.ndarray]:
    from daskflow._dask import compute

    X, y, w = table.data, positive, sample_weight
    if table.lazy:
        X, y = compute([X, y], client)
    if w is not None and hasattr(w, "__dask_graph__"):
        (w,) = compute([w], client)
    y = np.asarray(y)
    w = None if w is None else np.asarray(w, dtype=np.float64)
    splits = _fold_indices(y, folds, holdout, seed)
    jobs = [(t, f) for t in range(len(trials)) for f in range(len(splits))]
    if client is None:
        results = [_fit_and_score(estimator, trials[t], X, y, w, *splits[f], metric) for t, f in jobs]
    else:
        # One copy of the data on every worker, then one future per (trial, fold). Unhashed
        # keys: with keys hashed from the data, a second search on the same data (each
        # candidate's validation, say) scattered under the keys the first one was releasing,
        # and its tasks failed with "lost dependencies" (about 1 run in 40).
        X_f, y_f, w_f = client.scatter([X, y, w], broadcast=True, hash=False)
        # Keyed tune-trial-<trial>-fold-<fold>-<unique>: the dashboard names the trial it runs.
        futures = [client.submit(_fit_and_score, estimator, trials[t], X_f, y_f, w_f, *splits[f], metric,
                                 key=_trial_key(t, f)) for t, f in jobs]
        results = gather_with_progress(futures, client=client, label="tune", unit="trial fits")
    scores = np.full((len(trials), len(splits)), np.nan)
    seconds = np.full_like(scores, np.nan)
    for (t, f), (score, fit_seconds) in zip(jobs, results, strict=True):
        scores[t, f], seconds[t, f] = score, fit_seconds
    return scores, seconds


def _search_blockwise(estimator: Any, trials: list[dict[str, Any]], table: Any, positive: Any,
                      sample_weight: Any, folds: int, holdout: float | None, metric: str,
                      client: Any) -> tuple[np.ndarray, np.ndarray]:
    from daskflow._dask import persist

    X = table.data
    y = positive.rechunk((X.chunks[0],))
    w = None if sample_weight is None else sample_weight.rechunk((X.chunks[0],))
    X, y, *rest = persist([X, y] + ([w] if w is not None else []), client)  # once, for every trial
    w = rest[0] if rest else None
    n_blocks = len(X.chunks[0])
    n_folds = 1 if holdout is not None else folds
    needed = 2 if holdout is not None else folds
    if n_blocks < needed:
        raise ParameterError(f"a block-wise search needs at least {needed} row blocks, the table has "
                             f"{n_blocks}: repartition it into more blocks or lower tune.folds")
    order = np.random.default_rng(0).permutation(n_blocks)
    if holdout is not None:
        fold_blocks = [sorted(order[: max(1, round(holdout * n_blocks))].tolist())]
    else:
        fold_blocks = [sorted(order[f::folds].tolist()) for f in range(folds)]
    scores = np.full((len(trials), n_folds), np.nan)
    seconds = np.full_like(scores, np.nan)
    # Each fit is itself a graph on the cluster; progress counts the fits.
    with Progress("tune", len(trials) * n_folds, unit="trial fits") as progress:
        for t, params in enumerate(trials):
            for f, blocks in enumerate(fold_blocks):
                scores[t, f], seconds[t, f] = _fit_and_score_blocks(estimator, params, X, y, w, blocks,
                                                                    metric, client)
                progress.update(t * n_folds + f + 1)
    return scores, seconds


def _as_dataset(space: Mapping[str, Sequence[Any]], trials: list[dict[str, Any]], scores: np.ndarray,
                seconds: np.ndarray, metric: str, greater: bool, method: str, best: int) -> Any:
    import xarray as xr

    names = list(space)
    attrs = {"metric": metric, "greater_is_better": int(greater), "method": method,
             "best_params": json.dumps(trials[best], default=str), "best_score": float(scores[best].mean()),
             "n_folds": scores.shape[1]}
    variables = {f"{metric}_mean": scores.mean(axis=1), f"{metric}_std": scores.std(axis=1),
                 "fit_seconds_mean": seconds.mean(axis=1)}
    if method == "grid":
        shape = [len(space[n]) for n in names]
        coords = {n: _coordinate(space[n]) for n in names}
        data = {k: (names, v.reshape(shape)) for k, v in variables.items()}
        data[metric] = (names + ["fold"], scores.reshape(shape + [scores.shape[1]]))
        return xr.Dataset(data, coords={**coords, "fold": np.arange(scores.shape[1])}, attrs=attrs)
    coords = {n: ("trial", _coordinate([t[n] for t in trials])) for n in names}
    data = {k: ("trial", v) for k, v in variables.items()}
    data[metric] = (("trial", "fold"), scores)
    return xr.Dataset(data, coords={**coords, "trial": np.arange(len(trials)),
                                    "fold": np.arange(scores.shape[1])}, attrs=attrs)


def _coordinate(values: Sequence[Any]) -> np.ndarray:
    """Numbers stay numbers; anything else (solver names, None) becomes an object coordinate."""
    try:
        array = np.asarray(values, dtype=np.float64)
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            return np.asarray(values) if all(isinstance(v, int) for v in values) else array
    except (TypeError, ValueError):
        pass
    return np.asarray(values, dtype=object)


def _ranking_metric(metric: str) -> tuple[str, int | None]:
    """``"ndcg@10"`` -> ("ndcg", 10); ``"auc"`` -> ("auc", None)."""
    from daskflow.evaluation import CUTOFF_METRICS

    name, _, cut = metric.partition("@")
    if name == "auc" and not cut:
        return name, None
    if name not in CUTOFF_METRICS or not cut.isdigit() or int(cut) < 1:
        raise ParameterError(f"unknown ranking metric {metric!r} (tune.metric): expected "
                             f"<{'|'.join(CUTOFF_METRICS)}>@k such as ndcg@10, or auc")
    return name, int(cut)


def _fit_and_rank(estimator: Any, params: dict[str, Any], train: Any, test: Any, metric: str
                  ) -> tuple[float, float]:
    """One (trial, split) of a recommender in memory: fit on ``train`` CSR, rank, score (on a worker)."""
    from sklearn.base import clone

    from daskflow.evaluation import auc_sums, ranking_sums

    name, cut = _ranking_metric(metric)
    model = clone(estimator).set_params(**params)
    started = time.perf_counter()
    model.fit(train)
    seconds = time.perf_counter() - started
    if cut is None:
        total, users = auc_sums(model.score_block(train), train, test)
        return total / max(users, 1), seconds
    recommended, _ = model.recommend_block(train, cut, filter_seen=True)
    sums = ranking_sums(recommended, test, (cut,), (name,))
    return sums[metric] / max(sums["n_users"], 1.0), seconds


def search_recommender(estimator: Any, space: Mapping[str, Sequence[Any]], matrix: Any, *,
                       method: str = "grid", n_trials: int | None = None, folds: int = 3, holdout: int = 1,
                       min_items: int = 3, metric: str = "ndcg@10", seed: int = 0, refit: bool = True,
                       memory_budget: float = 1e9, client: Any = None) -> SearchResult:
    """Grid or random search for a recommender (e.g. ALS rank, regularization, alpha, confidence).

    Validation is repeated random leave-``holdout``-out: ``folds`` splits of ``matrix``,
    each with its own seed, every trial fitted on each split's training matrix and scored
    by ``metric`` (``ndcg@10``, ``map@5``, ``auc``...) on its held-out items. When the
    splits fit ``memory_budget`` (16 bytes per stored entry per split, train and test),
    they are gathered once and scattered to every worker, and each (trial, split) is one
    future fitting in memory; otherwise trials run one after another, each fit and
    evaluation spread over the cluster.

    Returns
    -------
    SearchResult
        As :func:`search`; ``best_estimator`` is refitted on the whole matrix.
    """
    from sklearn.base import clone

    from daskflow.evaluation import evaluate_ranking
    from daskflow.features import leave_k_out_split

    name, cut = _ranking_metric(metric)
    if not isinstance(folds, int) or folds < 1:
        raise ParameterError(f"tune.folds must be an integer >= 1 for a recommender, got {folds!r}")
    trials = _estimator_trials(estimator, space, method, n_trials, seed)
    splits = [leave_k_out_split(matrix, k=holdout, min_items=min_items, mode="random", seed=seed + f,
                                client=client) for f in range(folds)]
    started = time.perf_counter()
    scores = np.full((len(trials), folds), np.nan)
    seconds = np.full_like(scores, np.nan)
    jobs = [(t, f) for t in range(len(trials)) for f in range(folds)]
    in_memory = 32.0 * matrix.nnz * folds <= memory_budget
    if in_memory:
        gathered = [(train.to_scipy(client=client), test.to_scipy(client=client)) for train, test in splits]
        if client is None:
            results = [_fit_and_rank(estimator, trials[t], *gathered[f], metric) for t, f in jobs]
        else:
            placed = [client.scatter(list(pair), broadcast=True, hash=False) for pair in gathered]
            futures = [client.submit(_fit_and_rank, estimator, trials[t], *placed[f], metric,
                                     key=_trial_key(t, f)) for t, f in jobs]
            results = gather_with_progress(futures, client=client, label="tune", unit="trial fits")
    else:
        results = []
        with Progress("tune", len(jobs), unit="trial fits") as progress:
            for t, f in jobs:
                model = clone(estimator).set_params(**trials[t])
                began = time.perf_counter()
                model.fit(splits[f][0], client=client)
                fit_seconds = time.perf_counter() - began
                ranked = evaluate_ranking(model, *splits[f], k=(cut or 10,), metrics=(name,), client=client)
                results.append((ranked[metric], fit_seconds))
                progress.update(len(results))
    for (t, f), (score, fit_seconds) in zip(jobs, results, strict=True):
        scores[t, f], seconds[t, f] = score, fit_seconds
    log.info("recommender search: %d trials x %d splits in %.1fs (%s)", len(trials), folds,
             time.perf_counter() - started, "futures on in-memory copies" if in_memory else "block-wise")
    means = scores.mean(axis=1)
    best = int(np.nanargmax(means))
    dataset = _as_dataset(space, trials, scores, seconds, metric, True, method, best)
    result = SearchResult(dataset, dict(trials[best]), float(means[best]))
    if refit:
        result.best_estimator = clone(estimator).set_params(**trials[best]).fit(matrix, client=client)
    return result
