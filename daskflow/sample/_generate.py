"""Writing the sample data lake partition by partition through Dask."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import dask
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from daskflow._dask import named
from daskflow._errors import ParameterError
from daskflow._progress import compute_tasks
from daskflow._version import __version__
from daskflow.io import atomic_output, open_filesystem
from daskflow.sample._planted_model_kernels import (
    CONVERSION_COEFFICIENTS,
    CONVERSION_WINDOW_DAYS,
    COUNTRIES,
    EXPERIMENT,
    GENRES,
    START_DATE,
    TRACK_CONTENT,
    Catalog,
    enrollment_days,
    format_ids,
    listening_lift,
    listens_for_day,
    make_catalog,
    track_content,
    user_latents,
)
from daskflow.sample._scales import SCALES, Scale

__all__ = ["generate_lake", "LAKE_TABLES", "LAKE_SCHEMAS"]

log = logging.getLogger("daskflow")

#: Tables of a generated lake, and whether each is hive-partitioned by date.
LAKE_TABLES = {"listens": True, "users": False, "tracks": False, "ad_impressions": True,
               "conversions": False, "experiments": False}
#: The example A/B test's metric window (configs/ab.yaml); the truth's effects are for it.
TRUTH_WINDOW_DAYS = 14

#: The declared schema of each table, usable as a source's ``schema:``.
LAKE_SCHEMAS: dict[str, dict[str, str]] = {
    "listens": {"user_id": "string", "track_id": "string", "artist_id": "string",
                "ms_played": "integer", "ts": "timestamp", "platform": "string",
                "country": "string"},
    "users": {"user_id": "string", "age": "integer", "gender": "string", "country": "string",
              "product": "string", "signup_date": "date"},
    "tracks": {"track_id": "string", "artist_id": "string", "duration_ms": "integer",
               "genre": "string", "tags": "string", "tempo": "float", "energy": "float"},
    "ad_impressions": {"user_id": "string", "ad_id": "string", "campaign": "string",
                       "placement": "string", "ts": "timestamp"},
    "conversions": {"user_id": "string", "ts": "timestamp", "product": "string"},
    "experiments": {"user_id": "string", "experiment": "string", "variant": "string",
                    "assigned_at": "timestamp"},
}
_GENDERS = np.array(["F", "M", "X"])


def generate_lake(out: str, *, scale: str | Scale = "small", format: str = "parquet", seed: int = 0,
                  storage_options: Mapping[str, Any] | None = None, client: Any = None,
                  overwrite: bool = False, srm: bool = False) -> dict[str, Any]:
    """Generate a synthetic listening/ad data lake with a planted ground truth.

    Writes ``listens/date=YYYY-MM-DD/``, ``users/``, ``tracks/``,
    ``ad_impressions/date=YYYY-MM-DD/``, ``conversions/``, ``experiments/`` (the planted A/B
    test's assignments) and ``truth/`` (latent tastes, true conversion probabilities,
    ``model.json`` with the conversion coefficients, ``experiment.json`` with the A/B test's
    true effects, ``experiments/`` per user) under ``out``, plus ``_lake.json`` describing
    the lake. One task per (day, chunk of users),
    so no table is ever whole in memory. The same ``seed`` and ``scale`` give the same
    files byte for byte. The lake appears at ``out`` only once complete.

    Parameters
    ----------
    out
        Destination directory (local path or fsspec URL); must not exist unless
        ``overwrite``.
    scale
        ``"small"`` (~100k listens), ``"medium"`` (~24M), ``"large"`` (~66M) or a
        :class:`Scale`.
    format
        ``"parquet"`` or ``"orc"``.
    client
        A ``distributed.Client`` to run on; default: dask's local scheduler.
    srm
        Plant a sample-ratio mismatch: lose a share of the treatment's assignment records.

    Returns
    -------
    dict
        The lake manifest (also written to ``_lake.json``): row counts per table etc.
    """
    if isinstance(scale, str):
        if scale not in SCALES:
            raise ParameterError(f"unknown scale {scale!r}: expected one of {', '.join(SCALES)}")
        scale_name, scale = scale, SCALES[scale]
    else:
        scale_name = "custom"
    if format not in ("parquet", "orc"):
        raise ParameterError(f"unknown format {format!r}: expected parquet or orc")
    n_chunks = -(-scale.n_users // scale.users_per_chunk)
    with atomic_output(out, storage_options, overwrite=overwrite) as root:
        fs, root_path = open_filesystem(root, storage_options)
        catalog = make_catalog(scale, seed)
        content = track_content(catalog, seed)
        _write_frame(fs, f"{root_path}/tracks/part-0.{format}", _tracks_table(catalog, content, scale, seed),
                     format)
        _write_frame(fs, f"{root_path}/truth/tracks.parquet", _tracks_truth(content, scale, seed), "parquet")
        _write_frame(fs, f"{root_path}/truth/artists.parquet", _artists_table(catalog, seed), "parquet")
        catalog_task = dask.delayed(catalog, name=f"generate-catalog-{seed}-{scale_name}")
        tasks = [named(_write_users_chunk, "generate-users")(fs, root_path, scale, seed, chunk, format, srm)
                 for chunk in range(n_chunks)]
        write_day = named(_write_day_chunk, "generate-day")
        tasks += [write_day(fs, root_path, scale, catalog_task, seed, day, chunk, format)
                  for day in range(scale.n_days) for chunk in range(n_chunks)]
        log.info("generating a %s lake (%d users, %d days) in %d tasks", scale_name, scale.n_users,
                 scale.n_days, len(tasks))
        counts: dict[str, int] = {"tracks": scale.n_tracks}
        sums: dict[str, float] = {}
        for result in compute_tasks(tasks, client=client, label="generate"):
            for table, rows in result.items():
                if table.startswith("truth:"):
                    sums[table] = sums.get(table, 0.0) + rows
                else:
                    counts[table] = counts.get(table, 0) + rows
        experiment = _experiment_truth(scale, sums, srm)
        manifest = {
            "daskflow_version": __version__, "scale": scale_name, "seed": seed, "format": format,
            "start_date": str(START_DATE.date()), "n_days": scale.n_days,
            "n_users": scale.n_users, "n_tracks": scale.n_tracks, "n_artists": scale.n_artists,
            "rows": counts, "partitioned_by_date": [t for t, p in LAKE_TABLES.items() if p],
            "conversion_window_days": CONVERSION_WINDOW_DAYS,
            "conversion_coefficients": CONVERSION_COEFFICIENTS,
            "schemas": LAKE_SCHEMAS,
            "experiment": {"name": EXPERIMENT.name, "srm": srm},
        }
        with fs.open(f"{root_path}/_lake.json", "w") as handle:
            json.dump(manifest, handle, indent=2)
        with fs.open(f"{root_path}/truth/model.json", "w") as handle:
            json.dump({"conversion_coefficients": CONVERSION_COEFFICIENTS,
                       "conversion_window_days": CONVERSION_WINDOW_DAYS,
                       "genres": GENRES[: scale.n_genres].tolist(),
                       "track_content": TRACK_CONTENT,
                       "description": "p_convert = sigmoid(intercept + sum(coef * latent)); see "
                                      "daskflow/sample/_planted_model_kernels.py"}, handle, indent=2)
        with fs.open(f"{root_path}/truth/experiment.json", "w") as handle:
            json.dump(experiment, handle, indent=2)
    return manifest


def _experiment_truth(scale: Scale, sums: Mapping[str, float], srm: bool) -> dict[str, Any]:
    """The planted A/B test's design and true effects (of the logged units, for the example window)."""
    first_day, n_days = enrollment_days(scale.n_days)
    units = sums.get("truth:units", 0.0)
    control = sums.get("truth:p_control", 0.0) / units if units else float("nan")
    treatment = sums.get("truth:p_treatment", 0.0) / units if units else float("nan")
    return {
        "experiment": EXPERIMENT.name, "variants": list(EXPERIMENT.variants), "control": "control",
        "treatment_share": EXPERIMENT.treatment_share, "srm": srm,
        "srm_lost_share": EXPERIMENT.srm_lost_share if srm else 0.0,
        "enrollment_start": str((START_DATE + pd.Timedelta(days=first_day)).date()),
        "enrollment_days": n_days, "pre_period_days": first_day,
        "skip_probability": dict(zip(EXPERIMENT.variants, EXPERIMENT.skip_probability)),
        "conversion_logit_effect": EXPERIMENT.conversion_logit_effect,
        "window_days": TRUTH_WINDOW_DAYS,
        # Expected values over the logged units, had every one of them been in one variant.
        "listening_ms": {"relative_effect": listening_lift()},
        "converted": {"control": control, "treatment": treatment,
                      "absolute_effect": treatment - control,
                      "relative_effect": treatment / control - 1 if control else float("nan")},
        "description": "treatment lowers the skip probability of listens after assignment and adds "
                       "conversion_logit_effect to the logit of conversions after assignment; see "
                       "daskflow/sample/_planted_model_kernels.py. truth/experiments/ has each unit's "
                       "probabilities",
    }


