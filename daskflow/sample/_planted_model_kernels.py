"""The planted generative model of the sample lake (pure NumPy, no Dask).

Listening: every user has a latent taste ``theta_u`` over genres (Dirichlet, so most users
like a few genres), mixed with a global genre popularity; a listen picks a genre from that
mix, then an artist within the genre by Zipf popularity, then a track of the artist by Zipf
popularity. The user x track preference matrix is therefore low-rank plus popularity,
which ALS can recover and a popularity baseline only partly captures.

Conversion: free users exposed to house ads convert (to premium, within 7 days of their
first impression) with probability ``sigmoid(eta)``, where ``eta`` is a known linear
function of latent behaviour, demographics and ad exposure (``CONVERSION_COEFFICIENTS``).
The A/B test ``home_feed`` (:data:`EXPERIMENT`): users who open the app during the
enrollment days are assigned 50/50 to control or treatment at a planted time. From that
moment on, treatment lowers the skip probability of a listen (longer listening: the
expected relative lift of listening time is exact, :func:`listening_lift`) and adds
``conversion_logit_effect`` to the conversion logit of a conversion that falls after the
assignment. The days before enrollment are the pre-period CUPED adjusts with. The
experiment's draws come from their own generator, so every other draw is unchanged.

Every latent is drawn from a generator seeded by (seed, chunk), so any task can rebuild
the latents of its chunk of users without the others.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from daskflow.sample._scales import Scale

__all__ = ["Catalog", "UserLatents", "make_catalog", "user_latents", "listens_for_day",
           "CONVERSION_COEFFICIENTS", "START_DATE", "COUNTRIES", "PLATFORMS", "PLACEMENTS",
           "CAMPAIGNS", "CONVERSION_WINDOW_DAYS", "format_ids", "EXPERIMENT", "PlantedExperiment",
           "listening_lift", "enrollment_days", "TRACK_CONTENT", "track_content"]

START_DATE = pd.Timestamp("2026-01-01")
COUNTRIES = np.array(["US", "GB", "SE", "DE", "FR", "BR", "MX", "ES", "NL", "CA", "AU", "JP"])
PLATFORMS = np.array(["mobile", "desktop", "web", "tablet"])
PLACEMENTS = np.array(["audio", "display", "video", "banner"])
CAMPAIGNS = np.array([f"house-{i:02d}" for i in range(8)])
GENRES = np.array(["pop", "rock", "hip-hop", "electronic", "indie", "jazz", "classical", "metal",
                   "folk", "latin", "r&b", "country", "reggae", "blues", "soul", "punk", "k-pop",
                   "ambient", "funk", "gospel", "disco", "techno", "house", "trap"])
#: Every conversion happens within this many days of the user's first house-ad impression.
CONVERSION_WINDOW_DAYS = 7

#: Coefficients of the true conversion logit (features are the user latents).
CONVERSION_COEFFICIENTS: dict[str, float] = {
    "intercept": -2.6,
    "log_listens_per_active_day": 0.55,   # heavier listeners convert more
    "active_share": 1.6,                  # share of days the user is active
    "age_std": -0.35,                     # (age - 35) / 12
    "gender_F": 0.15,
    "country_US": 0.3,
    "country_SE": 0.5,
    "log_ads_per_listen": 0.8,            # ad load: log of impressions per listen
    "video_share": 1.2,                   # share of the user's ads that are video
}



@dataclass(frozen=True)
class PlantedExperiment:
    """The planted A/B test: who is enrolled when, and the true effects of treatment."""

    name: str = "home_feed"
    variants: tuple[str, str] = ("control", "treatment")
    treatment_share: float = 0.5
    #: Probability that a listen is skipped (played 2-30%, else 85-100%), per variant.
    skip_probability: tuple[float, float] = (0.25, 0.15)
    #: Added to the conversion logit of a treated user's conversion after assignment. The
    #: conversion features cannot see the variant, so a larger effect would widen the gap
    #: between the classifiers' AUC and the true probabilities' (tests/features: at 0.6 it
    #: exceeds the 0.02 that test_planted_truth_is_recovered allows).
    conversion_logit_effect: float = 0.4
    #: With ``srm=True``, this share of the treatment's assignment records is lost (a
    #: logging bug), planting a sample-ratio mismatch.
    srm_lost_share: float = 0.3


EXPERIMENT = PlantedExperiment()
#: Mean played fraction of a track when skipped (uniform 0.02-0.3) and when not (0.85-1).
_SKIPPED_FRACTION, _PLAYED_FRACTION = (0.02 + 0.3) / 2, (0.85 + 1.0) / 2


def listening_lift(experiment: PlantedExperiment = EXPERIMENT) -> float:
    """The true relative effect of treatment on expected listening time (ms played).

    Treatment changes only the skip probability, not how many listens or which tracks,
    so expected ms played scales by the ratio of the expected played fractions.
    """
    control, treatment = (p * _SKIPPED_FRACTION + (1 - p) * _PLAYED_FRACTION
                          for p in experiment.skip_probability)
    return treatment / control - 1


def enrollment_days(n_days: int) -> tuple[int, int]:
    """First enrollment day and number of enrollment days: the pre-period is the first half."""
    return n_days // 2, max(1, n_days // 5)


_ZIPF_EXPONENT = 1.07
_GLOBAL_MIX = 0.15  # share of listens drawn from global genre popularity, not personal taste


@dataclass(frozen=True)
class Catalog:
    """Artists and tracks, with the cumulative distributions used to sample listens."""

    artist_genre: np.ndarray        # (n_artists,) genre index
    artist_rank: np.ndarray         # (n_artists,) popularity rank within its genre
    genre_artists: np.ndarray       # artists ordered by (genre, rank)
    genre_artist_key: np.ndarray    # genre + cumulative popularity within genre, sorted
    genre_share: np.ndarray         # (n_genres,) global popularity of genres
    track_artist: np.ndarray        # (n_tracks,) artist of each track
    artist_tracks: np.ndarray       # tracks ordered by (artist, rank)
    artist_track_key: np.ndarray    # artist + cumulative popularity within artist, sorted
    track_duration_ms: np.ndarray
    seed: int


def _zipf_cdf_keys(group: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Order items by group and give each a key ``group + cdf`` for one searchsorted draw."""
    order = np.argsort(group, kind="stable")
    sizes = np.bincount(group, minlength=n_groups)
    keys = np.empty(len(group))
    start = 0
    for g, size in enumerate(sizes):
        weights = 1.0 / np.arange(1, size + 1) ** _ZIPF_EXPONENT
        keys[start:start + size] = g + np.cumsum(weights) / weights.sum()
        start += size
    return order, keys


