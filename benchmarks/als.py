"""Implicit-feedback ALS, side by side: daskflow vs ``implicit`` (CG, Cholesky) vs Spark MLlib.

Every peer factorises the same synthetic play-count matrix with the same confidence
model, regularisation and rank, on the same two cores, in one run.
For each peer the script reports the median wall time of one ALS iteration (a user half
and an item half), NDCG@10 on one held-out item per user (scored identically for all,
from each peer's factors), recommendation throughput (daskflow vs ``implicit``), and
daskflow's time per iteration at three sizes to check that it is linear in the number of
non-zeros.

Full run (the one quoted in docs/benchmarks.md)::

    /work/venv/bin/python benchmarks/als.py --users 200000 --items 50000 --nnz 10000000 \\
        --factors 64 --iterations 15 --cholesky-iterations 5 --spark-iterations 5

(The Cholesky solvers and Spark run fewer iterations only to fit the run in half an hour
on two cores; their time per iteration does not depend on the count, and their NDCG is
reported with the count it was reached at.)

Smoke test (tiny sizes, every code path; 1-2 minutes, most of it Spark's JVM start)::

    /work/venv/bin/python benchmarks/als.py --quick

Matching the hyperparameters
----------------------------
daskflow and Spark weight an observed play count ``r`` with confidence ``c = 1 + alpha*r``
and preference 1 (Hu, Koren & Volinsky 2008). ``implicit`` reads the confidence straight
from its input matrix (``Cui = alpha * user_items``, then ``c - 1`` is what it adds to
``YᵀY``; see ``implicit/cpu/als.py``), so it is given the matrix ``1 + alpha*r`` and
``alpha=1``, which yields exactly the same normal equations
``(YᵀY + λI + Σ (c-1) y yᵀ) x = Σ c y``. ``implicit`` and daskflow use a constant ``λ``;
Spark multiplies ``regParam`` by the number of observed entries of the row being solved
(ALS-WR, Zhou et al. 2008; ``numExplicits * regParam`` in Spark's ``ALS.scala``). No
constant makes that identical, so Spark gets ``regParam = λ / m`` with ``m`` the
geometric mean of the mean row lengths of users and of items: its λ equals the others'
for a row of that length, is smaller for light users and larger for popular items.
Initial factors differ (each library draws its own), which is why NDCG is compared
within a tolerance rather than for equality.

Threads: ``implicit`` runs with ``num_threads=2`` and BLAS limited to one thread, as its
own warning asks; daskflow in memory runs Numba's two threads; daskflow blocked runs one
in-process worker with two threads; Spark runs ``local[2]``. Shared scoring (NDCG) uses
BLAS with two threads and is never timed.

Spark is timed after an untimed warm-up fit on a tiny frame (JVM class loading and JIT),
in the same session; its NDCG comes from its collected factors. NDCG is computed from
each peer's factors by one scorer (BLAS scores, a compiled top-10 selection with the
training items excluded) and ``daskflow.evaluation.ranking_sums``.

Results are printed as a markdown table and written to ``benchmarks/results/als.json``
(git-ignored), beside the cached matrix ``plays-v2-<users>x<items>-<nnz>-s<seed>.npz``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_info, threadpool_limits

RESULTS_DIR = Path(__file__).resolve().parent / "results"
N_THREADS = 2  # the machine's cores; every peer is given exactly these
TOP_K = 10


# -- data ------------------------------------------------------------------------------------


def make_play_counts(n_users: int, n_items: int, nnz: int, *, seed: int = 0, n_genres: int = 32,
                     zipf_exponent: float = 1.0, taste_concentration: float = 0.05,
                     global_share: float = 0.05) -> sp.csr_matrix:
    """A deterministic users x items matrix of play counts with Zipf items and user tastes.

    Each item belongs to one of ``n_genres`` latent genres and has a Zipf popularity
    (``rank ** -zipf_exponent``, ranks shuffled). Each user has a log-normal activity and
    a sparse Dirichlet taste over genres, so a few genres dominate her listening: that
    low-rank structure is what ALS can learn and popularity alone cannot, which makes
    NDCG informative. Every play picks a genre from the user's taste, then an item of
    that genre by popularity; repeated plays of a pair are summed into its count.

    Parameters
    ----------
    n_users, n_items
        Shape of the matrix.
    nnz
        Target number of distinct (user, item) pairs; the result lands within a few
        percent of it (duplicates are summed).
    seed
        Everything is drawn from ``numpy.random.default_rng(seed)``.

    Returns
    -------
    scipy.sparse.csr_matrix
        float32 play counts >= 1, sorted indices.
    """
    # Repeated draws of a pair collapse into one entry, so more plays than ``nnz`` are
    # drawn; one correction of that overshoot from the first result lands within ~2%.
    overshoot = 1.5
    for _ in range(3):
        matrix = _draw_play_counts(n_users, n_items, nnz * overshoot, seed, n_genres, zipf_exponent,
                                   taste_concentration, global_share)
        if abs(matrix.nnz / nnz - 1) < 0.02:
            break
        overshoot *= nnz / matrix.nnz
    return matrix


def _draw_play_counts(n_users: int, n_items: int, n_plays: float, seed: int, n_genres: int,
                      zipf_exponent: float, taste_concentration: float, global_share: float
                      ) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    item_genre = rng.integers(0, n_genres, n_items)
    popularity = (rng.permutation(n_items) + 1.0) ** -zipf_exponent
    # Items grouped by genre; ``cdf`` runs from g to g + 1 over genre g, so a single
    # searchsorted of ``genre + uniform`` draws an item of that genre by popularity.
    by_genre = np.argsort(item_genre, kind="stable")
    sorted_genre = item_genre[by_genre]
    cdf = np.empty(n_items)
    starts = np.searchsorted(sorted_genre, np.arange(n_genres + 1))
    for genre in range(n_genres):
        cumulative = np.cumsum(popularity[by_genre[starts[genre]:starts[genre + 1]]])
        cdf[starts[genre]:starts[genre + 1]] = genre + cumulative / cumulative[-1]
    genre_share = np.bincount(item_genre, weights=popularity, minlength=n_genres)
    # A small share of every taste follows global popularity, so hits cross genres.
    taste = (1 - global_share) * rng.dirichlet(np.full(n_genres, taste_concentration), size=n_users) + \
        global_share * genre_share / genre_share.sum()
    taste_cdf = np.cumsum(taste, axis=1)
    taste_cdf[:, -1] = 1.0
    activity = rng.lognormal(0.0, 1.0, n_users)
    plays_per_user = np.rint(activity / activity.mean() * n_plays / n_users)
    plays_per_user = np.clip(plays_per_user, 1, n_items // 4).astype(np.int64)
    users = np.repeat(np.arange(n_users, dtype=np.int32), plays_per_user)
    items = np.empty(len(users), dtype=np.int32)
    chunk = 1_000_000  # bounds the (chunk x n_genres) comparison below to ~100 MB
    for lo in range(0, len(users), chunk):
        chunk_users = users[lo:lo + chunk]
        genre = (rng.random(len(chunk_users))[:, None] > taste_cdf[chunk_users]).sum(axis=1)
        position = np.searchsorted(cdf, genre + rng.random(len(chunk_users)))
        items[lo:lo + chunk] = by_genre[np.minimum(position, n_items - 1)]
    # Each draw is a listening session of a geometric number of plays.
    counts = rng.geometric(0.4, len(users)).astype(np.float32)
    matrix = sp.csr_matrix((counts, (users, items)), shape=(n_users, n_items), dtype=np.float32)
    matrix.sum_duplicates()
    return matrix


def load_play_counts(n_users: int, n_items: int, nnz: int, seed: int) -> sp.csr_matrix:
    """:func:`make_play_counts`, cached as ``.npz`` under ``benchmarks/results/``."""
    # Bump the version when the generator changes, so a stale cache is never reused.
    path = RESULTS_DIR / f"plays-v2-{n_users}x{n_items}-{nnz}-s{seed}.npz"
    if path.exists():
        return sp.load_npz(path).tocsr()
    matrix = make_play_counts(n_users, n_items, nnz, seed=seed)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    sp.save_npz(path, matrix, compressed=False)
    return matrix


def hold_out_one(matrix: sp.csr_matrix, *, min_items: int = 3, seed: int = 0
                 ) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Move one random entry of every user with ``>= min_items`` entries to a test matrix.

    Items left with no training entry are then dropped from both matrices (no peer can
    learn them, and Spark would drop them anyway), so the columns are the same for all.
    """
    rng = np.random.default_rng(seed)
    lengths = np.diff(matrix.indptr)
    eligible = np.flatnonzero(lengths >= min_items)
    held = matrix.indptr[eligible] + (rng.random(len(eligible)) * lengths[eligible]).astype(np.int64)
    in_test = np.zeros(matrix.nnz, dtype=bool)
    in_test[held] = True
    coo = matrix.tocoo()
    shape = matrix.shape

    def part(mask: np.ndarray) -> sp.csr_matrix:
        return sp.csr_matrix((coo.data[mask], (coo.row[mask], coo.col[mask])), shape=shape)

    train, test = part(~in_test), part(in_test)
    kept_items = np.flatnonzero(np.diff(train.tocsc().indptr) > 0)
    return train[:, kept_items].tocsr(), test[:, kept_items].tocsr()


