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

from daskflow._errors import DataError
from daskflow._progress import compute_tasks
from daskflow._version import __version__
from daskflow.io import atomic_output, open_filesystem
from daskflow.sample._model import (
    CONVERSION_COEFFICIENTS,
    CONVERSION_WINDOW_DAYS,
    COUNTRIES,
    GENRES,
    START_DATE,
    Catalog,
    format_ids,
    listens_for_day,
    make_catalog,
    user_latents,
)
from daskflow.sample._scales import SCALES, Scale

__all__ = ["generate_lake", "LAKE_TABLES", "LAKE_SCHEMAS"]

log = logging.getLogger("daskflow")

#: Tables of a generated lake, and whether each is hive-partitioned by date.
LAKE_TABLES = {"listens": True, "users": False, "tracks": False, "ad_impressions": True,
               "conversions": False}

#: The declared schema of each table, usable as a source's ``schema:``.
LAKE_SCHEMAS: dict[str, dict[str, str]] = {
    "listens": {"user_id": "string", "track_id": "string", "artist_id": "string",
                "ms_played": "integer", "ts": "timestamp", "platform": "string",
                "country": "string"},
    "users": {"user_id": "string", "age": "integer", "gender": "string", "country": "string",
              "product": "string", "signup_date": "date"},
    "tracks": {"track_id": "string", "artist_id": "string", "duration_ms": "integer",
               "genre": "string"},
    "ad_impressions": {"user_id": "string", "ad_id": "string", "campaign": "string",
                       "placement": "string", "ts": "timestamp"},
    "conversions": {"user_id": "string", "ts": "timestamp", "product": "string"},
}
_GENDERS = np.array(["F", "M", "X"])


def generate_lake(out: str, *, scale: str | Scale = "small", format: str = "parquet", seed: int = 0,
                  storage_options: Mapping[str, Any] | None = None, client: Any = None,
                  overwrite: bool = False) -> dict[str, Any]:
    """Generate a synthetic listening/ad data lake with a planted ground truth.

    Writes ``listens/date=YYYY-MM-DD/``, ``users/``, ``tracks/``,
    ``ad_impressions/date=YYYY-MM-DD/``, ``conversions/`` and ``truth/`` (latent tastes,
    true conversion probabilities, ``model.json`` with the conversion coefficients) under
    ``out``, plus ``_lake.json`` describing the lake. One task per (day, chunk of users),
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

    Returns
    -------
    dict
        The lake manifest (also written to ``_lake.json``): row counts per table etc.
    """
    if isinstance(scale, str):
        if scale not in SCALES:
            raise DataError(f"unknown scale {scale!r}: expected one of {', '.join(SCALES)}")
        scale_name, scale = scale, SCALES[scale]
    else:
        scale_name = "custom"
    if format not in ("parquet", "orc"):
        raise DataError(f"unknown format {format!r}: expected parquet or orc")
    n_chunks = -(-scale.n_users // scale.users_per_chunk)
    with atomic_output(out, storage_options, overwrite=overwrite) as root:
        fs, root_path = open_filesystem(root, storage_options)
        catalog = make_catalog(scale, seed)
        _write_frame(fs, f"{root_path}/tracks/part-0.{format}", _tracks_table(catalog, scale, seed), format)
        _write_frame(fs, f"{root_path}/truth/artists.parquet", _artists_table(catalog, seed), "parquet")
        catalog_task = dask.delayed(catalog, name=f"daskflow-catalog-{seed}-{scale_name}")
        tasks = [dask.delayed(_write_users_chunk)(fs, root_path, scale, seed, chunk, format)
                 for chunk in range(n_chunks)]
        tasks += [dask.delayed(_write_day_chunk)(fs, root_path, scale, catalog_task, seed, day, chunk, format)
                  for day in range(scale.n_days) for chunk in range(n_chunks)]
        log.info("generating a %s lake (%d users, %d days) in %d tasks", scale_name, scale.n_users,
                 scale.n_days, len(tasks))
        counts: dict[str, int] = {"tracks": scale.n_tracks}
        for result in compute_tasks(tasks, client=client, label="generate"):
            for table, rows in result.items():
                counts[table] = counts.get(table, 0) + rows
        manifest = {
            "daskflow_version": __version__, "scale": scale_name, "seed": seed, "format": format,
            "start_date": str(START_DATE.date()), "n_days": scale.n_days,
            "n_users": scale.n_users, "n_tracks": scale.n_tracks, "n_artists": scale.n_artists,
            "rows": counts, "partitioned_by_date": [t for t, p in LAKE_TABLES.items() if p],
            "conversion_window_days": CONVERSION_WINDOW_DAYS,
            "conversion_coefficients": CONVERSION_COEFFICIENTS,
            "schemas": LAKE_SCHEMAS,
        }
        with fs.open(f"{root_path}/_lake.json", "w") as handle:
            json.dump(manifest, handle, indent=2)
        with fs.open(f"{root_path}/truth/model.json", "w") as handle:
            json.dump({"conversion_coefficients": CONVERSION_COEFFICIENTS,
                       "conversion_window_days": CONVERSION_WINDOW_DAYS,
                       "genres": GENRES[: scale.n_genres].tolist(),
                       "description": "p_convert = sigmoid(intercept + sum(coef * latent)); see "
                                      "daskflow/sample/_model.py"}, handle, indent=2)
    return manifest


def _write_frame(fs: Any, path: str, table: pa.Table, format: str) -> None:
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(path, "wb") as handle:
        if format == "orc":
            import pyarrow.orc as orc

            orc.write_table(table, handle)
        else:
            pq.write_table(table, handle, compression="snappy")


def _tracks_table(catalog: Catalog, scale: Scale, seed: int) -> pa.Table:
    index = np.arange(scale.n_tracks)
    return pa.table({
        "track_id": pa.array(format_ids("t", index, seed), pa.string()),
        "artist_id": pa.array(format_ids("a", catalog.track_artist, seed), pa.string()),
        "duration_ms": pa.array(catalog.track_duration_ms, pa.int64()),
        "genre": pa.array(GENRES[catalog.artist_genre[catalog.track_artist]], pa.string()),
    })


def _artists_table(catalog: Catalog, seed: int) -> pa.Table:
    index = np.arange(len(catalog.artist_genre))
    return pa.table({"artist_id": pa.array(format_ids("a", index, seed), pa.string()),
                     "genre": pa.array(GENRES[catalog.artist_genre], pa.string()),
                     "popularity_rank_in_genre": pa.array(catalog.artist_rank, pa.int64())})


def _write_users_chunk(fs: Any, root: str, scale: Scale, seed: int, chunk: int,
                       format: str) -> dict[str, int]:
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
    return {"users": n, "conversions": int(converted.sum())}


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