def _write_frame(fs: Any, path: str, table: pa.Table, format: str) -> None:
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(path, "wb") as handle:
        if format == "orc":
            import pyarrow.orc as orc

            orc.write_table(table, handle)
        else:
            pq.write_table(table, handle, compression="snappy")


def _tracks_table(catalog: Catalog, content: Mapping[str, np.ndarray], scale: Scale, seed: int) -> pa.Table:
    index = np.arange(scale.n_tracks)
    embedding = content["embedding"]
    return pa.table({
        "track_id": pa.array(format_ids("t", index, seed), pa.string()),
        "artist_id": pa.array(format_ids("a", catalog.track_artist, seed), pa.string()),
        "duration_ms": pa.array(catalog.track_duration_ms, pa.int64()),
        # Content (daskflow/sample/_planted_model_kernels.py: TRACK_CONTENT): a noisy genre label, genre
        # tags, audio-like numbers and a dense vector standing in for audio features.
        "genre": pa.array(content["genre"], pa.string()),
        "tags": pa.array(content["tags"], pa.string()),
        "tempo": pa.array(content["tempo"], pa.float64()),
        "energy": pa.array(content["energy"], pa.float64()),
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(embedding.ravel(), pa.float32()),
                                                       embedding.shape[1]).cast(pa.list_(pa.float32())),
    })


