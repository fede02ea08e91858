"""Cold-item ROC AUC and recall@10 on MovieLens-100k from genres and release year.

The data is fetched at run time (never committed): ``../shared/data/fetch.sh DIR`` unpacks
``ml-100k.inter`` and ``ml-100k.item`` under ``DIR/ml-100k/recbole/dataset_example/ml-100k``.
Ratings of 4 and 5 are the interactions (as in Kula 2015, LightFM); each movie's content is
its genres (multi-valued, separated by spaces) and release year. A fifth of the movies are
held out entirely (``evaluate_cold_items``) and ranked for every user by the content model,
the content-free baselines and ALS fitted with half of their ratings.

    python benchmarks/movielens_cold.py DIR [--share 0.2] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd


def load(directory: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    root = directory / "ml-100k" / "recbole" / "dataset_example" / "ml-100k"
    ratings = pd.read_csv(root / "ml-100k.inter", sep="\t")
    ratings.columns = [c.split(":")[0] for c in ratings.columns]
    items = pd.read_csv(root / "ml-100k.item", sep="\t")
    items.columns = [c.split(":")[0] for c in items.columns]
    positive = ratings[ratings.rating >= 4]
    listens = pd.DataFrame({"user_id": positive.user_id.astype(str), "item_id": positive.item_id.astype(str),
                            "ts": pd.to_datetime(positive.timestamp, unit="s")})
    content = pd.DataFrame({"item_id": items.item_id.astype(str),
                            "genres": items["class"].fillna("").astype(str),
                            "release_year": pd.to_numeric(items.release_year, errors="coerce")})
    return listens, content


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--share", type=float, default=0.2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--factors", type=int, default=32)
    parser.add_argument("--model", default="ridge", choices=["ridge", "mlp"])
    args = parser.parse_args()
    import dask.dataframe as dd

    from daskflow.evaluation import evaluate_cold_items
    from daskflow.features import build_interactions
    from daskflow.models import ContentEncoder, ContentToFactors, ImplicitALS, ItemContent

    listens, content = load(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        listens.to_parquet(Path(tmp) / "listens.parquet", index=False)
        matrix = build_interactions(dd.read_parquet(Path(tmp) / "listens.parquet"), item_col="item_id")
    results = []
    for seed in args.seeds:
        item_content = ItemContent(content, id_col="item_id",
                                   encoder=ContentEncoder(separators={"genres": " "}),
                                   regressor=ContentToFactors(model=args.model))
        model = ImplicitALS(n_factors=args.factors, n_iter=10, random_state=seed)
        result = evaluate_cold_items(model, matrix, item_content, share=args.share, k=(10,), seed=seed)
        results.append(result)
        print(json.dumps({"seed": seed, **{name: {k: round(v, 4) for k, v in scores.items()}
                                           for name, scores in result["scorers"].items()},
                          "gap_closed": result["gap_closed"]}), flush=True)
    for name in results[0]["scorers"]:
        auc = [r["scorers"][name]["auc"] for r in results]
        hit = [r["scorers"][name]["recall@10"] for r in results]
        print(f"| {name} | {np.mean(auc):.3f} ± {np.std(auc):.3f} | {np.mean(hit):.3f} ± {np.std(hit):.3f} |")


if __name__ == "__main__":
    main()
