"""Implicit-feedback ALS: in memory with Numba threads, or blocked on a Dask cluster.

Both paths run the same compiled per-row solvers (``_solver_kernels``) on the same rows from
the same initial factors, so for a seed they give the same factors up to float rounding
(the Gram matrix is summed in a different order). The blocked path keeps the confidence
blocks persisted on the workers for the whole fit, or, for a matrix loaded with
``load_interactions(uri, persist=False)``, keeps nothing of the matrix and reads each
block's counts inside the task that solves it, every half-step (same arithmetic, so the
same factors). Per half-step it ships the other side's factors to each worker once (one
concatenated array) and the f x f Gram matrix.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import numba
import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from daskflow._dask import compute, named, persist
from daskflow._errors import DataError, ParameterError
from daskflow._progress import DETAIL, Progress
from daskflow.io import open_filesystem
from daskflow.models._base import RecommenderMixin
from daskflow.models._params import Rule, check_params
from daskflow.models._top_n_kernels import top_n, top_n_inner_product
from daskflow.models.als import _checkpoint as checkpoint
from daskflow.models.als import _content_and_ann as _content
from daskflow.models.als._block_kernels import (
    add,
    block_confidence,
    gram,
    initial_factors,
    solve_block,
    solve_stored_block,
    squared_norm,
    to_confidence,
)
from daskflow.models.als._solver_kernels import balanced_chunks, gram_parallel, solve_rows_parallel

__all__ = ["ImplicitALS"]

log = logging.getLogger("daskflow")

_USERS, _ITEMS = 0, 1


def _available_memory(client: Any) -> tuple[int, int, str]:
    """Memory a fit may use, the threads that solve rows, and what the memory is (for messages)."""
    import psutil

    if client is None:
        return psutil.virtual_memory().total, numba.get_num_threads(), "this machine's memory"
    try:
        workers = list(client.scheduler_info(n_workers=-1)["workers"].values())
    except TypeError:  # distributed before 2025.4 lists every worker without being asked
        workers = list(client.scheduler_info()["workers"].values())
    threads = sum(int(w.get("nthreads", 1)) for w in workers) or 1
    limits = [int(w.get("memory_limit") or 0) for w in workers]
    if limits and all(limits):
        return sum(limits), threads, f"the memory_limit of the {len(limits)} worker(s) in all"
    # A worker without a limit may use its host's memory; this machine's stands in for each host.
    hosts = max(1, len({w.get("host") for w in workers}))
    return psutil.virtual_memory().total * hosts, threads, f"the memory of {hosts} host(s)"


class ImplicitALS(RecommenderMixin, TransformerMixin, BaseEstimator):
    """Implicit-feedback matrix factorisation by alternating least squares.

    Minimises Σ c_ui (p_ui − x_uᵀy_i)² + λ(Σ‖x_u‖² + Σ‖y_i‖²) over all user-item pairs
    (Hu, Koren & Volinsky 2008), p_ui = 1 where the user played the item.

    Parameters
    ----------
    n_factors : int, default 40
        Latent dimension f.
    regularization : float, default 0.01
        λ, applied to both sides.
    alpha : float, default 1.0
        Confidence scale.
    confidence : {"linear", "log"}, default "linear"
        c = 1 + α·r, or c = 1 + α·log(1 + r/ε). (Spark's convention; `implicit` uses
        c = α·r.)
    epsilon : float, default 1.0
        ε of the log confidence.
    n_iter : int, default 15
        Full iterations (a user half-step and an item half-step each).
    solver : {"cg", "cholesky"}, default "cg"
        Conjugate gradient warm-started from the previous factors (Takács et al. 2011), or
        an exact Cholesky solve per row.
    cg_steps : int, default 3
        CG steps per row and half-step.
    dtype : {"float32", "float64"}, default "float32"
    random_state : int, default 0
        Seeds the initial factors (drawn identically for in-memory and blocked fits).
    compute_loss : bool, default True
        Record the training loss after every iteration (costs ~10% of an iteration).
    checkpoint_dir : str or None
        Local path or fsspec URL where factors are checkpointed; ``fit(..., resume=True)``
        continues from the newest checkpoint there.
    checkpoint_every : int, default 5
        Iterations between checkpoints (the last iteration is always checkpointed).
    storage_options : dict or None
        fsspec options for ``checkpoint_dir``.
    recommend_index : {"exact", "voyager"}, default "exact"
        How ``recommend``/``recommend_all`` find each user's top items: the exact pruned
        search, or a Voyager HNSW index (Spotify's successor of Annoy, ``pip install
        'daskflow[ann]'``) over the item factors, built once per fit, saved with the model.
        Inner product is searched as nearest neighbours after the order-preserving lift
        of Bachrach et al. (2014) (docs/als.md).
    index_ef : int, default 200
        Voyager's search depth per query (higher: better recall, slower).

    Attributes
    ----------
    user_factors_ : ndarray of shape (n_users, n_factors)
    item_factors_ : ndarray of shape (n_items, n_factors)
    loss_curve_ : list of float
        Training loss per iteration (empty if ``compute_loss=False``).
    iteration_seconds_ : list of float
        Wall time of every iteration.
    n_iter_ : int
    user_ids_, item_ids_ : pandas.Index or None
        Original IDs when fitted on an ``InteractionMatrix``.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> plays = sp.random(100, 40, density=0.1, format="csr", random_state=0) * 10
    >>> model = ImplicitALS(n_factors=8, n_iter=5).fit(plays)
    >>> model.user_factors_.shape, len(model.loss_curve_)
    ((100, 8), 5)
    """

    _rules = {
        "n_factors": Rule(int, low=1),
        "regularization": Rule(float, low=0),
        "alpha": Rule(float, low=0, low_inclusive=False),
        "confidence": Rule(options=("linear", "log")),
        "epsilon": Rule(float, low=0, low_inclusive=False),
        "n_iter": Rule(int, low=1),
        "solver": Rule(options=("cg", "cholesky")),
        "cg_steps": Rule(int, low=1),
        "dtype": Rule(options=("float32", "float64")),
        "random_state": Rule(int, low=0),
        "compute_loss": Rule(options=(True, False)),
        "checkpoint_every": Rule(int, low=1),
        "recommend_index": Rule(options=("exact", "voyager")),
        "index_ef": Rule(int, low=1),
    }

    def __init__(self, *, n_factors: int = 40, regularization: float = 0.01, alpha: float = 1.0,
                 confidence: str = "linear", epsilon: float = 1.0, n_iter: int = 15,
                 solver: str = "cg", cg_steps: int = 3, dtype: str = "float32",
                 random_state: int = 0, compute_loss: bool = True,
                 checkpoint_dir: str | None = None, checkpoint_every: int = 5,
                 storage_options: dict[str, Any] | None = None, recommend_index: str = "exact",
                 index_ef: int = 200) -> None:
        self.n_factors = n_factors
        self.regularization = regularization
        self.alpha = alpha
        self.confidence = confidence
        self.epsilon = epsilon
        self.n_iter = n_iter
        self.solver = solver
        self.cg_steps = cg_steps
        self.dtype = dtype
        self.random_state = random_state
        self.compute_loss = compute_loss
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every = checkpoint_every
        self.storage_options = storage_options
        self.recommend_index = recommend_index
        self.index_ef = index_ef

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.input_tags.positive_only = True
        # transform returns factors of the ``dtype`` parameter, whatever the input's dtype.
        tags.transformer_tags.preserves_dtype = []
        return tags

    # -- fitting ------------------------------------------------------------------------

    def fit(self, X: Any, y: None = None, *, client: Any = None, resume: bool = False,
            item_content: Any = None) -> ImplicitALS:
        """Learn user and item factors from play counts.

        Parameters
        ----------
        X : scipy.sparse matrix (users x items), array-like, or InteractionMatrix
            Non-negative play counts or weights. An ``InteractionMatrix`` is fitted block by
            block on the cluster (or dask's local scheduler when ``client`` is None), its
            confidence blocks persisted on the workers for the whole fit. A
            ``StoredInteractionMatrix`` (``load_interactions(uri, persist=False)``) is
            streamed instead: each half-step reads every block's counts from its file inside
            the task that solves the block, so worker memory holds only the factors and the
            blocks being solved; for data several times the workers' memory (docs/als.md).
        resume : bool, default False
            Continue from the newest checkpoint in ``checkpoint_dir`` (which must match the
            data's shape and ``n_factors``); starts afresh if there is none.
        item_content : ItemContent or None
            An item table and its content model (:class:`~daskflow.models.ItemContent`): a
            ``ContentToFactors`` is trained on the warm items' factors and predicts factors
            for the table's items the matrix lacks (the cold items), which are appended to
            ``item_factors_`` and ``item_ids_`` (``n_warm_items_`` marks where they start),
            so recommending and ``similar_items`` cover them; :meth:`add_items` adds more
            later. Without original IDs (a SciPy matrix) the warm items' IDs are 0..n-1.
        """
        check_params(self, self._rules)
        if resume and not self.checkpoint_dir:
            raise DataError("fit(resume=True) needs checkpoint_dir: set it to where the "
                            "interrupted fit wrote its checkpoints")
        if hasattr(X, "user_blocks"):
            self._check_memory(X.shape, client)
            with self._iterations() as progress:
                self._fit_blocked(X, client, resume, progress)
            return self._finish_fit(item_content, client)
        X = validate_data(self, X, accept_sparse="csr", dtype=np.float64, reset=True)
        X = sp.csr_matrix(X)
        if X.nnz == 0 or not X.data.any():
            raise DataError("cannot fit ImplicitALS on an empty interaction matrix (no positive "
                            "entries): check the data and filters")
        if X.data.min() < 0:
            raise DataError("Negative values in data passed to ImplicitALS.fit: play counts "
                            "must be >= 0; clean the matrix first")
        self._check_memory(X.shape, None)
        with self._iterations() as progress:
            self._fit_in_memory(X, resume, progress)
        return self._finish_fit(item_content, client)

    def _check_memory(self, shape: tuple[int, int], client: Any) -> None:
        """Refuse factors that cannot fit, before allocating any (a huge n_factors
        made a fit attempt a 3.6 TiB allocation)."""
        from dask.utils import format_bytes

        memory, threads, where = _available_memory(client)
        itemsize, k = np.dtype(self.dtype).itemsize, self.n_factors
        n_users, n_items = shape
        factors = (n_users + n_items) * k * itemsize
        systems = threads * k * k * itemsize  # each solving thread builds a k x k system
        if factors + systems <= memory:
            return
        a, b = threads * itemsize, (n_users + n_items) * itemsize
        k_max = int((-b + (b * b + 4 * a * memory) ** 0.5) / (2 * a))
        raise ParameterError(
            f"ImplicitALS(n_factors={k:,}) does not fit in memory: the factors of {n_users:,} users and "
            f"{n_items:,} items take ({n_users:,} + {n_items:,}) x {k:,} x {itemsize} bytes = "
            f"{format_bytes(factors)} and the k x k systems of {threads} solving thread(s) {threads} x "
            f"{k:,}^2 x {itemsize} bytes = {format_bytes(systems)}, but {where} is {format_bytes(memory)}: "
            "expected n_factors "
            f"<= {k_max:,} here; lower n_factors, or give the workers more memory")

    def _fit_in_memory(self, X: sp.csr_matrix, resume: bool, progress: Progress) -> ImplicitALS:
        dtype = np.dtype(self.dtype)
        X.eliminate_zeros()
        users = to_confidence(X, 0, self.confidence, self.alpha, self.epsilon, dtype)
        items = to_confidence(X.T.tocsr(), 0, self.confidence, self.alpha, self.epsilon, dtype)
        n_users, n_items = X.shape
        start, U, V = 0, None, None
        meta = self._resume_meta(X.shape) if resume else None
        if meta is not None:
            start = meta["iteration"]
            U = checkpoint.load_rows(meta["directory"], "users", meta["user_bounds"], 0, n_users,
                                     self.storage_options, dtype)
            V = checkpoint.load_rows(meta["directory"], "items", meta["item_bounds"], 0, n_items,
                                     self.storage_options, dtype)
        if U is None:
            U = initial_factors(0, n_users, self.n_factors, self.random_state, _USERS, dtype)
            V = initial_factors(0, n_items, self.n_factors, self.random_state, _ITEMS, dtype)
        threads = numba.get_num_threads()
        user_chunks = balanced_chunks(users.indptr, self.n_factors, 16 * threads)
        item_chunks = balanced_chunks(items.indptr, self.n_factors, 16 * threads)
        self._start_curves(meta, progress)
        solver = 0 if self.solver == "cg" else 1
        for iteration in range(start, self.n_iter):
            started = time.perf_counter()
            system = self._system(gram_parallel(V, threads), dtype)
            _, failures_u = solve_rows_parallel(users.indptr, users.indices, users.confidence, U, V,
                                                system, user_chunks, solver, self.cg_steps, False)
            self._check_finite(U, "user", iteration, failures_u)
            system = self._system(gram_parallel(U, threads), dtype)
            loss, failures_i = solve_rows_parallel(items.indptr, items.indices, items.confidence, V, U,
                                                   system, item_chunks, solver, self.cg_steps,
                                                   self.compute_loss)
            self._check_finite(V, "item", iteration, failures_i)
            if self.compute_loss:  # the item half-step's loss lacks only λ‖U‖²
                loss += self.regularization * squared_norm(U)
            self._end_iteration(iteration, started, loss, progress)
            if self._checkpoint_due(iteration):
                directory = checkpoint.iteration_dir(self.checkpoint_dir, iteration + 1)
                checkpoint.save_block(directory, "users", 0, U, self.storage_options)
                checkpoint.save_block(directory, "items", 0, V, self.storage_options)
                self._commit(iteration, X.shape, [0, n_users], [0, n_items])
        self.user_factors_, self.item_factors_ = U, V
        self.user_ids_ = self.item_ids_ = None
        self.n_users_ = n_users
        return self

    def _fit_blocked(self, matrix: Any, client: Any, resume: bool, progress: Progress) -> ImplicitALS:
        dtype = np.dtype(self.dtype)
        if matrix.nnz == 0:
            raise DataError("cannot fit ImplicitALS on an empty interaction matrix: check the data "
                            "and filters")
        shape = matrix.shape
        conf = (self.confidence, self.alpha, self.epsilon, dtype)
        # A matrix left in its files (load_interactions(persist=False)) is streamed: every
        # half-step each task reads its block's counts and makes its confidences.
        block_files = getattr(matrix, "block_files", None)
        files = (block_files("users"), block_files("items")) if block_files else (None, None)
        streamed = None not in files
        if streamed:
            user_blocks = [(path, matrix.storage_options, *conf) for path in files[0]]
            item_blocks = [(path, matrix.storage_options, *conf) for path in files[1]]
        else:
            user_blocks = [named(block_confidence, "als-confidence-users")(b, *conf)
                           for b in matrix.user_blocks]
            item_blocks = [named(block_confidence, "als-confidence-items")(b, *conf)
                           for b in matrix.item_blocks]
        ub, ib = matrix.user_bounds, matrix.item_bounds
        meta = self._resume_meta(shape) if resume else None
        start = meta["iteration"] if meta else 0
        if meta is not None:
            load = (meta["directory"], self.storage_options)
            load_rows = named(checkpoint.load_rows, "als-resume-load")
            U = [load_rows(load[0], "users", meta["user_bounds"], int(lo), int(hi), load[1], dtype)
                 for lo, hi in zip(ub[:-1], ub[1:])]
            V = [load_rows(load[0], "items", meta["item_bounds"], int(lo), int(hi), load[1], dtype)
                 for lo, hi in zip(ib[:-1], ib[1:])]
        else:
            init = named(initial_factors, "als-init-factors")
            U = [init(int(lo), int(hi), self.n_factors, self.random_state, _USERS, dtype)
                 for lo, hi in zip(ub[:-1], ub[1:])]
            V = [init(int(lo), int(hi), self.n_factors, self.random_state, _ITEMS, dtype)
                 for lo, hi in zip(ib[:-1], ib[1:])]
        if streamed:
            solve = solve_stored_block
            U, V = persist(U, client), persist(V, client)
        else:
            # Confidence blocks are computed once and stay on the workers for the whole fit.
            solve = solve_block
            persisted = persist(user_blocks + item_blocks + U + V, client)
            nu, ni = len(user_blocks), len(item_blocks)
            user_blocks = [(b,) for b in persisted[:nu]]
            item_blocks = [(b,) for b in persisted[nu:nu + ni]]
            U, V = persisted[nu + ni:2 * nu + ni], persisted[2 * nu + ni:]
        self._start_curves(meta, progress)
        for iteration in range(start, self.n_iter):
            started = time.perf_counter()
            U, user_stats = self._half_step(solve, user_blocks, U, V, client, compute_loss=False,
                                            side="users")
            self._check_stats(user_stats, "user", iteration)
            V, item_stats = self._half_step(solve, item_blocks, V, U, client, self.compute_loss, side="items")
            self._check_stats(item_stats, "item", iteration)
            # The item half-step's loss lacks only λ‖U‖² (its system holds λ‖v‖²).
            loss = item_stats["loss"] + self.regularization * user_stats["squared_norm"]
            self._end_iteration(iteration, started, loss, progress)
            if self._checkpoint_due(iteration):
                directory = checkpoint.iteration_dir(self.checkpoint_dir, iteration + 1)
                save = named(checkpoint.save_block, "als-checkpoint-save")
                writes = [save(directory, "users", b, u, self.storage_options) for b, u in enumerate(U)]
                writes += [save(directory, "items", b, v, self.storage_options) for b, v in enumerate(V)]
                compute(writes, client)
                self._commit(iteration, shape, ub.tolist(), ib.tolist())
        self.user_factors_ = np.concatenate(compute(U, client))
        self.item_factors_ = np.concatenate(compute(V, client))
        self.user_ids_, self.item_ids_ = matrix.user_ids, matrix.item_ids
        self.n_features_in_ = shape[1]
        self.n_users_ = shape[0]
        return self

    def _half_step(self, solve: Any, blocks: list[tuple[Any, ...]], factors: list[Any], other: list[Any],
                   client: Any, compute_loss: bool, side: str) -> tuple[list[Any], dict[str, float]]:
        """Solve one side's blocks given the other side; returns (new blocks, summed stats).

        ``solve`` is ``solve_block`` with each block's leading argument its persisted
        confidence block, or ``solve_stored_block`` with the block's file and confidence
        settings. One round trip: the new blocks and their stats are persisted together and
        only the few stats numbers travel back.
        """
        # One concatenated array of the other side per half-step: each worker fetches it once.
        # Named for the side solved (dashboard: als-solve-users / als-solve-items); the Gram
        # matrix and the gathered factors are of the other side.
        other_side = "items" if side == "users" else "users"
        other_all = named(np.concatenate, f"als-gather-{other_side}")(other)
        other_gram = _tree_sum([named(gram, f"als-gram-{other_side}")(o) for o in other],
                               prefix=f"als-gram-{other_side}-sum")
        streamed = "-streamed" if solve is solve_stored_block else ""  # reads its block from its file
        solve_side = named(solve, f"als-solve-{side}{streamed}", nout=2)
        results = [solve_side(*block, mine, other_all, other_gram, self.regularization, self.solver,
                              self.cg_steps, compute_loss)
                   for block, mine in zip(blocks, factors)]
        persisted = persist([r[0] for r in results] + [r[1] for r in results], client)
        new, stats = persisted[:len(results)], compute(persisted[len(results):], client)
        total = {key: sum(s[key] for s in stats) for key in stats[0]}
        total["finite"] = min(s["finite"] for s in stats)
        return new, total

    # -- bookkeeping shared by both paths -------------------------------------------------

    def _system(self, other_gram: np.ndarray, dtype: np.dtype) -> np.ndarray:
        return (other_gram + self.regularization * np.eye(other_gram.shape[0])).astype(dtype)

    @contextlib.contextmanager
    def _iterations(self) -> Iterator[Progress]:
        """One progress line for the fit's iterations; the loss from first to last at its end."""
        with Progress("ALS", self.n_iter, unit="iterations") as progress:
            yield progress
            if self.loss_curve_:
                progress.summary = f"loss {self.loss_curve_[0]:.6g} -> {self.loss_curve_[-1]:.6g}"

    def _start_curves(self, meta: dict[str, Any] | None, progress: Progress) -> None:
        self.loss_curve_ = list(meta["loss_curve"]) if meta else []
        self.iteration_seconds_ = list(meta["iteration_seconds"]) if meta else []
        self.n_iter_ = meta["iteration"] if meta else 0
        progress.resume_at(self.n_iter_)  # a resumed fit's ETA counts only this run's iterations

    def _end_iteration(self, iteration: int, started: float, loss: float, progress: Progress) -> None:
        self.iteration_seconds_.append(time.perf_counter() - started)
        if self.compute_loss:
            self.loss_curve_.append(float(loss))
        self.n_iter_ = iteration + 1
        # Every iteration in run.log (DETAIL: not on the terminal, where the progress line
        # with the latest loss stands for them).
        log.info("ALS iteration %d/%d: %.2fs%s", iteration + 1, self.n_iter, self.iteration_seconds_[-1],
                 f", loss {loss:.6g}" if self.compute_loss else "", extra=DETAIL)
        progress.update(iteration + 1, f"loss {loss:.6g}" if self.compute_loss else None)

    def _check_finite(self, factors: np.ndarray, side: str, iteration: int, failures: int) -> None:
        if failures or not np.isfinite(factors).all():
            raise DataError(_NON_FINITE.format(side=side, iteration=iteration + 1,
                                               regularization=self.regularization, alpha=self.alpha))

    def _check_stats(self, stats: dict[str, float], side: str, iteration: int) -> None:
        if stats["failures"] or not stats["finite"]:
            raise DataError(_NON_FINITE.format(side=side, iteration=iteration + 1,
                                               regularization=self.regularization, alpha=self.alpha))

    def _checkpoint_due(self, iteration: int) -> bool:
        done = iteration + 1
        return bool(self.checkpoint_dir) and (done % self.checkpoint_every == 0 or done == self.n_iter)

    def _fingerprint(self, shape: tuple[int, int]) -> dict[str, Any]:
        return {"shape": list(shape), "n_factors": self.n_factors, "dtype": self.dtype,
                "solver": self.solver, "random_state": self.random_state}

    def _commit(self, iteration: int, shape: tuple[int, int], user_bounds: list[int],
                item_bounds: list[int]) -> None:
        meta = {**self._fingerprint(shape), "user_bounds": [int(b) for b in user_bounds],
                "item_bounds": [int(b) for b in item_bounds], "loss_curve": self.loss_curve_,
                "iteration_seconds": self.iteration_seconds_}
        checkpoint.commit(self.checkpoint_dir, iteration + 1, meta, self.storage_options)
        log.info("ALS checkpoint after iteration %d in %s", iteration + 1, self.checkpoint_dir)

    def _resume_meta(self, shape: tuple[int, int]) -> dict[str, Any] | None:
        meta = checkpoint.read_latest(self.checkpoint_dir, self.storage_options)
        if meta is None:
            log.info("no checkpoint in %s: starting afresh", self.checkpoint_dir)
            return None
        expected = self._fingerprint(shape)
        found = {key: meta.get(key) for key in expected}
        if found != expected:
            raise DataError(f"checkpoint in {self.checkpoint_dir!r} is for another fit ({found}) than "
                            f"this one ({expected}): use a fresh checkpoint_dir or matching parameters")
        log.info("resuming ALS from iteration %d (%s)", meta["iteration"], meta["directory"])
        return meta

    # -- using the factors ----------------------------------------------------------------

    def score_block(self, user_items: sp.csr_matrix, user_index: np.ndarray | None = None
                    ) -> np.ndarray:
        if user_index is None:
            user_index = np.arange(user_items.shape[0])
        return self.user_factors_[user_index] @ self.item_factors_.T

    def recommend_block(self, user_items: sp.csr_matrix, n: int, filter_seen: bool = True,
                        user_index: np.ndarray | None = None, parallel: bool = False
                        ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-n by ``u·y``, without scoring every item (:func:`top_n_inner_product`).

        Items are visited in decreasing norm and a user stops once no item left can beat its
        n-th best score; tiles of users are scored by small GEMMs with BLAS on the calling
        thread (``parallel``: one tile per Numba thread), so no users x items matrix exists.
        """
        from threadpoolctl import threadpool_limits

        if user_index is None:
            user_index = np.arange(user_items.shape[0])
        factors = self.user_factors_[user_index]
        n_items = self.item_factors_.shape[0]
        if filter_seen and user_items.shape[1] < n_items:  # cold items appended: nobody has seen them
            user_items = sp.csr_matrix((user_items.data, user_items.indices, user_items.indptr),
                                       shape=(user_items.shape[0], n_items))
        if getattr(self, "_voyager", None) is not None:
            return _content.voyager_top_n(self._voyager, factors, self.item_factors_, n,
                                          user_items if filter_seen else None, self.index_ef)
        with threadpool_limits(1, "blas"):
            return top_n_inner_product(factors, self.item_factors_, n,
                                       user_items if filter_seen else None, parallel=parallel)

    def similar_items(self, item_index: Any, n: int = 10, method: str = "exact",
                      n_trees: int = 50) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` items most similar to each given item (cosine of item factors).

        Parameters
        ----------
        item_index : int, str or array of them
            Item indices (rows of ``item_factors_``), or original item IDs.
        method : {"exact", "annoy", "voyager"}
            Exact cosine over all items, or an approximate Annoy index or Voyager HNSW
            index (Spotify's ANN libraries, ``pip install 'daskflow[ann]'``) built on
            first use and cached. Cold items (``item_content``) are items like any other.

        Returns
        -------
        items, scores : ndarrays of shape (n_queries, n)
            The query item itself is left out.
        """
        check_is_fitted(self)
        query = _content.item_positions(self, item_index)
        if query.size and (query.min() < 0 or query.max() >= self.item_factors_.shape[0]):
            raise DataError(f"item index out of range: expected 0 <= index < {self.item_factors_.shape[0]}")
        if method == "annoy":
            return self._similar_annoy(query, n, n_trees)
        if method == "voyager":
            return _content.similar_voyager(self, query, n)
        if method != "exact":
            raise ParameterError(f"unknown similar_items method {method!r}: expected 'exact', 'annoy' or "
                            "'voyager'")
        normed = self.item_factors_ / np.maximum(np.linalg.norm(self.item_factors_, axis=1), 1e-12)[:, None]
        scores = normed[query] @ normed.T
        never_itself = sp.csr_matrix((np.ones(len(query)), (np.arange(len(query)), query)),
                                     shape=scores.shape)
        return top_n(scores, n, never_itself, parallel=True)

    def _similar_annoy(self, query: np.ndarray, n: int, n_trees: int) -> tuple[np.ndarray, np.ndarray]:
        index = getattr(self, "_annoy", None)
        if index is None or getattr(self, "_annoy_trees", None) != n_trees:
            try:
                from annoy import AnnoyIndex
            except ImportError as exc:
                raise DataError("similar_items(method='annoy') needs the annoy package: "
                                "pip install 'daskflow[ann]'") from exc
            index = AnnoyIndex(self.item_factors_.shape[1], "angular")
            for i, vector in enumerate(self.item_factors_):
                index.add_item(i, vector.tolist())
            index.set_seed(self.random_state)
            index.build(n_trees, n_jobs=1)
            self._annoy, self._annoy_trees = index, n_trees
        items = np.full((len(query), n), -1, dtype=np.int64)
        scores = np.full((len(query), n), -np.inf)
        for row, item in enumerate(query):
            found, distances = index.get_nns_by_item(int(item), n + 1, include_distances=True)
            pairs = [(f, d) for f, d in zip(found, distances) if f != item][:n]
            for col, (f, d) in enumerate(pairs):
                items[row, col] = f
                scores[row, col] = 1.0 - d * d / 2.0  # angular distance -> cosine
        return items, scores

    def transform(self, X: Any) -> np.ndarray:
        """Fold new users in: their factors given the item factors, without retraining.

        Each row of ``X`` (new users x the fitted items) is solved exactly (Cholesky) with
        the item factors held fixed, as one user half-step would.
        """
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse="csr", dtype=np.float64, reset=False)
        X = sp.csr_matrix(X)
        if X.nnz and X.data.min() < 0:
            raise DataError("Negative values in data passed to ImplicitALS.transform: play counts "
                            "must be >= 0")
        dtype = np.dtype(self.dtype)
        block = to_confidence(X, 0, self.confidence, self.alpha, self.epsilon, dtype)
        start = np.zeros((X.shape[0], self.n_factors), dtype=dtype)
        warm = self.item_factors_[: X.shape[1]]  # cold items (item_content) have no plays to fold in
        factors, _ = solve_block(block, start, warm, gram(warm),
                                    self.regularization, "cholesky", self.cg_steps, False)
        return factors

    # -- persistence ------------------------------------------------------------------------

    def save(self, path: str, storage_options: dict[str, Any] | None = None) -> None:
        """Save parameters and factors as one ``.npz`` file (any fsspec URL)."""
        check_is_fitted(self)
        fs, target = open_filesystem(path, storage_options)
        buffer = io.BytesIO()
        ids = {}
        if self.user_ids_ is not None:
            ids = {"user_ids": np.asarray(self.user_ids_, dtype=str),
                   "item_ids": np.asarray(self.item_ids_, dtype=str)}
        state = {"params": self.get_params(), "loss_curve": self.loss_curve_,
                 "iteration_seconds": self.iteration_seconds_, "n_iter": self.n_iter_}
        np.savez(buffer, user_factors=self.user_factors_, item_factors=self.item_factors_,
                 state=np.array(json.dumps(state)), **ids, **_content.saved_arrays(self))
        with fs.open(target, "wb") as handle:
            handle.write(buffer.getvalue())

    @classmethod
    def load(cls, path: str, storage_options: dict[str, Any] | None = None) -> ImplicitALS:
        """Load a model written by :meth:`save`."""
        import pandas as pd

        fs, target = open_filesystem(path, storage_options)
        try:
            with fs.open(target, "rb") as handle:
                data = np.load(io.BytesIO(handle.read()), allow_pickle=False)
                state = json.loads(str(data["state"]))
                model = cls(**state["params"])
                model.user_factors_ = data["user_factors"]
                model.item_factors_ = data["item_factors"]
                has_ids = "user_ids" in data.files
                model.user_ids_ = pd.Index(data["user_ids"]) if has_ids else None
                model.item_ids_ = pd.Index(data["item_ids"]) if has_ids else None
                _content.load_arrays(model, data)
        except FileNotFoundError:
            raise DataError(f"no saved model at {path!r}") from None
        except (KeyError, ValueError, OSError) as exc:
            raise DataError(f"{path!r} is not a model saved by ImplicitALS.save ({exc})") from exc
        model.loss_curve_ = state["loss_curve"]
        model.iteration_seconds_ = state["iteration_seconds"]
        model.n_iter_ = state["n_iter"]
        model.n_users_, model.n_features_in_ = model.user_factors_.shape[0], model.n_warm_items_
        return model

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_annoy", None)  # a C++ index, rebuilt on demand
        state.pop("_annoy_trees", None)
        state.pop("_voyager_cosine", None)
        if state.get("_voyager") is not None:  # a C++ index: shipped (to workers) as its bytes
            state["_voyager"] = _content.VoyagerBytes(state["_voyager"].as_bytes())
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if isinstance(state.get("_voyager"), _content.VoyagerBytes):
            state["_voyager"] = state["_voyager"].load()
        self.__dict__.update(state)

    # -- cold items (item_content) and the recommend index ------------------------------------

    def _finish_fit(self, item_content: Any, client: Any) -> ImplicitALS:
        self.n_warm_items_ = self.item_factors_.shape[0]
        self._voyager = None
        for name in ("content_encoder_", "content_regressor_", "content_id_col_"):
            self.__dict__.pop(name, None)
        if item_content is not None:
            _content.attach_content(self, item_content, client)
        if self.recommend_index == "voyager":
            self._voyager = _content.build_inner_product_index(self.item_factors_, self.random_state)
        return self

    def add_items(self, table: Any) -> np.ndarray:
        """Add items by their content, without refitting: returns their item indices.

        The content model learnt by ``fit(..., item_content=...)`` predicts each new
        item's factors, which are appended to ``item_factors_`` (and to the recommend
        index, if any), so the items are recommended and ``similar_items`` covers them.

        Parameters
        ----------
        table : pandas DataFrame
            The new items: the fitted encoder's ID column and content columns.

        Raises
        ------
        DataError
            The model has no content model, or an item is already known.
        """
        check_is_fitted(self)
        return _content.add_items(self, table)


_NON_FINITE = ("ALS produced non-finite {side} factors at iteration {iteration}: the problem is "
               "ill-conditioned (regularization={regularization}, alpha={alpha}). Increase "
               "regularization or lower alpha (or use confidence='log' for very large counts)")


# -- Dask plumbing of the driver -------------


def _tree_sum(parts: list[Any], width: int = 8, prefix: str = "als-sum") -> Any:
    while len(parts) > 1:
        parts = [named(add, prefix)(*parts[i:i + width]) for i in range(0, len(parts), width)]
    return parts[0]
