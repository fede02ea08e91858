"""Content models for cold items: the encoder, ContentToFactors, ImplicitALS item_content, Voyager."""

from __future__ import annotations

import pickle
from pathlib import Path

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.utils.estimator_checks import parametrize_with_checks

from daskflow import DataError, SchemaError
from daskflow.features import build_interactions
from daskflow.models import ContentEncoder, ContentToFactors, ImplicitALS, ItemContent
from daskflow.sample import TRACK_CONTENT

# -- the sample lake's content ---------------------------------------------------------


def test_sample_tracks_carry_content_with_its_truth(tiny_lake: Path) -> None:
    tracks = pd.read_parquet(tiny_lake / "tracks")
    truth = pd.read_parquet(tiny_lake / "truth" / "tracks.parquet")
    assert list(truth.track_id) == list(tracks.track_id)
    assert {len(v) for v in tracks.embedding} == {TRACK_CONTENT["embedding_dim"]}
    # The label is the true genre for about the planted share, and wrong for the rest.
    correct = (tracks.genre == truth.true_genre).to_numpy()
    assert (correct == truth.genre_label_correct.to_numpy()).all()
    assert abs(correct.mean() - TRACK_CONTENT["genre_label_accuracy"]) < 0.06
    assert tracks.tags.str.split(" ").str[0].eq(tracks.genre).all()
    # The embedding is informative of the true genre: nearest genre centroid beats chance by far.
    vectors = np.stack(tracks.embedding.to_numpy())
    centroids = pd.DataFrame(vectors).groupby(truth.true_genre.to_numpy()).mean()
    nearest = centroids.index[np.argmax(vectors @ centroids.to_numpy().T, axis=1)]
    assert (nearest == truth.true_genre.to_numpy()).mean() > 0.6


# -- the encoder ------------------------------------------------------------------------


def _items() -> pd.DataFrame:
    return pd.DataFrame({
        "item_id": ["a", "b", "c", "d", "e", "f"],
        "genre": ["rock", "pop", "rock", None, "jazz", "pop"],
        "tags": ["Comedy Drama", "Drama", "Comedy", "Horror Comedy", None, "Drama"],
        "year": [1990.0, 2000.0, np.nan, 2010.0, 1980.0, 2020.0],
        "explicit": [True, False, False, True, False, False],
        "vector": [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], None, [2.0, 0.0], [0.0, 2.0]],
    })


def test_encoder_kinds_scaling_and_nulls() -> None:
    encoder = ContentEncoder(separators={"tags": " "}).fit(_items())
    kinds = {c["name"]: c["kind"] for c in encoder.state_}
    assert kinds == {"genre": "categorical", "tags": "multi", "year": "numeric", "explicit": "numeric",
                     "vector": "vector"}
    X = encoder.transform(_items()).toarray()
    assert X.shape == (6, 3 + 3 + 1 + 1 + 2) == (6, encoder.n_output_features_)
    genre, tags, year = X[:, 0:3], X[:, 3:6], X[:, 6]
    assert genre[3].sum() == 0 and genre.sum(axis=1)[[0, 1, 2, 4, 5]].tolist() == [1] * 5
    comedy_drama = tags[0]
    assert np.allclose(sorted(comedy_drama[comedy_drama > 0]), [2 ** -0.5] * 2)  # 1/sqrt(2) each
    assert tags[4].sum() == 0
    assert year[2] == 0 and np.isclose(year[[0, 1, 3, 4, 5]].std(), 1.0)  # standardised; null -> mean
    assert np.allclose(X[3, 8:], 0)  # a null vector encodes as the mean
    # Unknown values at transform time encode as nothing.
    other = _items().assign(genre=["metal"] * 6)
    assert encoder.transform(other).toarray()[:, 0:3].sum() == 0


def _parquet_parts(frame: pd.DataFrame, directory: Path, n_parts: int) -> dd.DataFrame:
    """The frame as ``n_parts`` real Parquet files, read lazily (one partition each)."""
    directory.mkdir()
    for i, part in enumerate(np.array_split(np.arange(len(frame)), n_parts)):
        frame.iloc[part].to_parquet(directory / f"part-{i}.parquet", index=False)
    return dd.read_parquet(str(directory))


def test_encoder_out_of_core_equals_in_memory_and_caps_categories(tmp_path: Path) -> None:
    frame = _items()
    whole = ContentEncoder(separators={"tags": " "}, max_categories=2).fit(frame)
    lazy = _parquet_parts(frame, tmp_path / "items", 3)
    assert lazy.npartitions == 3
    parts = ContentEncoder(separators={"tags": " "}, max_categories=2).fit(lazy)
    assert parts.state_ == whole.state_
    genre = next(c for c in whole.state_ if c["name"] == "genre")
    assert genre["categories"] == ["pop", "rock"]  # the two most frequent (2 each; jazz has 1)
    assert (whole.transform(frame) != parts.transform(frame)).nnz == 0


