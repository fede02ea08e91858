"""Logistic regression, side by side: daskflow vs scikit-learn vs dask-ml vs Spark MLlib.

Every peer fits the same planted-logistic data (dense float64) on the same two cores, in
one run, and every returned solution is scored under one objective, daskflow's (which is
scikit-learn's parameterisation)::

    f(w, b) = C · Σ_i log(1 + exp(-y_i (x_iᵀw + b))) + ½‖w‖²      (b not penalised)

The metric is the wall time to reach f* within 1e-6 relative, f* from a very tight solve
(daskflow newton and lbfgs at tol=1e-12, the smaller). A peer is run with the loosest
tolerance of its ladder that gets there (tried in order on the first repeat); if none does
within the ladder, its time and the gap it reached are reported instead.

Full run (the one quoted in docs/benchmarks.md)::

    /work/venv/bin/python benchmarks/logreg.py --rows 2000000 --repeat 3

Smoke test (every code path at tiny sizes; ~2 minutes, most of it Spark's JVM start)::

    /work/venv/bin/python benchmarks/logreg.py --quick

Matching the regularisation
---------------------------
- scikit-learn ``LogisticRegression(C=C)``: the same objective (lbfgs, newton-cholesky).
  ``liblinear`` penalises the intercept as a feature of value ``intercept_scaling``; it
  gets ``intercept_scaling=100`` so that this penalty (½(b/100)²) is negligible.
- dask-ml ``LogisticRegression(C=C)`` passes ``lamduh = 1/C`` to dask-glm, whose
  objective is Σ loss + lamduh·½‖β‖² = (1/C)·(C Σ loss + ½‖β‖²), with β including the
  intercept (penalised, unlike ours). dask-glm standardises the columns by default
  (``normalize=True``), which moves the penalty onto standardised coefficients, so it gets
  ``solver_kwargs={"normalize": False}``. Its ``newton`` ignores C (no penalty at all) and
  stops on the coefficient change; its solution is scored under our objective anyway.
  ``admm`` (l2, lamduh = 1/C) runs only at ``--admm-rows`` rows, in a subprocess capped by
  ``--admm-timeout`` seconds (the issue measured 339 s at 200k rows).
- Spark MLlib ``LogisticRegression``: objective (1/n)·Σ loss + regParam/2·‖w‖² with the
  intercept not penalised, so ``regParam = 1/(C·n)``, ``elasticNetParam=0``,
  ``standardization=False`` (the penalty on the original coefficients), ``local[2]``.
  Timed after an untimed warm-up fit; only ``fit`` on a cached DataFrame is timed.

Threads: daskflow in memory runs its 2-thread pool (BLAS pinned to 1 thread per pass);
scikit-learn and dask-ml run with their defaults (BLAS with 2 threads; dask's threaded
scheduler); daskflow on Dask runs a LocalCluster of 2 worker processes x 1 thread with the
data generated on the workers. Results: a markdown table on stdout and JSON in
``benchmarks/results/`` (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _sampler import RssSampler  # benchmarks/ is the script's directory

RESULTS_DIR = Path(__file__).resolve().parent / "results"
TARGET = 1e-6  # relative objective gap that counts as "reached the optimum"
FitResult = tuple[np.ndarray, float, float, int]  # coef, intercept, seconds, iterations


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--C", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--peers", default="daskflow,sklearn,daskml,spark",
                        help="comma-separated subset of daskflow, sklearn, daskml, spark")
    parser.add_argument("--scaling", default="500000,1000000,2000000",
                        help="row counts for the time-vs-rows runs ('' to skip)")
    parser.add_argument("--admm-rows", type=int, default=200_000)
    parser.add_argument("--admm-timeout", type=float, default=600)
    parser.add_argument("--ooc-rows", type=int, default=6_000_000,
                        help="rows of the out-of-core run (0 to skip)")
    parser.add_argument("--ooc-memory-limit", default="1GiB", help="per worker (2 workers)")
    parser.add_argument("--block-rows", type=int, default=250_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS_DIR / "logreg.json"))
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat")
    parser.add_argument("--admm-worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.rows, args.repeat, args.scaling = 100_000, 1, "25000,50000,100000"
        args.admm_rows, args.ooc_rows, args.block_rows = 20_000, 1_000_000, 50_000
        args.ooc_memory_limit = "300MiB"
    return args


# -- data and objective ------------------------------------------------------------------------


def make_block(seed: int, index: int, rows: int, features: int) -> tuple[np.ndarray, np.ndarray]:
    """Block ``index`` of the planted data: N(0, 1) features, labels from a logistic model.

    Blocks are drawn independently (seeded by (seed, index)), so the cluster generates the
    same rows on its workers as the driver does in memory.
    """
    planted = np.random.default_rng(seed)
    w = planted.standard_normal(features) * 2.0 / np.sqrt(features)
    rng = np.random.default_rng([seed, index])
    X = rng.standard_normal((rows, features))
    y = (rng.random(rows) < 1.0 / (1.0 + np.exp(-(X @ w - 1.5)))).astype(np.int64)
    return X, y


def make_data(seed: int, rows: int, features: int, block_rows: int) -> tuple[np.ndarray, np.ndarray]:
    sizes = block_sizes(rows, block_rows)
    parts = [make_block(seed, i, size, features) for i, size in enumerate(sizes)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def block_sizes(rows: int, block_rows: int) -> list[int]:
    return [min(block_rows, rows - lo) for lo in range(0, rows, block_rows)]


def objective(X: np.ndarray, y: np.ndarray, coef: np.ndarray, intercept: float, C: float) -> float:
    """daskflow's f(w, b), in row chunks (no n x d temporaries)."""
    total = 0.0
    signed = np.where(y == 1, 1.0, -1.0)
    for lo in range(0, len(y), 1_000_000):
        z = X[lo:lo + 1_000_000] @ coef + intercept
        total += float(np.logaddexp(0.0, -signed[lo:lo + 1_000_000] * z).sum())
    return C * total + 0.5 * float(coef @ coef)


