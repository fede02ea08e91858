"""Sizes of the generated sample lake."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Scale", "SCALES"]


@dataclass(frozen=True)
class Scale:
    """Parameters that fix the size of a sample lake.

    Expected listen rows ~ n_users * n_days * mean_active * mean_listens_per_active_day.
    """

    n_users: int
    n_artists: int
    n_tracks: int
    n_days: int
    n_genres: int
    mean_listens_per_active_day: float
    users_per_chunk: int  # one task (and one file per day) per chunk of users


SCALES: dict[str, Scale] = {
    # Seconds to generate; lets the quickstart finish well under a minute (~100k listens).
    "small": Scale(n_users=2_000, n_artists=400, n_tracks=4_000, n_days=14, n_genres=12,
                   mean_listens_per_active_day=8.0, users_per_chunk=2_000),
    # The ingest benchmark's size: ~22M listens.
    "medium": Scale(n_users=200_000, n_artists=5_000, n_tracks=50_000, n_days=30, n_genres=20,
                    mean_listens_per_active_day=8.0, users_per_chunk=50_000),
    # >= 50M listens (~60M); never held in memory at once.
    "large": Scale(n_users=1_000_000, n_artists=20_000, n_tracks=250_000, n_days=60, n_genres=24,
                   mean_listens_per_active_day=2.2, users_per_chunk=100_000),
}