def _tracks_truth(content: Mapping[str, np.ndarray], scale: Scale, seed: int) -> pa.Table:
    return pa.table({
        "track_id": pa.array(format_ids("t", np.arange(scale.n_tracks), seed), pa.string()),
        **{name: content[name] for name in ("true_genre", "genre_label_correct", "track_rank_in_artist",
                                            "popularity_in_genre")},
    })


def _artists_table(catalog: Catalog, seed: int) -> pa.Table:
    index = np.arange(len(catalog.artist_genre))
    return pa.table({"artist_id": pa.array(format_ids("a", index, seed), pa.string()),
                     "genre": pa.array(GENRES[catalog.artist_genre], pa.string()),
                     "popularity_rank_in_genre": pa.array(catalog.artist_rank, pa.int64())})


def _write_users_chunk(fs: Any, root: str, scale: Scale, seed: int, chunk: int,
                       format: str, srm: bool = False) -> dict[str, float]:
    latents = user_latents(scale, seed, chunk)
    n = len(latents.age)
    user_ids = format_ids("u", np.arange(latents.first, latents.first + n), seed)
    users = pa.table({
        "user_id": pa.array(user_ids, pa.string()),
        "age": pa.array(latents.age, pa.int64()),
        "gender": pa.array(_GENDERS[latents.gender], pa.string()),
        "country": pa.array(COUNTRIES[latents.country], pa.string()),
        "product": pa.array(np.where(latents.premium, "premium", "free"), pa.string()),
        "signup_date": pa.array(latents.signup_date.astype("datetime64[D]"), pa.date32()),
    })
    _write_frame(fs, f"{root}/users/part-{chunk}.{format}", users, format)
    first_ad_ts = (START_DATE.to_datetime64().astype("datetime64[ms]")
                   + (latents.first_ad_day * 86_400_000 + latents.first_ad_second * 1000)
                   .astype("timedelta64[ms]"))
    converted = latents.converts
    conversions = pa.table({
        "user_id": pa.array(user_ids[converted], pa.string()),
        "ts": pa.array(first_ad_ts[converted]
                       + (latents.conversion_delay_s[converted] * 1000).astype("timedelta64[ms]"),
                       pa.timestamp("ms")),
        "product": pa.array(np.full(int(converted.sum()), "premium"), pa.string()),
    })
    _write_frame(fs, f"{root}/conversions/part-{chunk}.{format}", conversions, format)
    truth = {
        "user_id": pa.array(user_ids, pa.string()),
        "exposed": latents.exposed, "p_convert": latents.p_convert, "converted": converted,
        "first_ad_ts": pa.array(np.where(latents.exposed, first_ad_ts, np.datetime64("NaT")),
                                pa.timestamp("ms")),
        "active_share": latents.active_share, "listens_per_active_day": latents.listens_per_active_day,
        "ads_per_listen": latents.ads_per_listen, "video_share": latents.video_share,
    }
    for g in range(scale.n_genres):
        truth[f"taste_{GENRES[g]}"] = latents.taste[:, g]
    _write_frame(fs, f"{root}/truth/users/part-{chunk}.parquet", pa.table(truth), "parquet")
    experiment_rows, sums = _write_experiment_chunk(fs, root, latents, user_ids, first_ad_ts, chunk,
                                                    format, srm)
    return {"users": n, "conversions": int(converted.sum()), "experiments": experiment_rows, **sums}


