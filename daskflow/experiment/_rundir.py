"""Run directories: outputs/<experiment>/<run_id>/, published only when the run succeeds."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["new_run_id", "plots_dir", "write_json"]


def new_run_id() -> str:
    """A sortable, unique run id: UTC time plus a random suffix."""
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    # NumPy scalars and arrays show up in metrics; JSON wants Python numbers.
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def plots_dir(work_dir: Path) -> Path:
    """``<run dir>/plots/``, created on first use (the report embeds every PNG in it)."""
    path = work_dir / "plots"
    path.mkdir(exist_ok=True)
    return path
