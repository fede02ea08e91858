"""Run directories: outputs/<experiment>/<run_id>/, published only when the run succeeds.

A run directory holds the run's data (artifacts, predictions) and its config, so it is
owner-only: directories 0700, files 0600 (:func:`write_private`, :func:`restrict`).
"""

from __future__ import annotations

import json
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fsspec.implementations.local import LocalFileSystem

from daskflow.io._fs import replace_file

__all__ = ["CHECKPOINTS", "new_run_id", "plots_dir", "write_json", "write_private", "restrict",
           "has_checkpoints"]

#: Owner-only modes of what a run directory holds.
PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600
#: Directory of a run's working directory kept when the run is resumed (model fits' checkpoints).
CHECKPOINTS = "checkpoints"


def new_run_id() -> str:
    """A sortable, unique run id: UTC time plus a random suffix."""
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole (an interrupted write leaves the old file, never half of
    the new one: a resumed run reads config.yaml), readable and writable by its owner only."""
    replace_file(LocalFileSystem(), str(path), text.encode("utf-8"), mode=PRIVATE_FILE)


def write_json(path: Path, data: Any) -> None:
    write_private(path, json.dumps(data, indent=2, sort_keys=False, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    # NumPy scalars and arrays show up in metrics; JSON wants Python numbers.
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def plots_dir(work_dir: Path) -> Path:
    """``<run dir>/plots/``, created on first use (the report embeds every PNG in it)."""
    path = work_dir / "plots"
    path.mkdir(mode=PRIVATE_DIR, exist_ok=True)
    return path


def restrict(work_dir: Path) -> None:
    """Make everything under ``work_dir`` owner-only, whatever wrote it (pandas, matplotlib).

    Links are not followed: a run directory holds none, and a mode change must not reach
    outside it.
    """
    os.chmod(work_dir, PRIVATE_DIR)
    for root, dirs, files in os.walk(work_dir):
        for name in dirs:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, PRIVATE_DIR)
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, PRIVATE_FILE)


def has_checkpoints(work_dir: Path, name: str = CHECKPOINTS) -> bool:
    """Whether ``work_dir/<name>`` holds a committed checkpoint, i.e. a resume would save work.

    A fit's checkpoint is committed by its ``latest.json`` (written last); block files
    without one are an unfinished first checkpoint, nothing to resume from.
    """
    directory = work_dir / name
    return directory.is_dir() and any(directory.rglob("latest.json"))