# -- peers: each returns (coef, intercept, fit seconds, iterations) for a tolerance ------------


def daskflow_memory(X: np.ndarray, y: np.ndarray, C: float, solver: str, **extra: Any
                    ) -> Callable[[float], FitResult]:
    from daskflow.models import LogisticRegression

    settings = {"max_iter": 1000, **extra}

    def fit(tol: float) -> FitResult:
        model = LogisticRegression(solver=solver, C=C, tol=tol, **settings)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            started = time.perf_counter()
            model.fit(X, y)
            seconds = time.perf_counter() - started
        return model.coef_[0], float(model.intercept_[0]), seconds, model.n_iter_
    return fit


def sklearn_peer(X: np.ndarray, y: np.ndarray, C: float, solver: str) -> Callable[[float], FitResult]:
    from sklearn.linear_model import LogisticRegression

    def fit(tol: float) -> FitResult:
        extra = {"intercept_scaling": 100.0} if solver == "liblinear" else {}
        model = LogisticRegression(solver=solver, C=C, tol=tol, max_iter=10_000, **extra)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            started = time.perf_counter()
            model.fit(X, y)
            seconds = time.perf_counter() - started
        return model.coef_[0], float(model.intercept_[0]), seconds, int(np.max(model.n_iter_))
    return fit