def confidence(train: sp.csr_matrix, alpha: float) -> sp.csr_matrix:
    """The matrix ``1 + alpha * r`` on the stored entries: what ``implicit`` reads as ``Cui``."""
    out = train.copy().astype(np.float32)
    out.data = (1.0 + alpha * out.data).astype(np.float32)
    return out


# -- shared scoring --------------------------------------------------------------------------


def top_items(user_factors: np.ndarray, item_factors: np.ndarray, seen: sp.csr_matrix,
              users: np.ndarray, k: int = TOP_K, chunk: int = 4096) -> np.ndarray:
    """Top-``k`` unseen items of ``users`` by dot product, best first.

    One scorer for every peer, so that NDCG differences come from the factors only:
    scores by BLAS in chunks of users, then a compiled per-row selection (a sort or
    ``argpartition`` of 200k x 50k scores would take minutes).
    """
    user_factors = np.ascontiguousarray(user_factors, dtype=np.float32)
    item_factors_t = np.ascontiguousarray(np.asarray(item_factors, dtype=np.float32).T)
    out = np.empty((len(users), k), dtype=np.int64)
    for lo in range(0, len(users), chunk):
        batch = users[lo:lo + chunk]
        rows = seen[batch]
        scores = user_factors[batch] @ item_factors_t
        out[lo:lo + len(batch)] = _select_top_k(scores, rows.indptr, rows.indices, k)
    return out