def _write_experiment_chunk(fs: Any, root: str, latents: Any, user_ids: np.ndarray,
                            first_ad_ts: np.ndarray, chunk: int, format: str, srm: bool
                            ) -> tuple[int, dict[str, float]]:
    """The planted A/B test's assignment records and per-unit truth of one chunk of users."""
    enrolled = latents.variant >= 0
    logged = enrolled & ~(latents.assignment_lost & srm)
    assigned = latents.assigned_ms.astype("datetime64[ms]")
    variants = np.array(EXPERIMENT.variants, dtype=object)[np.maximum(latents.variant, 0)]
    records = pa.table({
        "user_id": pa.array(user_ids[logged], pa.string()),
        "experiment": pa.array(np.full(int(logged.sum()), EXPERIMENT.name), pa.string()),
        "variant": pa.array(variants[logged], pa.string()),
        "assigned_at": pa.array(assigned[logged], pa.timestamp("ms")),
    })
    _write_frame(fs, f"{root}/experiments/part-{chunk}.{format}", records, format)
    conversion_ts = first_ad_ts + (latents.conversion_delay_s * 1000).astype("timedelta64[ms]")
    in_window = (latents.exposed & (conversion_ts >= assigned)
                 & (conversion_ts < assigned + np.timedelta64(TRUTH_WINDOW_DAYS, "D")))
    truth = pa.table({
        "user_id": pa.array(user_ids, pa.string()), "enrolled": enrolled, "logged": logged,
        "variant": pa.array(np.where(enrolled, variants, None), pa.string()),
        "assigned_at": pa.array(np.where(enrolled, assigned, np.datetime64("NaT")), pa.timestamp("ms")),
        "conversion_ts_if_converts": pa.array(np.where(latents.exposed, conversion_ts, np.datetime64("NaT")),
                                              pa.timestamp("ms")),
        "p_convert_control": latents.p_convert_control, "p_convert_treatment": latents.p_convert_treatment,
    })
    _write_frame(fs, f"{root}/truth/experiments/part-{chunk}.parquet", truth, "parquet")
    counted = logged & in_window
    return int(logged.sum()), {"truth:units": float(logged.sum()),
                               "truth:p_control": float(latents.p_convert_control[counted].sum()),
                               "truth:p_treatment": float(latents.p_convert_treatment[counted].sum())}


def _write_day_chunk(fs: Any, root: str, scale: Scale, catalog: Catalog, seed: int, day: int,
                     chunk: int, format: str) -> dict[str, int]:
    latents = user_latents(scale, seed, chunk)
    listens, impressions = listens_for_day(latents, catalog, day, seed, chunk)
    date = (START_DATE + pd.Timedelta(days=day)).date().isoformat()
    listens_table = pa.table({
        "user_id": pa.array(format_ids("u", listens["user"], seed), pa.string()),
        "track_id": pa.array(format_ids("t", listens["track"], seed), pa.string()),
        "artist_id": pa.array(format_ids("a", listens["artist"], seed), pa.string()),
        "ms_played": pa.array(listens["ms_played"], pa.int64()),
        "ts": pa.array(listens["ts"], pa.timestamp("ms")),
        "platform": pa.array(listens["platform"], pa.string()),
        "country": pa.array(listens["country"], pa.string()),
    })
    _write_frame(fs, f"{root}/listens/date={date}/part-{chunk}.{format}", listens_table, format)
    impressions_table = pa.table({
        "user_id": pa.array(format_ids("u", impressions["user"], seed), pa.string()),
        "ad_id": pa.array(impressions["ad_id"], pa.string()),
        "campaign": pa.array(impressions["campaign"], pa.string()),
        "placement": pa.array(impressions["placement"], pa.string()),
        "ts": pa.array(impressions["ts"], pa.timestamp("ms")),
    })
    _write_frame(fs, f"{root}/ad_impressions/date={date}/part-{chunk}.{format}", impressions_table, format)
    return {"listens": listens_table.num_rows, "ad_impressions": impressions_table.num_rows}


