"""Retrying with backoff: the one loop every network wait in daskflow goes through.

Stores, schedulers and the Kubernetes API fail transiently (a throttled request, a peer
still starting); a few spaced attempts ride that out, and a peer that stays away still
fails within seconds. What counts as transient is the caller's to say: a missing file, a
refused credential or a peer that answered wrongly does not change on a second try.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["retry"]

log = logging.getLogger("daskflow")

_T = TypeVar("_T")


def retry(action: Callable[[], _T], *, what: str, transient: Callable[[Exception], bool],
          attempts: int = 3, delay: float = 0.5) -> _T:
    """Run ``action``; after a transient failure wait and try again, doubling the wait.

    Parameters
    ----------
    action : what to run, without arguments
    what : the attempt in words, for the warning logged before each retry
        (``"reaching source 'listens' at s3://..."``)
    transient : whether a failure is worth another attempt; any other exception
        propagates at once
    attempts : attempts in all (>= 1); the last transient failure propagates as raised, for
        the caller to turn into its own message
    delay : seconds before the second attempt; doubled before each later one

    Examples
    --------
    >>> retry(lambda: 42, what="answering", transient=lambda exc: isinstance(exc, OSError))
    42
    """
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except Exception as exc:
            if attempt >= attempts or not transient(exc):
                raise
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            log.warning("%s failed (%s), attempt %d/%d; retrying in %.1fs", what, reason, attempt, attempts,
                        delay)
            time.sleep(delay)
            delay *= 2
    raise ValueError(f"attempts is {attempts} ({what}): expected at least 1")