def _select_top_k(scores: np.ndarray, indptr: np.ndarray, indices: np.ndarray, k: int) -> np.ndarray:
    from numba import njit, prange

    global _select_top_k_compiled
    if _select_top_k_compiled is None:
        @njit(parallel=True, cache=False)
        def select(scores, indptr, indices, k):
            n_rows, n_items = scores.shape
            out = np.full((n_rows, k), -1, dtype=np.int64)
            for row in prange(n_rows):
                values = scores[row]
                for j in range(indptr[row], indptr[row + 1]):
                    values[indices[j]] = -np.inf
                best = np.full(k, -np.inf, dtype=np.float32)
                best_items = np.full(k, -1, dtype=np.int64)
                # Insertion into a sorted list of k: cheap since most scores fail the
                # first comparison; ties keep the lower item index (strict >).
                for item in range(n_items):
                    value = values[item]
                    if value > best[k - 1]:
                        position = k - 1
                        while position > 0 and value > best[position - 1]:
                            best[position] = best[position - 1]
                            best_items[position] = best_items[position - 1]
                            position -= 1
                        best[position] = value
                        best_items[position] = item
                out[row] = best_items
            return out

        _select_top_k_compiled = select
    return _select_top_k_compiled(scores, indptr.astype(np.int64), indices.astype(np.int64), k)


_select_top_k_compiled: Callable[..., np.ndarray] | None = None


def ndcg_at_k(user_factors: np.ndarray, item_factors: np.ndarray, train: sp.csr_matrix,
              test: sp.csr_matrix, k: int = TOP_K) -> float:
    """Mean NDCG@k over users with a held-out item, training items filtered out."""
    from daskflow.evaluation import ranking_sums

    users = np.flatnonzero(np.diff(test.indptr) > 0)
    recommended = top_items(user_factors, item_factors, train, users, k)
    sums = ranking_sums(recommended, test[users], ks=(k,), metrics=("ndcg",))
    return sums[f"ndcg@{k}"] / sums["n_users"]


# -- peers -----------------------------------------------------------------------------------


def run_implicit(train: sp.csr_matrix, test: sp.csr_matrix, args: argparse.Namespace, *,
                 use_cg: bool) -> dict[str, Any]:
    """Fit ``implicit``'s CPU ALS once; its times per iteration, CPU seconds and NDCG@10."""
    iterations = args.iterations if use_cg else args.cholesky_iterations
    from implicit.cpu.als import AlternatingLeastSquares

    confidences = confidence(train, args.alpha)
    iteration_seconds: list[float] = []
    # implicit parallelises over rows with OpenMP and calls BLAS inside each thread; a
    # threaded BLAS underneath oversubscribes the cores (its constructor warns).
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(
            factors=args.factors, regularization=args.regularization, alpha=1.0,
            use_cg=use_cg, iterations=iterations, calculate_training_loss=False,
            random_state=0, num_threads=N_THREADS)
        model.cg_steps = args.cg_steps  # not a constructor argument in implicit 0.7
        with Stopwatch() as watch:
            model.fit(confidences, show_progress=False,
                      callback=lambda _it, seconds, _loss: iteration_seconds.append(seconds))
    return {"iteration_seconds": iteration_seconds, "fit_seconds": [watch.wall],
            "cpu_seconds": [watch.cpu], "iterations": iterations,
            "ndcg@10": ndcg_at_k(model.user_factors, model.item_factors, train, test),
            "model": model}