@pytest.mark.parametrize(("change", "error", "match"), [
    (lambda f: f.drop(columns="item_id"), SchemaError, "no ID column 'item_id'"),
    (lambda f: f.assign(item_id=["a", "a", "b", "c", "d", "e"]), DataError, r"duplicate IDs.*'a'"),
    (lambda f: f.assign(when=pd.Timestamp("2026-01-01")), SchemaError,
     r"'when' has unsupported type datetime64"),
    (lambda f: f.assign(vector=[[1.0], [1.0, 2.0], None, None, None, None]), DataError,
     r"'vector' holds vectors of differing lengths \(1 and 2, e.g. item 'b'\)"),
    (lambda f: f.assign(genre=None), DataError, "'genre' holds only nulls"),
])
def test_encoder_rejects_bad_tables(change, error, match) -> None:
    with pytest.raises(error, match=match):
        ContentEncoder(separators={"tags": " "}).fit(change(_items()))


def test_vectors_of_differing_lengths_in_different_partitions(tmp_path: Path) -> None:
    frame = _items().assign(vector=[[1.0]] * 3 + [[1.0, 2.0]] * 3)
    with pytest.raises(DataError, match=r"differing lengths \(1 and 2, e.g. items 'a' and 'd'\)"):
        ContentEncoder(columns=["vector"]).fit(_parquet_parts(frame, tmp_path / "items", 2))


# -- ContentToFactors -------------------------------------------------------------------


def _expected_failures(estimator: ContentToFactors) -> dict[str, str]:
    if estimator.norm == "mean":
        # One output: the direction is a sign and every norm the mean, by design (a prior).
        return {"check_regressors_train": "norm='mean' predicts no norm, so R^2 on one target is low"}
    return {}


@parametrize_with_checks([ContentToFactors(), ContentToFactors(norm="mean")],
                         expected_failed_checks=_expected_failures)
def test_sklearn_compatible(estimator, check) -> None:
    check(estimator)


@pytest.mark.parametrize("model", ["ridge", "mlp"])
def test_content_to_factors_learns_directions_and_norms(model: str) -> None:
    rng = np.random.default_rng(0)
    n, d, f = 600, 12, 4
    X = sp.csr_matrix(rng.normal(size=(n, d)) * (rng.random((n, d)) < 0.5))
    directions = np.asarray(X @ rng.normal(size=(d, f)))
    norms = np.exp(np.asarray(X @ rng.normal(0, 0.3, d)).ravel())
    y = directions / np.linalg.norm(directions, axis=1, keepdims=True) * norms[:, None]
    fitted = ContentToFactors(model=model, alpha=0.01, epochs=60).fit(X[:500], y[:500])
    predicted = fitted.predict(X[500:])
    cosine = (predicted * y[500:]).sum(1) / np.linalg.norm(predicted, axis=1) / norms[500:]
    assert np.median(cosine) > (0.97 if model == "ridge" else 0.9)
    assert np.corrcoef(np.log(fitted.predict_norm(X[500:])), np.log(norms[500:]))[0, 1] > 0.9
    # The popularity prior: every item gets the warm items' (geometric) mean norm.
    prior = ContentToFactors(model=model, norm="mean", epochs=5).fit(X[:500], y[:500])
    assert np.allclose(prior.predict_norm(X[500:]), np.exp(np.log(norms[:500]).mean()))


# -- ImplicitALS with item content --------------------------------------------------------


@pytest.fixture(scope="module")
def cold_setup(tiny_lake: Path) -> dict[str, object]:
    """ALS fitted without a fifth of the tracks, which only the content table knows."""
    tracks = pd.read_parquet(tiny_lake / "tracks")
    cold = set(tracks.track_id.sample(frac=0.2, random_state=0))
    listens = dd.read_parquet(tiny_lake / "listens", columns=["user_id", "track_id", "ts"])
    listens = listens[~listens.track_id.isin(list(cold))]
    matrix = build_interactions(listens, block_size=120)
    content = ItemContent(tracks, id_col="track_id",
                          encoder=ContentEncoder(separators={"tags": " "}))
    model = ImplicitALS(n_factors=8, n_iter=5, recommend_index="voyager").fit(matrix, item_content=content)
    return {"tracks": tracks, "cold": cold, "matrix": matrix, "model": model}