def make_catalog(scale: Scale, seed: int) -> Catalog:
    """Draw the artist and track catalog (small: at most a few hundred thousand rows)."""
    rng = np.random.default_rng([seed, 1])
    artist_genre = rng.integers(0, scale.n_genres, scale.n_artists)
    genre_artists, genre_artist_key = _zipf_cdf_keys(artist_genre, scale.n_genres)
    artist_rank = np.empty(scale.n_artists, dtype=np.int64)
    for g in range(scale.n_genres):
        members = genre_artists[artist_genre[genre_artists] == g]
        artist_rank[members] = np.arange(len(members))
    # Every artist gets at least one track; the rest go to artists at random.
    track_artist = np.concatenate([np.arange(scale.n_artists),
                                   rng.integers(0, scale.n_artists, scale.n_tracks - scale.n_artists)])
    artist_tracks, artist_track_key = _zipf_cdf_keys(track_artist, scale.n_artists)
    genre_share = _genre_share(scale, seed)
    duration = rng.lognormal(np.log(210_000), 0.25, scale.n_tracks).astype(np.int64)
    return Catalog(artist_genre, artist_rank, genre_artists, genre_artist_key, genre_share,
                   track_artist, artist_tracks, artist_track_key, duration, seed)


@dataclass(frozen=True)
class UserLatents:
    """Latent traits of one chunk of users (indices ``first .. first + n - 1``)."""

    first: int
    taste: np.ndarray             # (n, n_genres) genre mix incl. global popularity
    active_share: np.ndarray      # probability of listening on a given day
    listens_per_active_day: np.ndarray
    primary_platform: np.ndarray
    age: np.ndarray
    gender: np.ndarray
    country: np.ndarray
    premium: np.ndarray
    signup_date: np.ndarray
    exposed: np.ndarray           # sees house ads (free users only)
    ads_per_listen: np.ndarray
    video_share: np.ndarray
    first_ad_day: np.ndarray
    first_ad_second: np.ndarray   # second of first_ad_day of the first impression
    p_convert: np.ndarray         # true probability (NaN when not exposed)
    converts: np.ndarray
    conversion_delay_s: np.ndarray
    variant: np.ndarray           # -1 not enrolled, 0 control, 1 treatment
    assigned_ms: np.ndarray       # assignment time, ms since the epoch (0 when not enrolled)
    assignment_lost: np.ndarray   # the assignment record is lost when the lake plants an SRM
    p_convert_control: np.ndarray  # P(convert) without the treatment effect (NaN when not exposed)
    p_convert_treatment: np.ndarray  # ... with it, had the user been treated before converting