def run_spark(train: sp.csr_matrix, test: sp.csr_matrix, args: argparse.Namespace) -> dict[str, Any]:
    """Spark MLlib ALS in local mode: setup, fit of 1 and of N iterations, NDCG@10.

    ``setup`` is pandas -> Spark DataFrame, cached and counted. The fit of one iteration
    lets the per-iteration cost be told apart from Spark's fixed cost per fit (building
    the in/out blocks, shuffles): marginal = (fit(N) - fit(1)) / (N - 1).
    """
    import pandas as pd

    iterations = args.spark_iterations
    coo = train.tocoo()
    frame = pd.DataFrame({"user": coo.row.astype(np.int32), "item": coo.col.astype(np.int32),
                          "plays": coo.data.astype(np.float32)})
    mean_entries = {"users": train.nnz / max(1, np.count_nonzero(np.diff(train.indptr))),
                    "items": train.nnz / max(1, np.count_nonzero(train.getnnz(axis=0)))}
    # Spark scales λ by the row's entry count (ALS-WR); see the module docstring.
    reg_param = args.regularization / statistics.geometric_mean(mean_entries.values())
    with _spark_session() as spark:
        from pyspark.ml.recommendation import ALS

        started = time.perf_counter()
        ratings = spark.createDataFrame(frame).cache()
        ratings.count()
        setup = time.perf_counter() - started
        results: dict[int, float] = {}
        model = None
        for max_iter in sorted({1, iterations}):
            als = ALS(implicitPrefs=True, rank=args.factors, regParam=reg_param, alpha=args.alpha,
                      maxIter=max_iter, nonnegative=False, coldStartStrategy="drop", seed=0,
                      userCol="user", itemCol="item", ratingCol="plays")
            started = time.perf_counter()
            model = als.fit(ratings)
            # fit() materialises the factors already; counting makes sure of it.
            model.userFactors.count()
            model.itemFactors.count()
            results[max_iter] = time.perf_counter() - started
        user_factors = _spark_factors(model.userFactors, train.shape[0], args.factors)
        item_factors = _spark_factors(model.itemFactors, train.shape[1], args.factors)
    fit_n = results[iterations]
    marginal = (fit_n - results[1]) / (iterations - 1) if iterations > 1 else fit_n
    return {"seconds_per_iteration": (setup + fit_n) / iterations,
            "setup_seconds": setup, "fit_seconds": fit_n, "fit_1_iteration_seconds": results[1],
            "marginal_seconds_per_iteration": marginal, "iterations": iterations,
            "reg_param": reg_param, "mean_entries_per_row": mean_entries,
            "ndcg@10": ndcg_at_k(user_factors, item_factors, train, test)}