def test_cold_items_join_the_model(cold_setup: dict) -> None:
    model, matrix, cold = cold_setup["model"], cold_setup["matrix"], cold_setup["cold"]
    assert model.n_warm_items_ == matrix.n_items
    unplayed = set(cold_setup["tracks"].track_id) - set(matrix.item_ids)  # held out, or never played
    assert cold <= unplayed and set(model.item_ids_[model.n_warm_items_:]) == unplayed
    assert model.item_factors_.shape == (len(cold_setup["tracks"]), 8)
    assert np.isfinite(model.item_factors_).all()
    # recommend_all (on the blocks, through the Voyager index) returns cold items by their IDs.
    table = model.recommend_all(matrix, n=50).compute()
    assert set(table.item_id) & cold
    # A cold item's nearest items share its artist more often than chance.
    tracks = cold_setup["tracks"].set_index("track_id")
    queries = list(model.item_ids_[model.n_warm_items_:][:40])
    found, _ = model.similar_items(queries, n=5)
    same = [(tracks.artist_id[model.item_ids_[f]] == tracks.artist_id[q]).mean()
            for q, f in zip(queries, found)]
    assert np.mean(same) > 5 * (1 / tracks.artist_id.nunique())


def test_voyager_paths_match_exact_search(cold_setup: dict) -> None:
    model = cold_setup["model"]
    exact = pickle.loads(pickle.dumps(model))
    exact._voyager = None
    users = np.arange(model.n_users_)
    seen = sp.csr_matrix((len(users), model.n_warm_items_))
    approx_items, approx_scores = model.recommend(users, seen, n=10, filter_seen=False)
    exact_items, exact_scores = exact.recommend(users, seen, n=10, filter_seen=False)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(approx_items.tolist(), exact_items.tolist())])
    assert recall >= 0.95
    assert np.allclose(approx_scores[:, 0], exact_scores[:, 0], rtol=1e-4)
    items = np.arange(0, model.item_factors_.shape[0], 7)
    voyager, _ = model.similar_items(items, n=10, method="voyager")
    cosine, _ = model.similar_items(items, n=10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(voyager.tolist(), cosine.tolist())])
    assert recall >= 0.95


def test_add_an_item_after_fitting_and_after_loading(cold_setup: dict, tmp_path: Path) -> None:
    model = pickle.loads(pickle.dumps(cold_setup["model"]))
    tracks = cold_setup["tracks"]
    # A new track: a copy of a warm one's content under a new ID gets that track's predicted factors.
    source = tracks[tracks.track_id.isin(model.item_ids_[: model.n_warm_items_])].iloc[[0]]
    new = source.assign(track_id="t-new")
    before = model.item_factors_.shape[0]
    (index,) = model.add_items(new)
    assert index == before and model.item_ids_[index] == "t-new"
    expected = model.content_regressor_.predict(model.content_encoder_.transform(source))
    assert np.allclose(model.item_factors_[index], expected[0], atol=1e-5)
    found, _ = model.similar_items("t-new", n=3)
    assert found.shape == (1, 3) and index not in found
    # Recommendations through the updated Voyager index reach it for a user who scores it highest.
    best_user = int(np.argmax(model.user_factors_ @ model.item_factors_[index]))
    top, _ = model.recommend([best_user], sp.csr_matrix((1, model.n_warm_items_)),
                             n=model.item_factors_.shape[0])
    assert index in top[0]
    with pytest.raises(DataError, match="'t-new' are already in the model"):
        model.add_items(new)
    # Saved and loaded: cold items, content model and index come back, and items can still be added.
    model.save(str(tmp_path / "model.npz"))
    loaded = ImplicitALS.load(str(tmp_path / "model.npz"))
    assert loaded.n_warm_items_ == model.n_warm_items_ and list(loaded.item_ids_) == list(model.item_ids_)
    seen = sp.csr_matrix((3, model.n_warm_items_))
    assert (loaded.recommend([0, 1, 2], seen)[0] == model.recommend([0, 1, 2], seen)[0]).all()
    (again,) = loaded.add_items(new.assign(track_id="t-newer"))
    assert np.allclose(loaded.item_factors_[again], model.item_factors_[index])
    # Folding new users in still works on the warm items' columns.
    assert loaded.transform(sp.csr_matrix(np.ones((1, model.n_warm_items_)))).shape == (1, 8)


def test_no_warm_item_with_content(cold_setup: dict) -> None:
    tracks = cold_setup["tracks"].assign(track_id=lambda f: "x" + f.track_id)
    with pytest.raises(DataError, match=r"no warm items with content: none of the 400 IDs .*'track_id'"):
        ImplicitALS(n_factors=4, n_iter=1).fit(cold_setup["matrix"],
                                               item_content=ItemContent(tracks, "track_id"))


def test_without_content_add_items_is_refused() -> None:
    plays = sp.random(20, 10, density=0.3, random_state=0, format="csr")
    model = ImplicitALS(n_factors=2, n_iter=1).fit(plays)
    with pytest.raises(DataError, match="add_items needs a content model"):
        model.add_items(pd.DataFrame({"item_id": [1]}))