def user_latents(scale: Scale, seed: int, chunk: int) -> UserLatents:
    """Rebuild the latents of one chunk of users, identically in every task."""
    first = chunk * scale.users_per_chunk
    n = min(scale.users_per_chunk, scale.n_users - first)
    rng = np.random.default_rng([seed, 2, chunk])
    taste = rng.dirichlet(np.full(scale.n_genres, 0.25), n)
    taste = (1 - _GLOBAL_MIX) * taste + _GLOBAL_MIX * _genre_share(scale, seed)[None, :]
    active_share = rng.beta(2.0, 2.0, n)
    listens = rng.lognormal(np.log(scale.mean_listens_per_active_day) - 0.18, 0.6, n)
    primary_platform = rng.choice(len(PLATFORMS), n, p=[0.6, 0.25, 0.1, 0.05])
    age = np.clip(rng.normal(32, 11, n), 16, 75).astype(np.int64)
    gender = rng.choice(3, n, p=[0.48, 0.48, 0.04])  # F, M, X
    country_weights = 1.0 / np.arange(1, len(COUNTRIES) + 1)
    country = rng.choice(len(COUNTRIES), n, p=country_weights / country_weights.sum())
    premium = rng.random(n) < 0.3
    signup_date = START_DATE.to_datetime64() - rng.integers(1, 3 * 365, n).astype("timedelta64[D]")
    exposed = ~premium & (rng.random(n) < 0.7)
    ads_per_listen = rng.lognormal(np.log(0.15), 0.5, n)
    video_share = rng.beta(1.5, 3.0, n)
    first_ad_day = rng.integers(0, scale.n_days, n)
    first_ad_second = rng.integers(0, 86_400 // 2, n)  # first ad in the first half of the day
    eta = (CONVERSION_COEFFICIENTS["intercept"]
           + CONVERSION_COEFFICIENTS["log_listens_per_active_day"] * np.log(listens)
           + CONVERSION_COEFFICIENTS["active_share"] * active_share
           + CONVERSION_COEFFICIENTS["age_std"] * (age - 35) / 12
           + CONVERSION_COEFFICIENTS["gender_F"] * (gender == 0)
           + CONVERSION_COEFFICIENTS["country_US"] * (COUNTRIES[country] == "US")
           + CONVERSION_COEFFICIENTS["country_SE"] * (COUNTRIES[country] == "SE")
           + CONVERSION_COEFFICIENTS["log_ads_per_listen"] * np.log(ads_per_listen)
           + CONVERSION_COEFFICIENTS["video_share"] * video_share)
    conversion_uniform = rng.random(n)
    conversion_delay_s = rng.integers(3_600, CONVERSION_WINDOW_DAYS * 86_400 - 86_400 // 2, n)
    variant, assigned_ms, lost = _assignments(scale, seed, chunk, active_share)
    # The treatment acts on a conversion only if it happens after the assignment.
    conversion_ms = (_START_MS + first_ad_day * 86_400_000 + first_ad_second * 1000
                     + conversion_delay_s * 1000)
    effect = np.where((variant == 1) & (conversion_ms >= assigned_ms), EXPERIMENT.conversion_logit_effect, 0)
    p_control = np.where(exposed, 1 / (1 + np.exp(-eta)), np.nan)
    p_treatment = np.where(exposed, 1 / (1 + np.exp(-eta - EXPERIMENT.conversion_logit_effect)), np.nan)
    p_convert = np.where(exposed, 1 / (1 + np.exp(-eta - effect)), np.nan)
    converts = exposed & (conversion_uniform < np.nan_to_num(p_convert))
    return UserLatents(first, taste, active_share, listens, primary_platform, age, gender, country,
                       premium, signup_date, exposed, ads_per_listen, video_share, first_ad_day,
                       first_ad_second, p_convert, converts, conversion_delay_s, variant, assigned_ms,
                       lost, p_control, p_treatment)


_START_MS = int(START_DATE.value // 1_000_000)


def _assignments(scale: Scale, seed: int, chunk: int, active_share: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Who is enrolled in the planted experiment, in which variant, and when (own generator)."""
    rng = np.random.default_rng([seed, 5, chunk])
    n = len(active_share)
    first_day, n_enrollment_days = enrollment_days(scale.n_days)
    # A user is enrolled on opening the app during enrollment: likelier the more active.
    enrolled = rng.random(n) < 1 - (1 - active_share) ** n_enrollment_days
    treated = rng.random(n) < EXPERIMENT.treatment_share
    offset_ms = rng.integers(0, n_enrollment_days * 86_400_000, n)
    lost = rng.random(n) < EXPERIMENT.srm_lost_share
    variant = np.where(enrolled, treated.astype(np.int64), -1)
    assigned_ms = np.where(enrolled, _START_MS + first_day * 86_400_000 + offset_ms, 0)
    return variant, assigned_ms, lost & treated & enrolled


def _genre_share(scale: Scale, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 4])
    share = 1.0 / np.arange(1, scale.n_genres + 1) ** 0.8
    return rng.permutation(share / share.sum())


def format_ids(prefix: str, index: np.ndarray, seed: int) -> np.ndarray:
    """Opaque, unique string IDs: a bijective scramble of the index, in hex.

    Multiplying by an odd constant modulo 2**32 is a bijection, so IDs never collide,
    and they are not in index order (so no code can rely on that by accident).
    """
    scrambled = (index.astype(np.uint64) * np.uint64(2_654_435_761) + np.uint64(seed * 40_503 + 12_345)) \
        % np.uint64(2**32)
    return np.char.add(prefix, np.char.zfill(np.char.mod("%x", scrambled), 8)).astype(object)


def listens_for_day(latents: UserLatents, catalog: Catalog, day: int, seed: int, chunk: int
                    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Listens and house-ad impressions of one chunk of users on one day (column arrays)."""
    rng = np.random.default_rng([seed, 3, chunk, day])
    n = len(latents.active_share)
    active = rng.random(n) < latents.active_share
    counts = np.where(active, 1 + rng.poisson(np.maximum(latents.listens_per_active_day - 1, 0)), 0)
    user = np.repeat(np.arange(n), counts)
    m = len(user)
    # Genre from the user's taste (inverse CDF, row by row), artist and track by Zipf.
    cdf = np.cumsum(latents.taste[user], axis=1)
    genre = np.minimum((cdf < rng.random(m)[:, None] * cdf[:, -1:]).sum(axis=1), cdf.shape[1] - 1)
    artist_pos = np.searchsorted(catalog.genre_artist_key, genre + rng.random(m))
    artist = catalog.genre_artists[np.minimum(artist_pos, len(catalog.genre_artists) - 1)]
    track_pos = np.searchsorted(catalog.artist_track_key, artist + rng.random(m))
    track = catalog.artist_tracks[np.minimum(track_pos, len(catalog.artist_tracks) - 1)]
    skip_uniform = rng.random(m)
    skipped_fraction, played_fraction = rng.uniform(0.02, 0.3, m), rng.uniform(0.85, 1.0, m)
    day_start = (START_DATE + pd.Timedelta(days=day)).to_datetime64().astype("datetime64[ms]")
    seconds = np.sort(rng.integers(0, 86_400_000, m))  # ms within the day
    ts = day_start + seconds.astype("timedelta64[ms]")
    # The planted experiment: a treated user skips less from the assignment on. The
    # draws above are the ones an untreated lake makes, in the same order.
    treated = (latents.variant[user] == 1) & (ts.astype(np.int64) >= latents.assigned_ms[user])
    skipped = skip_uniform < np.where(treated, EXPERIMENT.skip_probability[1], EXPERIMENT.skip_probability[0])
    fraction = np.where(skipped, skipped_fraction, played_fraction)
    ms_played = (catalog.track_duration_ms[track] * fraction).astype(np.int64)
    platform = np.where(rng.random(m) < 0.8, latents.primary_platform[user],
                        rng.integers(0, len(PLATFORMS), m))
    listens = {"user": user + latents.first, "track": track, "artist": artist, "ms_played": ms_played,
               "ts": ts, "platform": PLATFORMS[platform], "country": COUNTRIES[latents.country[user]]}

    # House ads: heard by exposed free users while listening, from their first ad day on;
    # on that day the first impression is at a planted time.
    eligible = latents.exposed & (day >= latents.first_ad_day)
    n_ads = np.where(eligible, rng.poisson(latents.ads_per_listen * counts), 0)
    first_day = latents.exposed & (latents.first_ad_day == day)
    n_ads = np.where(first_day, np.maximum(n_ads, 1), n_ads)
    ad_user = np.repeat(np.arange(n), n_ads)
    k = len(ad_user)
    ad_second = rng.integers(0, 86_400, k)
    first_of_day = np.r_[True, ad_user[1:] != ad_user[:-1]] if k else np.zeros(0, bool)
    planted = first_day[ad_user] & first_of_day
    lower = latents.first_ad_second[ad_user]
    ad_second = np.where(planted, lower,
                         np.where(first_day[ad_user], lower + (ad_second % (86_400 - lower)), ad_second))
    video = rng.random(k) < latents.video_share[ad_user]
    placement = np.where(video, 2, rng.choice([0, 1, 3], k))
    campaign = rng.integers(0, len(CAMPAIGNS), k)
    impressions = {"user": ad_user + latents.first, "campaign": CAMPAIGNS[campaign],
                   "ad_id": np.char.add(CAMPAIGNS[campaign].astype(str),
                                        np.char.add("-", rng.integers(0, 5, k).astype(str))),
                   "placement": PLACEMENTS[placement],
                   "ts": day_start + (ad_second * 1000).astype("timedelta64[ms]")}
    return listens, impressions


#: How the tracks table's content columns relate to the planted tastes (truth/model.json).
#: Listening depends only on a track's true genre (its artist's) and its popularity
#: (artist rank within the genre, track rank within the artist, both Zipf). The content
#: columns see the genre through noise and the popularity not at all, except through the
#: artist: so a content model can recover most of a cold track's taste direction, and
#: its popularity only as far as its artist's other tracks reveal it.
TRACK_CONTENT: dict[str, float] = {
    "genre_label_accuracy": 0.8,   # `genre` is the true genre, else a uniformly drawn other one
    "second_tag_share": 0.5,       # `tags` adds a random second genre to this share of tracks
    "tempo_genre_low": 70.0,       # genre mean tempo ~ U(low, high) bpm ...
    "tempo_genre_high": 170.0,
    "tempo_sd": 18.0,              # ... and each track's tempo ~ N(genre mean, sd)
    "energy_sd": 1.0,              # energy = sigmoid(N(genre centre, sd)), genre centres ~ N(0, 1)
    "embedding_dim": 16,           # `embedding` = unit genre centroid + N(0, noise^2 / dim) per entry
    "embedding_noise": 1.0,
}


def track_content(catalog: Catalog, seed: int) -> dict[str, np.ndarray]:
    """Content columns of every track, drawn from a generator of their own.

    Returns the published columns (``genre``, ``tags``, ``tempo``, ``energy``,
    ``embedding``) and the truth behind them (``true_genre``, ``genre_label_correct``,
    ``track_rank_in_artist``, ``popularity_in_genre``: the probability that a listen of
    the genre picks the track). Draws of their own (``[seed, 5]``), so listens and users
    are the same as without content.
    """
    rng = np.random.default_rng([seed, 5])
    n_genres = len(catalog.genre_share)
    true_genre = catalog.artist_genre[catalog.track_artist]
    n = len(true_genre)
    correct = rng.random(n) < TRACK_CONTENT["genre_label_accuracy"]
    other = (true_genre + rng.integers(1, max(2, n_genres), n)) % n_genres
    label = np.where(correct, true_genre, other)
    second = rng.integers(0, n_genres, n)
    has_second = (rng.random(n) < TRACK_CONTENT["second_tag_share"]) & (second != label)
    names = GENRES[:n_genres]
    tags = np.where(has_second, np.char.add(np.char.add(names[label].astype(str), " "),
                                            names[second].astype(str)), names[label].astype(str))
    tempo_centre = rng.uniform(TRACK_CONTENT["tempo_genre_low"], TRACK_CONTENT["tempo_genre_high"],
                               n_genres)
    tempo = np.round(rng.normal(tempo_centre[true_genre], TRACK_CONTENT["tempo_sd"]), 1)
    energy_centre = rng.normal(0.0, 1.0, n_genres)
    energy = 1 / (1 + np.exp(-rng.normal(energy_centre[true_genre], TRACK_CONTENT["energy_sd"])))
    dim = int(TRACK_CONTENT["embedding_dim"])
    centroids = rng.normal(size=(n_genres, dim))
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    embedding = (centroids[true_genre]
                 + rng.normal(0.0, TRACK_CONTENT["embedding_noise"] / np.sqrt(dim), (n, dim)))
    # Popularity truth: the Zipf weights the listening model samples with.
    artist_sizes = np.bincount(catalog.track_artist, minlength=len(catalog.artist_genre))
    track_rank = np.empty(n, dtype=np.int64)
    track_rank[catalog.artist_tracks] = np.arange(n) - np.repeat(
        np.r_[0, np.cumsum(artist_sizes)[:-1]], artist_sizes)
    genre_sizes = np.bincount(catalog.artist_genre, minlength=n_genres)
    artist_weight = 1.0 / (catalog.artist_rank + 1.0) ** _ZIPF_EXPONENT
    artist_weight /= np.array([(1.0 / np.arange(1, s + 1) ** _ZIPF_EXPONENT).sum() if s else 1.0
                               for s in genre_sizes])[catalog.artist_genre]
    track_weight = 1.0 / (track_rank + 1.0) ** _ZIPF_EXPONENT
    track_weight /= np.array([(1.0 / np.arange(1, s + 1) ** _ZIPF_EXPONENT).sum() if s else 1.0
                              for s in artist_sizes])[catalog.track_artist]
    return {"genre": names[label], "tags": tags.astype(object), "tempo": tempo,
            "energy": np.round(energy, 4), "embedding": embedding.astype(np.float32),
            "true_genre": names[true_genre], "genre_label_correct": correct,
            "track_rank_in_artist": track_rank,
            "popularity_in_genre": artist_weight[catalog.track_artist] * track_weight}