@contextlib.contextmanager
def _spark_session() -> Iterator[Any]:
    """A ``local[2]`` SparkSession bound to loopback, without UI; stopped on exit."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ["PYSPARK_PYTHON"] = sys.executable
    local_dir = tempfile.mkdtemp(prefix="spark-als-", dir=RESULTS_DIR)
    spark = (SparkSession.builder.master(f"local[{N_THREADS}]").appName("daskflow-als-benchmark")
             .config("spark.driver.memory", "8g")
             .config("spark.ui.enabled", "false")
             .config("spark.driver.host", "127.0.0.1")
             .config("spark.driver.bindAddress", "127.0.0.1")
             .config("spark.local.dir", local_dir)
             .config("spark.ui.showConsoleProgress", "false")
             # Arrow moves the pandas frame to the JVM in columnar batches, not row by row.
             .config("spark.sql.execution.arrow.pyspark.enabled", "true")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    _warm_up(spark)
    try:
        yield spark
    finally:
        spark.stop()
        shutil.rmtree(local_dir, ignore_errors=True)


def _warm_up(spark: Any) -> None:
    """One tiny untimed ALS fit, so class loading and the JIT are not charged to the peer."""
    import pandas as pd
    from pyspark.ml.recommendation import ALS

    rng = np.random.default_rng(0)
    tiny = pd.DataFrame({"user": rng.integers(0, 200, 5000, dtype=np.int32),
                         "item": rng.integers(0, 100, 5000, dtype=np.int32),
                         "plays": np.ones(5000, dtype=np.float32)})
    model = ALS(implicitPrefs=True, rank=8, maxIter=2, userCol="user", itemCol="item",
                ratingCol="plays", seed=0).fit(spark.createDataFrame(tiny).cache())
    model.userFactors.toPandas()


def _spark_factors(frame: Any, n_rows: int, n_factors: int) -> np.ndarray:
    """Collect a Spark ``(id, features)`` factor frame into a dense array (absent ids: 0)."""
    pandas_frame = frame.toPandas()
    out = np.zeros((n_rows, n_factors), dtype=np.float32)
    if len(pandas_frame):
        out[pandas_frame["id"].to_numpy()] = np.stack(pandas_frame["features"].to_numpy())
    return out


class Stopwatch:
    """Wall and CPU seconds of a block (CPU: every thread of this process, user + system).

    CPU seconds say how much work a fit did; on a shared machine they move far less than
    wall time, which also counts the time other jobs held the cores.
    """

    def __enter__(self) -> Stopwatch:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu


def interleaved(fits: dict[str, Callable[[], dict[str, Any]]], repeat: int) -> dict[str, dict[str, Any]]:
    """Run every fit once per round, ``repeat`` rounds, and merge each peer's rounds.

    Alternating the peers (rather than all of one peer's fits, then the next's) exposes
    them to the same spells of load on a shared machine. Medians are over all iterations
    of all rounds; NDCG and the model are the last round's.
    """
    merged: dict[str, dict[str, Any]] = {}
    for _ in range(repeat):
        for name, fit in fits.items():
            result = fit()
            if name not in merged:
                merged[name] = result
            else:
                for key in ("iteration_seconds", "fit_seconds", "cpu_seconds"):
                    merged[name][key] = merged[name][key] + result[key]
                merged[name].update({k: v for k, v in result.items()
                                     if k not in ("iteration_seconds", "fit_seconds", "cpu_seconds")})
    for result in merged.values():
        result["seconds_per_iteration"] = statistics.median(result["iteration_seconds"])
        result["cpu_seconds_per_iteration"] = sum(result["cpu_seconds"]) / (
            result["iterations"] * len(result["cpu_seconds"]))
    return merged


def daskflow_available() -> bool:
    """Whether ``daskflow.models.ImplicitALS`` can be imported (it is being written)."""
    try:
        from daskflow.models import ImplicitALS  # noqa: F401
    except (ImportError, AttributeError):
        return False
    return True


def _daskflow_model(args: argparse.Namespace, solver: str, iterations: int | None = None) -> Any:
    from daskflow.models import ImplicitALS

    return ImplicitALS(n_factors=args.factors, regularization=args.regularization, alpha=args.alpha,
                       confidence="linear", n_iter=iterations or args.iterations, solver=solver,
                       cg_steps=args.cg_steps, dtype="float32", random_state=0,
                       # implicit runs with calculate_training_loss=False: same work.
                       compute_loss=False)


def run_daskflow_memory(train: sp.csr_matrix, test: sp.csr_matrix, args: argparse.Namespace, *,
                        solver: str) -> dict[str, Any]:
    """Fit daskflow's ImplicitALS once on the in-memory CSR matrix."""
    iterations = args.iterations if solver == "cg" else args.cholesky_iterations
    model = _daskflow_model(args, solver, iterations)
    with Stopwatch() as watch:
        model.fit(train)
    return {"iteration_seconds": list(model.iteration_seconds_), "fit_seconds": [watch.wall],
            "cpu_seconds": [watch.cpu], "iterations": iterations,
            "ndcg@10": ndcg_at_k(model.user_factors_, model.item_factors_, train, test),
            "model": model}


