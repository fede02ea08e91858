"""Exact pruned top-n vs Annoy vs Voyager on ALS-like factors: queries/s, recall@10, build, memory.

Synthetic factors shaped like a real ALS fit: items in ``--genres`` clusters (a genre
centroid plus noise), their norms falling off with a Zipf-like popularity (norm ~ rank^-0.35,
shuffled), users mixtures of two or three genres. Every call path daskflow has is measured
against its exact counterpart, recall@10 = |ANN top-10 ∩ exact top-10| / 10 per query:

- recommend (inner product): ``top_n_inner_product`` (exact, pruned by norm) vs Annoy's
  ``dot`` metric vs Voyager through ``ImplicitALS(recommend_index="voyager")``'s own
  functions (norm-ranked buckets of lifted items), at several search depths;
- similar_items (cosine): exact cosine vs Annoy ``angular`` vs Voyager ``Cosine``.

Queries run on one thread for every method (queries/s per core); builds use ``--threads``.
Memory is the index's serialised size and the process RSS growth while building it.

    python benchmarks/ann.py --items 1000000 --factors 64 --queries 2000 --threads 16
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np
import psutil
from threadpoolctl import threadpool_limits


def make_factors(n_items: int, n_users: int, n_factors: int, n_genres: int, seed: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centroids = rng.normal(size=(n_genres, n_factors)).astype(np.float32)
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    genre = rng.integers(0, n_genres, n_items)
    noise = rng.normal(0, 0.6 / np.sqrt(n_factors), (n_items, n_factors)).astype(np.float32)
    items = centroids[genre] + noise
    items /= np.linalg.norm(items, axis=1, keepdims=True)
    popularity = rng.permutation(np.arange(1, n_items + 1, dtype=np.float32) ** -0.35)
    items *= (popularity / popularity.max())[:, None]
    mix = rng.dirichlet(np.full(n_genres, 0.1), n_users).astype(np.float32)
    users = mix @ centroids + rng.normal(0, 0.3 / np.sqrt(n_factors), (n_users, n_factors)).astype(np.float32)
    return users.astype(np.float32), items.astype(np.float32)


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / exact.shape[1]
                          for a, b in zip(found.tolist(), exact.tolist())]))


def rss() -> int:
    return psutil.Process(os.getpid()).memory_info().rss


def timed(function, *args):  # noqa: ANN001, ANN201 - a benchmark helper
    started = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--genres", type=int, default=100)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--trees", type=int, default=50, help="Annoy trees")
    parser.add_argument("--ef", type=int, nargs="+", default=[20, 50, 100, 200], help="Voyager query depths")
    parser.add_argument("--search-k", type=int, nargs="+", default=[10_000, 50_000, 200_000],
                        help="Annoy search_k values")
    parser.add_argument("--skip-annoy", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from daskflow.models._top_n_kernels import top_n, top_n_inner_product
    from daskflow.models.als import _content_and_ann as ann

    users, items = make_factors(args.items, args.queries, args.factors, args.genres, args.seed)
    k = 10
    rows: list[dict] = []

    def report(row: dict) -> None:
        rows.append(row)
        print(json.dumps(row), flush=True)

    # -- recommend: inner product -----------------------------------------------------------
    with threadpool_limits(1, "blas"):
        top_n_inner_product(users[:8], items, k)  # compile
        (exact, _), seconds = timed(top_n_inner_product, users, items, k)
    report({"path": "recommend", "method": "exact (top_n_inner_product)", "qps": args.queries / seconds,
            "recall@10": 1.0})
    before = rss()
    index, build = timed(ann.build_inner_product_index, items, args.seed)
    size = len(index.as_bytes())
    report({"path": "recommend", "method": "voyager build", "build_s": build, "index_mb": size / 2**20,
            "rss_growth_mb": (rss() - before) / 2**20, "threads": args.threads})
    for ef in args.ef:
        (found, _), seconds = timed(ann.voyager_top_n, index, users, items, k, None, ef)
        report({"path": "recommend", "method": f"voyager ef={ef}", "qps": args.queries / seconds,
                "recall@10": recall(found, exact), "speedup_vs_exact": (args.queries / seconds) /
                rows[0]["qps"]})
    del index
    annoy_index = None
    if not args.skip_annoy:
        from annoy import AnnoyIndex

        before = rss()
        started = time.perf_counter()
        annoy_index = AnnoyIndex(args.factors, "dot")
        for i, vector in enumerate(items):
            annoy_index.add_item(i, vector)
        annoy_index.set_seed(args.seed)
        annoy_index.build(args.trees, n_jobs=args.threads)
        build = time.perf_counter() - started
        with tempfile.NamedTemporaryFile(suffix=".ann") as handle:
            annoy_index.save(handle.name)
            size = os.path.getsize(handle.name)
            annoy_index.unload()
            annoy_index.load(handle.name)
            report({"path": "recommend", "method": f"annoy dot build ({args.trees} trees)", "build_s": build,
                    "index_mb": size / 2**20, "rss_growth_mb": (rss() - before) / 2**20})
            for search_k in args.search_k:
                started = time.perf_counter()
                found = np.array([annoy_index.get_nns_by_vector(u, k, search_k=search_k) for u in users])
                seconds = time.perf_counter() - started
                report({"path": "recommend", "method": f"annoy dot search_k={search_k}",
                        "qps": args.queries / seconds, "recall@10": recall(found, exact),
                        "speedup_vs_exact": (args.queries / seconds) / rows[0]["qps"]})
            annoy_index.unload()

    # -- similar_items: cosine --------------------------------------------------------------
    normed = items / np.linalg.norm(items, axis=1, keepdims=True)
    query = np.random.default_rng(args.seed + 1).choice(args.items, min(args.queries, 500), replace=False)
    started = time.perf_counter()
    exact_similar = np.vstack([top_n(normed[query[i:i + 50]] @ normed.T, k + 1)[0]
                               for i in range(0, len(query), 50)])
    seconds = time.perf_counter() - started
    exact_similar = np.array([[j for j in row if j != q][:k] for q, row in zip(query, exact_similar)])
    exact_qps = len(query) / seconds
    report({"path": "similar_items", "method": "exact cosine", "qps": exact_qps, "recall@10": 1.0})

    class Model:  # what similar_voyager reads of an ImplicitALS
        item_factors_ = items
        random_state = args.seed
        index_ef = 100

    model = Model()
    started = time.perf_counter()
    ann.similar_voyager(model, query[:1], k)  # builds the cosine index
    report({"path": "similar_items", "method": "voyager cosine build",
            "build_s": time.perf_counter() - started})
    for ef in args.ef:
        model.index_ef = ef
        (found, _), seconds = timed(ann.similar_voyager, model, query, k)
        report({"path": "similar_items", "method": f"voyager cosine ef={ef}", "qps": len(query) / seconds,
                "recall@10": recall(found, exact_similar),
                "speedup_vs_exact": len(query) / seconds / exact_qps})
    if not args.skip_annoy:
        from annoy import AnnoyIndex

        started = time.perf_counter()
        angular = AnnoyIndex(args.factors, "angular")
        for i, vector in enumerate(items):
            angular.add_item(i, vector)
        angular.set_seed(args.seed)
        angular.build(args.trees, n_jobs=args.threads)
        report({"path": "similar_items", "method": f"annoy angular build ({args.trees} trees)",
                "build_s": time.perf_counter() - started})
        for search_k in args.search_k:
            started = time.perf_counter()
            found = np.array([[j for j in angular.get_nns_by_item(int(q), k + 1, search_k=search_k)
                               if j != q][:k] for q in query])
            seconds = time.perf_counter() - started
            report({"path": "similar_items", "method": f"annoy angular search_k={search_k}",
                    "qps": len(query) / seconds, "recall@10": recall(found, exact_similar),
                    "speedup_vs_exact": len(query) / seconds / exact_qps})
    print("\n| path | method | queries/s | recall@10 | vs exact | build s | index MB |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        cells = [f"{row['qps']:,.0f}" if "qps" in row else "",
                 f"{row['recall@10']:.3f}" if "recall@10" in row else "",
                 f"{row['speedup_vs_exact']:.1f}x" if "speedup_vs_exact" in row else "",
                 f"{row['build_s']:.1f}" if "build_s" in row else "",
                 f"{row['index_mb']:.0f}" if "index_mb" in row else ""]
        print(f"| {row['path']} | {row['method']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