def daskml_peer(X: np.ndarray, y: np.ndarray, C: float, solver: str, block_rows: int
                ) -> Callable[[float], FitResult]:
    import dask.array as da
    from dask_ml.linear_model import LogisticRegression

    Xd = da.from_array(X, chunks=(block_rows, X.shape[1]))
    yd = da.from_array(y, chunks=block_rows)

    def fit(tol: float) -> FitResult:
        kwargs = {"normalize": False}
        model = LogisticRegression(solver=solver, C=C, tol=tol, max_iter=1000, solver_kwargs=kwargs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            started = time.perf_counter()
            model.fit(Xd, yd)
            seconds = time.perf_counter() - started
        return np.ravel(model.coef_), float(np.ravel(model.intercept_)[0]), seconds, -1
    return fit


def admm_in_subprocess(X: np.ndarray, y: np.ndarray, C: float, timeout: float) -> dict[str, Any]:
    """dask-ml ADMM in a child process, killed after ``timeout`` seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        data, out = Path(tmp) / "data.npz", Path(tmp) / "out.json"
        np.savez(data, X=X, y=y, C=C)
        try:
            subprocess.run([sys.executable, __file__, "--admm-worker", str(data), str(out)],
                           timeout=timeout, check=True, capture_output=True)
        except subprocess.TimeoutExpired:
            return {"timed_out": True, "seconds": timeout}
        result = json.loads(out.read_text())
    return {"timed_out": False, **result}


def admm_worker(data: str, out: str) -> None:
    loaded = np.load(data)
    X, y, C = loaded["X"], loaded["y"], float(loaded["C"])
    coef, intercept, seconds, _ = daskml_peer(X, y, C, "admm", 50_000)(1e-4)
    Path(out).write_text(json.dumps({"coef": coef.tolist(), "intercept": intercept, "seconds": seconds}))


class Spark:
    """One local[2] session for every Spark fit of the run."""

    def __init__(self) -> None:
        from pyspark.sql import SparkSession

        self.session = (SparkSession.builder.master("local[2]").appName("daskflow-logreg")
                        .config("spark.driver.memory", "8g").config("spark.ui.enabled", "false")
                        .config("spark.driver.bindAddress", "127.0.0.1")
                        .config("spark.driver.host", "127.0.0.1")
                        .config("spark.sql.shuffle.partitions", "2").getOrCreate())
        self.session.sparkContext.setLogLevel("ERROR")

    def frame(self, X: np.ndarray, y: np.ndarray, directory: Path) -> Any:
        """The data as a cached (label, features) DataFrame, via a Parquet file."""
        import pyarrow as pa
        import pyarrow.parquet as pq
        from pyspark.ml.feature import VectorAssembler

        columns = {f"x{j}": X[:, j] for j in range(X.shape[1])}
        path = directory / f"spark-{len(y)}.parquet"
        pq.write_table(pa.table({"label": y.astype(np.float64), **columns}), path, row_group_size=250_000)
        raw = self.session.read.parquet(str(path)).repartition(2)
        frame = VectorAssembler(inputCols=list(columns), outputCol="features").transform(raw)
        frame = frame.select("label", "features").cache()
        frame.count()
        return frame

    def peer(self, frame: Any, n: int, C: float) -> Callable[[float], FitResult]:
        from pyspark.ml.classification import LogisticRegression

        def fit(tol: float) -> FitResult:
            model = LogisticRegression(regParam=1.0 / (C * n), elasticNetParam=0.0, standardization=False,
                                       fitIntercept=True, tol=tol, maxIter=1000)
            started = time.perf_counter()
            fitted = model.fit(frame)
            seconds = time.perf_counter() - started
            return (fitted.coefficients.toArray(), float(fitted.intercept), seconds,
                    fitted.summary.totalIterations)
        return fit

    def warm_up(self) -> None:
        from pyspark.ml.classification import LogisticRegression
        from pyspark.ml.linalg import Vectors

        rows = [(float(i % 2), Vectors.dense([float(i % 7), 1.0])) for i in range(200)]
        LogisticRegression(regParam=0.01).fit(self.session.createDataFrame(rows, ["label", "features"]))

    def stop(self) -> None:
        self.session.stop()


# -- measuring ----------------------------------------------------------------------------------


def time_to_target(name: str, fit: Callable[[float], FitResult], ladder: list[float], X: np.ndarray,
                   y: np.ndarray, C: float, f_star: float, repeat: int, budget: float = 900.0
                   ) -> dict[str, Any]:
    """Loosest tolerance of ``ladder`` whose solution is within TARGET of f*, then repeats."""
    tried = []
    for tol in ladder:
        coef, intercept, seconds, n_iter = fit(tol)
        gap = (objective(X, y, coef, intercept, C) - f_star) / abs(f_star)
        tried.append({"tol": tol, "seconds": round(seconds, 3), "gap": gap, "n_iter": n_iter})
        print(f"  {name}: tol={tol:g} {seconds:.2f}s gap={gap:.2e} iterations={n_iter}", flush=True)
        if gap <= TARGET or seconds > budget:
            break
    times = [tried[-1]["seconds"]]
    for _ in range(repeat - 1):
        times.append(round(fit(tried[-1]["tol"])[2], 3))
    return {"peer": name, "tol": tried[-1]["tol"], "reached": tried[-1]["gap"] <= TARGET,
            "gap": tried[-1]["gap"], "seconds": times, "median_seconds": statistics.median(times),
            "n_iter": tried[-1]["n_iter"], "ladder": tried}


def optimum(X: np.ndarray, y: np.ndarray, C: float) -> float:
    values = []
    for solver in ("newton", "lbfgs"):
        coef, intercept, _, _ = daskflow_memory(X, y, C, solver)(1e-12)
        values.append(objective(X, y, coef, intercept, C))
    return min(values)


def daskflow_on_cluster(args: argparse.Namespace, rows: int, memory_limit: str, C: float,
                        tol: float, repeat: int, memory_config: dict[str, Any] | None = None,
                        generate_in_fit: bool = False) -> list[dict[str, Any]]:
    """daskflow newton on a 2-worker LocalCluster (1 thread each), the blocks generated on
    the workers; ``repeat`` timed fits after an untimed warm-up fit (worker imports, JIT)."""
    import dask
    import distributed  # noqa: F401  (loads distributed's config defaults before we override some)

    from daskflow.cluster import connect

    out = []
    with dask.config.set(memory_config or {}), connect(
            "local", n_workers=2, threads_per_worker=1, memory_limit=memory_limit,
            dashboard_address=":0") as client:
        _cluster_fit(args, 20_000, C, tol, client)
        for _ in range(repeat):
            with RssSampler(client, period=0.25) as sampler:
                result = _cluster_fit(args, rows, C, tol, client, generate_in_fit)
            result.update(peak_worker_memory_bytes=max(sampler.peak.values(), default=0),
                          spilled_to_disk_peak_bytes=sum(sampler.spilled.values()))
            out.append(result)
    return out


def _cluster_fit(args: argparse.Namespace, rows: int, C: float, tol: float, client: Any,
                 generate_in_fit: bool = False) -> dict[str, Any]:
    """One timed fit. The data is generated on the workers and persisted before the clock
    starts (the in-memory peers do not time making their data either), unless
    ``generate_in_fit``: then generating is part of the fit's first stage, the way data read
    from storage would be (the out-of-core run, which must not hold a second copy)."""
    import dask
    import dask.array as da
    import distributed

    from daskflow.models import LogisticRegression

    sizes = block_sizes(rows, args.block_rows)
    parts = [dask.delayed(make_block, nout=2)(args.seed, i, s, args.features) for i, s in enumerate(sizes)]
    X = da.concatenate([da.from_delayed(p[0], (s, args.features), np.float64) for p, s in zip(parts, sizes)])
    y = da.concatenate([da.from_delayed(p[1], (s,), np.int64) for p, s in zip(parts, sizes)])
    if not generate_in_fit:
        X, y = client.persist([X, y])
        distributed.wait([X, y])
    model = LogisticRegression(solver="newton", C=C, tol=tol, max_iter=100)
    started = time.perf_counter()
    model.fit(X, y, client=client)
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 2), "n_iter": model.n_iter_,
            "iteration_seconds": [round(s, 2) for s in model.iteration_seconds_],
            "setup_seconds": round(seconds - sum(model.iteration_seconds_), 2),
            "coef": model.coef_[0], "intercept": float(model.intercept_[0]),
            "data_bytes": rows * (args.features + 1) * 8}


def machine() -> dict[str, Any]:
    from threadpoolctl import threadpool_info

    return {"python": platform.python_version(), "cpus": os.cpu_count(),
            "load_average": os.getloadavg(), "blas": [(i["internal_api"], i["version"], i["num_threads"])
                                                      for i in threadpool_info()]}


def main() -> None:
    args = parse_args()
    if args.admm_worker:
        admm_worker(*args.admm_worker)
        return
    peers = set(args.peers.split(","))
    C, n, d = args.C, args.rows, args.features
    report: dict[str, Any] = {"args": vars(args), "machine_start": machine(), "results": []}
    print(f"data: {n} x {d} (planted logistic), C={C}; load {os.getloadavg()}", flush=True)
    X, y = make_data(args.seed, n, d, args.block_rows)
    report["positive_rate"] = float(y.mean())
    f_star = optimum(X, y, C)
    report["f_star"] = f_star
    print(f"f* = {f_star:.12g}", flush=True)
    tight = [1e-4, 1e-6, 1e-8, 1e-10]
    runs: list[tuple[str, Callable[[], Callable[[float], FitResult]], list[float]]] = []
    if "daskflow" in peers:
        runs += [("daskflow newton (memory)", lambda: daskflow_memory(X, y, C, "newton"), tight),
                 ("daskflow lbfgs (memory)", lambda: daskflow_memory(X, y, C, "lbfgs"), tight),
                 ("daskflow sgd, Spark defaults (step 1, 100 iterations)",
                  lambda: daskflow_memory(X, y, C, "sgd", max_iter=100), [1e-3])]
    if "sklearn" in peers:
        runs += [(f"scikit-learn {s}", lambda s=s: sklearn_peer(X, y, C, s), tight)
                 for s in ("lbfgs", "newton-cholesky", "liblinear")]
    if "daskml" in peers:
        runs += [("dask-ml lbfgs", lambda: daskml_peer(X, y, C, "lbfgs", args.block_rows), tight),
                 ("dask-ml newton (ignores C)", lambda: daskml_peer(X, y, C, "newton", args.block_rows),
                  [1e-4, 1e-8])]
    for name, make, ladder in runs:
        report["results"].append(time_to_target(name, make(), ladder, X, y, C, f_star, args.repeat))
    if "spark" in peers:
        spark = Spark()
        try:
            spark.warm_up()
            with tempfile.TemporaryDirectory() as tmp:
                frame = spark.frame(X, y, Path(tmp))
                report["results"].append(time_to_target(
                    "Spark MLlib LogisticRegression (local[2])", spark.peer(frame, n, C),
                    [1e-6, 1e-8, 1e-10, 1e-12], X, y, C, f_star, args.repeat))
                frame.unpersist()
        finally:
            spark.stop()
    if "daskflow" in peers:
        cluster = daskflow_on_cluster(args, n, "4GiB", C, 1e-4, args.repeat)
        gap = (objective(X, y, cluster[0]["coef"], cluster[0]["intercept"], C) - f_star) / abs(f_star)
        times = [c["seconds"] for c in cluster]
        report["results"].append({"peer": "daskflow newton (LocalCluster 2x1, blocks on workers)",
                                  "tol": 1e-4, "reached": gap <= TARGET, "gap": gap, "seconds": times,
                                  "median_seconds": statistics.median(times),
                                  "n_iter": cluster[0]["n_iter"],
                                  "runs": [{k: v for k, v in c.items() if k != "coef"} for c in cluster]})
    print_table(report["results"])
    report["admm"] = run_admm(args, peers)
    report["scaling"] = run_scaling(args, peers, X, y)
    report["out_of_core"] = run_out_of_core(args, peers)
    report["machine_end"] = machine()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2, default=_plain))
    print(f"wrote {args.out}")


def run_admm(args: argparse.Namespace, peers: set[str]) -> dict[str, Any] | None:
    if "daskml" not in peers or not args.admm_rows:
        return None
    X, y = make_data(args.seed, args.admm_rows, args.features, args.block_rows)
    f_star = optimum(X, y, args.C)
    out = {"rows": args.admm_rows, "timeout": args.admm_timeout, "f_star": f_star}
    result = admm_in_subprocess(X, y, args.C, args.admm_timeout)
    if not result["timed_out"]:
        result["gap"] = (objective(X, y, np.array(result.pop("coef")), result["intercept"], args.C)
                         - f_star) / abs(f_star)
    out.update(result)
    for name, fit in (("daskflow lbfgs", daskflow_memory(X, y, args.C, "lbfgs")),
                      ("daskflow newton", daskflow_memory(X, y, args.C, "newton")),
                      ("scikit-learn lbfgs", sklearn_peer(X, y, args.C, "lbfgs")),
                      ("dask-ml lbfgs", daskml_peer(X, y, args.C, "lbfgs", 50_000)),
                      ("dask-ml newton", daskml_peer(X, y, args.C, "newton", 50_000))):
        out[name] = time_to_target(name, fit, [1e-4, 1e-6, 1e-8, 1e-10], X, y, args.C, f_star, args.repeat)
    print(f"admm at {args.admm_rows} rows: {out}", flush=True)
    return out


def run_scaling(args: argparse.Namespace, peers: set[str], X: np.ndarray, y: np.ndarray
                ) -> list[dict[str, Any]]:
    rows = [int(r) for r in args.scaling.split(",") if r]
    out = []
    for n in rows:
        if n > len(y):
            continue
        Xn, yn = X[:n], y[:n]   # the first blocks of the same data
        f_star = optimum(Xn, yn, args.C)
        entry: dict[str, Any] = {"rows": n}
        fits = [("daskflow newton", daskflow_memory(Xn, yn, args.C, "newton")),
                ("daskflow lbfgs", daskflow_memory(Xn, yn, args.C, "lbfgs"))]
        if "sklearn" in peers:
            fits.append(("scikit-learn lbfgs", sklearn_peer(Xn, yn, args.C, "lbfgs")))
        for name, fit in fits:
            result = time_to_target(name, fit, [1e-4, 1e-6, 1e-8], Xn, yn, args.C, f_star, args.repeat)
            entry[name] = {"median_seconds": result["median_seconds"], "tol": result["tol"],
                           "gap": result["gap"], "n_iter": result["n_iter"]}
        out.append(entry)
        print(f"scaling {n}: {entry}", flush=True)
    return out


def run_out_of_core(args: argparse.Namespace, peers: set[str]) -> dict[str, Any] | None:
    if "daskflow" not in peers or not args.ooc_rows:
        return None
    from dask.utils import parse_bytes

    # Spill early and never pause: the data is meant not to fit (see benchmarks/als_memory.py).
    memory = {"distributed.worker.memory.target": 0.4, "distributed.worker.memory.spill": 0.5,
              "distributed.worker.memory.pause": False, "distributed.worker.memory.terminate": 0.95}
    result = daskflow_on_cluster(args, args.ooc_rows, args.ooc_memory_limit, args.C, 1e-4, 1, memory,
                                 generate_in_fit=True)[0]
    result.pop("coef")
    result["workers_total_memory"] = 2 * parse_bytes(args.ooc_memory_limit)
    result["rows"] = args.ooc_rows
    print(f"out of core: {result}", flush=True)
    return result


def print_table(results: list[dict[str, Any]]) -> None:
    print("\n| peer | tol | median s | reached 1e-6 | gap | iterations |")
    print("|---|---:|---:|---|---:|---:|")
    for r in results:
        print(f"| {r['peer']} | {r['tol']:g} | {r['median_seconds']:.2f} | {r['reached']} | "
              f"{r['gap']:.1e} | {r['n_iter']} |")


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


if __name__ == "__main__":
    main()