def run_daskflow_blocked(train: sp.csr_matrix, test: sp.csr_matrix, args: argparse.Namespace
                         ) -> dict[str, Any]:
    """Fit on the blocked :class:`~daskflow.features.InteractionMatrix` on a LocalCluster.

    The matrix is built from a table of (user, track, plays) rows, as the pipeline does;
    zero-padded string IDs make its sorted-ID order equal to the in-memory row order.
    """
    import dask.dataframe as dd
    import pandas as pd

    from daskflow.cluster import connect
    from daskflow.features import build_interactions

    coo = train.tocoo()
    user_ids = np.array([f"u{u:07d}" for u in range(train.shape[0])], dtype=object)
    item_ids = np.array([f"i{i:06d}" for i in range(train.shape[1])], dtype=object)
    table = pd.DataFrame({"user_id": user_ids[coo.row], "track_id": item_ids[coo.col],
                          "plays": coo.data.astype(np.float32)})
    del coo
    iteration_seconds: list[float] = []
    fit_seconds: list[float] = []
    cpu_seconds: list[float] = []
    with connect("local", n_workers=1, threads_per_worker=N_THREADS, processes=False,
                 dashboard_address=":0") as client:
        started = time.perf_counter()
        listens = dd.from_pandas(table, npartitions=max(1, len(table) // 1_000_000))
        matrix = build_interactions(listens, user_col="user_id", item_col="track_id", weight="plays",
                                    time_col=None, block_size=args.block_size, client=client)
        setup = time.perf_counter() - started
        del table, listens
        rows = np.array([int(u[1:]) for u in matrix.user_ids])
        columns = np.array([int(i[1:]) for i in matrix.item_ids])
        if matrix.nnz != train.nnz:
            raise RuntimeError(f"blocked matrix has {matrix.nnz} entries, the CSR {train.nnz}")
        for _ in range(args.repeat):
            model = _daskflow_model(args, "cg")
            with Stopwatch() as watch:
                model.fit(matrix, client=client)
            fit_seconds.append(watch.wall)
            cpu_seconds.append(watch.cpu)
            iteration_seconds.extend(model.iteration_seconds_)
    # Back to the CSR's row and column order before the shared scorer.
    user_factors = np.zeros((train.shape[0], args.factors), dtype=np.float32)
    item_factors = np.zeros((train.shape[1], args.factors), dtype=np.float32)
    user_factors[rows] = model.user_factors_
    item_factors[columns] = model.item_factors_
    return {"seconds_per_iteration": statistics.median(iteration_seconds),
            "iteration_seconds": iteration_seconds, "fit_seconds": fit_seconds,
            "cpu_seconds_per_iteration": sum(cpu_seconds) / (args.iterations * len(cpu_seconds)),
            "setup_seconds": setup, "iterations": args.iterations, "block_size": args.block_size,
            "ndcg@10": ndcg_at_k(user_factors, item_factors, train, test)}


def recommend_throughput(name: str, recommend: Callable[[np.ndarray], Any], users: np.ndarray,
                         repeat: int) -> dict[str, Any]:
    """Users per second of ``recommend(users)`` (median over ``repeat`` calls)."""
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        recommend(users)
        seconds.append(time.perf_counter() - started)
    median = statistics.median(seconds)
    return {"peer": name, "n_users": len(users), "seconds": seconds, "users_per_second": len(users) / median}


def run_scaling(train: sp.csr_matrix, args: argparse.Namespace) -> list[dict[str, Any]]:
    """daskflow in-memory CG s/iteration on the first 1/4, 1/2 and all users' rows.

    Users are a random sample of the same distribution, so nnz scales with the share of
    users while the items (and their count) stay the same.
    """
    rows = []
    for share in (0.25, 0.5, 1.0):
        part = train[: int(round(train.shape[0] * share))]
        seconds: list[float] = []
        for _ in range(args.repeat):
            model = _daskflow_model(args, "cg", iterations=args.scaling_iterations)
            model.fit(part)
            seconds.extend(model.iteration_seconds_)
        median = statistics.median(seconds)
        rows.append({"users": part.shape[0], "nnz": int(part.nnz), "seconds_per_iteration": median,
                     "seconds_per_million_nnz": median / (part.nnz / 1e6), "iteration_seconds": seconds})
    return rows


# -- report ----------------------------------------------------------------------------------


def environment() -> dict[str, Any]:
    """What the numbers depend on: versions, BLAS and thread settings, CPU."""
    def version(package: str) -> str | None:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            return importlib.metadata.version(package)
        return None

    java = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {
        "python": platform.python_version(), "platform": platform.platform(), "cpu": cpu,
        "cores": os.cpu_count(), "java": (java.stderr.splitlines() or ["?"])[0],
        "versions": {p: version(p) for p in ("numpy", "scipy", "numba", "dask", "implicit",
                                              "pyspark", "daskflow")},
        # Recorded, never changed: the environment may pin OpenBLAS's kernel family.
        "env": {v: os.environ.get(v) for v in ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS",
                                               "MKL_NUM_THREADS", "OMP_NUM_THREADS",
                                               "NUMBA_NUM_THREADS")},
        "blas": [{k: lib.get(k) for k in ("internal_api", "version", "num_threads", "architecture",
                                          "filepath")}
                 for lib in threadpool_info() if lib.get("user_api") == "blas"],
    }


def _ratio(numerator: dict[str, Any] | None, denominator: dict[str, Any] | None,
           key: str = "seconds_per_iteration") -> float | None:
    if not numerator or not denominator or key not in numerator or key not in denominator:
        return None
    return numerator[key] / denominator[key]


def ratios(peers: dict[str, dict[str, Any]], recommend: list[dict[str, Any]],
           scaling: list[dict[str, Any]]) -> dict[str, float | None]:
    """The ratios the goals are stated in (None where a side is missing)."""
    out = {
        "daskflow-cg / implicit-cg": _ratio(peers.get("daskflow-cg"), peers.get("implicit-cg")),
        "daskflow-cholesky / implicit-cholesky": _ratio(peers.get("daskflow-cholesky"),
                                                        peers.get("implicit-cholesky")),
        "daskflow-cg / implicit-cg, CPU s/iteration": _ratio(
            peers.get("daskflow-cg"), peers.get("implicit-cg"), "cpu_seconds_per_iteration"),
        "daskflow-cg / spark": _ratio(peers.get("daskflow-cg"), peers.get("spark")),
        "blocked / in-memory (cg)": _ratio(peers.get("daskflow-blocked-cg"), peers.get("daskflow-cg")),
    }
    if "daskflow-cg" in peers and "implicit-cg" in peers:
        out["NDCG daskflow-cg / implicit-cg"] = \
            peers["daskflow-cg"]["ndcg@10"] / peers["implicit-cg"]["ndcg@10"]
    implicit_best = max((r["users_per_second"] for r in recommend if r["peer"].startswith("implicit")),
                        default=None)
    ours = next((r["users_per_second"] for r in recommend if r["peer"] == "daskflow-cg"), None)
    if implicit_best and ours:
        out["recommend users/s daskflow / implicit (its faster setting)"] = ours / implicit_best
    if scaling:
        out["s per M nnz, largest / smallest"] = \
            scaling[-1]["seconds_per_million_nnz"] / scaling[0]["seconds_per_million_nnz"]
    return out


def summarise(report: dict[str, Any]) -> str:
    """The markdown tables of a report."""
    peers = report["peers"]
    lines = ["| peer | s/iteration (median) | CPU s/iteration | iterations | fit s (median) | NDCG@10 |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, result in peers.items():
        fit = result.get("fit_seconds")
        fit = statistics.median(fit) if isinstance(fit, list) else fit
        extra = ""
        if name == "spark":
            extra = (f" (setup {result['setup_seconds']:.1f} s + fit {result['fit_seconds']:.1f} s; "
                     f"marginal {result['marginal_seconds_per_iteration']:.2f} s/it)")
        if "setup_seconds" in result and name != "spark":
            extra = f" (+ build {result['setup_seconds']:.1f} s)"
        cpu = result.get("cpu_seconds_per_iteration")
        cpu = f"{cpu:.2f}" if cpu is not None else "–"
        lines.append(f"| {name} | {result['seconds_per_iteration']:.3f}{extra} | {cpu} | "
                     f"{result['iterations']} | {fit:.1f} | {result['ndcg@10']:.4f} |")
    lines += ["", "| ratio | value |", "|---|---:|"]
    lines += [f"| {name} | {value:.3f} |" for name, value in report["ratios"].items() if value is not None]
    if report.get("recommend"):
        lines += ["", "| recommend (N=10, seen filtered) | users | median s | users/s |",
                  "|---|---:|---:|---:|"]
        lines += [f"| {r['peer']} | {r['n_users']} | {statistics.median(r['seconds']):.2f} | "
                  f"{r['users_per_second']:.0f} |" for r in report["recommend"]]
    if report.get("scaling"):
        lines += ["", "| daskflow CG, users | nnz | s/iteration | s per M nnz |", "|---|---:|---:|---:|"]
        lines += [f"| {r['users']} | {r['nnz']} | {r['seconds_per_iteration']:.3f} | "
                  f"{r['seconds_per_million_nnz']:.4f} |" for r in report["scaling"]]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Implicit ALS: daskflow vs implicit (CG, Cholesky) vs Spark MLlib, on 2 cores.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--users", type=int, default=200_000, help="rows of the synthetic matrix")
    parser.add_argument("--items", type=int, default=50_000, help="columns of the synthetic matrix")
    parser.add_argument("--nnz", type=int, default=10_000_000, help="target distinct (user, item) pairs")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and of the split")
    parser.add_argument("--factors", type=int, default=64, help="latent factors (rank) for every peer")
    parser.add_argument("--regularization", type=float, default=0.05,
                        help="λ of implicit and daskflow (Spark: see the module docstring)")
    parser.add_argument("--alpha", type=float, default=1.0, help="confidence c = 1 + alpha * plays")
    parser.add_argument("--iterations", type=int, default=15,
                        help="ALS iterations of implicit and daskflow")
    parser.add_argument("--spark-iterations", type=int, default=None,
                        help="ALS iterations of Spark (None: --iterations)")
    parser.add_argument("--cholesky-iterations", type=int, default=None,
                        help="ALS iterations of the Cholesky solvers (None: --iterations; 0: skip them)")
    parser.add_argument("--cg-steps", type=int, default=3, help="CG steps per row (CG solvers)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="fits per peer, the peers alternating round by round (Spark: always "
                             "one); medians over all iterations")
    parser.add_argument("--recommend-repeat", type=int, default=3, help="timed recommend calls per peer")
    parser.add_argument("--recommend-users", type=int, default=50_000,
                        help="random users in the recommend timing (0: all users)")
    parser.add_argument("--scaling-iterations", type=int, default=5,
                        help="iterations of each daskflow fit in the nnz-scaling check")
    parser.add_argument("--block-size", type=int, default=25_000, help="rows per block (blocked daskflow)")
    parser.add_argument("--skip-spark", action="store_true", help="leave Spark out")
    parser.add_argument("--skip-implicit", action="store_true", help="leave implicit out")
    parser.add_argument("--skip-daskflow", action="store_true", help="leave daskflow out")
    parser.add_argument("--skip-scaling", action="store_true", help="leave the nnz-scaling check out")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes (2k users x 1k items x 40k nnz, 16 factors) to smoke-test")
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "als.json", help="JSON report")
    args = parser.parse_args(argv)
    if args.quick:
        args.users, args.items, args.nnz, args.factors = 2_000, 1_000, 40_000, 16
        args.iterations, args.scaling_iterations, args.block_size = 3, 2, 700
    if args.spark_iterations is None:
        args.spark_iterations = args.iterations
    if args.cholesky_iterations is None:
        args.cholesky_iterations = args.iterations
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    matrix = load_play_counts(args.users, args.items, args.nnz, args.seed)
    train, test = hold_out_one(matrix, seed=args.seed)
    del matrix
    print(f"data: {train.shape[0]} users x {train.shape[1]} items, {train.nnz} training entries, "
          f"{test.nnz} held out ({time.perf_counter() - started:.1f} s)", flush=True)
    with_daskflow = not args.skip_daskflow and daskflow_available()
    if not args.skip_daskflow and not with_daskflow:
        print("daskflow.models.ImplicitALS is not importable yet: daskflow left out", flush=True)

    peers: dict[str, dict[str, Any]] = {}
    models: dict[str, Any] = {}
    recommend: list[dict[str, Any]] = []
    scaling: list[dict[str, Any]] = []
    report = {"command": " ".join([Path(sys.executable).name, *sys.argv]),
              "data": {"users": train.shape[0], "items": train.shape[1], "train_nnz": int(train.nnz),
                       "test_nnz": int(test.nnz), "seed": args.seed},
              "params": {k: v for k, v in vars(args).items() if k != "output"},
              "environment": environment(), "peers": peers, "ratios": {},
              "recommend": recommend, "scaling": scaling}

    def save() -> None:
        # Written after every stage, so a late failure (say, Spark) keeps what was measured.
        report["ratios"] = ratios(peers, recommend, scaling)
        report["total_seconds"] = time.perf_counter() - started
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2, default=str))

    def record(name: str, result: dict[str, Any]) -> None:
        if "model" in result:
            models[name] = result.pop("model")
        peers[name] = result
        print(f"{name}: {result['seconds_per_iteration']:.3f} s/iteration, "
              f"NDCG@10 {result['ndcg@10']:.4f}", flush=True)
        save()

    report["load_average"] = {"start": os.getloadavg()}
    for solver in ("cg", "cholesky"):
        if solver == "cholesky" and args.cholesky_iterations == 0:
            continue
        fits: dict[str, Callable[[], dict[str, Any]]] = {}
        if not args.skip_implicit:
            fits[f"implicit-{solver}"] = lambda s=solver: run_implicit(train, test, args, use_cg=s == "cg")
        if with_daskflow:
            fits[f"daskflow-{solver}"] = lambda s=solver: run_daskflow_memory(train, test, args, solver=s)
        for name, result in interleaved(fits, args.repeat).items():
            record(name, result)
    if with_daskflow:
        record("daskflow-blocked-cg", run_daskflow_blocked(train, test, args))
    report["load_average"]["after_fits"] = os.getloadavg()
    users = np.arange(train.shape[0])
    if 0 < args.recommend_users < len(users):
        users = np.sort(np.random.default_rng(args.seed).choice(users, args.recommend_users, replace=False))
    if "implicit-cg" in models:
        model = models["implicit-cg"]
        seen = confidence(train, args.alpha)
        # implicit scores batches of 100 users with numpy in each of its threads: whether a
        # threaded BLAS helps there is not obvious, so both are timed and the faster counts.
        for blas_threads in (1, N_THREADS):
            with threadpool_limits(blas_threads, "blas"):
                recommend.append(recommend_throughput(
                    f"implicit-cg (BLAS {blas_threads} thread{'s' * (blas_threads > 1)})",
                    lambda u: model.recommend(u, seen[u], N=TOP_K, filter_already_liked_items=True),
                    users, args.recommend_repeat))
    if "daskflow-cg" in models:
        ours = models["daskflow-cg"]
        recommend.append(recommend_throughput(
            "daskflow-cg", lambda u: ours.recommend(u, train[u], n=TOP_K, filter_seen=True),
            users, args.recommend_repeat))
    for row in recommend:
        print(f"recommend {row['peer']}: {row['users_per_second']:.0f} users/s", flush=True)

    if with_daskflow and not args.skip_scaling:
        scaling.extend(run_scaling(train, args))
    save()
    # Spark last: the slowest peer and the one most likely to fail (JVM, memory), so
    # everything else is measured and saved by then.
    if not args.skip_spark:
        record("spark", run_spark(train, test, args))
    print()
    print(summarise(report))
    print(f"\nwritten to {args.output}")
    return 0


if __name__ == "__main__":
    # implicit's BLAS warning is handled (threadpool_limits); tqdm's is noise here.
    warnings.filterwarnings("ignore", module="tqdm")
    # pyspark warns on every conversion that it is not tested with pandas 3; the columns
    # it converts here are plain int32/float32 and float arrays.
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
    sys.exit(main())
