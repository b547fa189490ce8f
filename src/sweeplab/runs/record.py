"""Reading a run's record (metrics.json) back: the format is in docs/RECORDS.md."""

from __future__ import annotations

from pathlib import Path

from sweeplab.constants import METRICS_FILE
from sweeplab.io import read_json


def read_record(run_dir: Path) -> tuple[dict | None, str | None]:
    """(record, problem). No metrics.json: (None, None). A file that cannot be trusted (truncated, not JSON,
    not a JSON object, unreadable): (None, a one-line description naming the file). Else (record, None)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return None, None
    try:
        record = read_json(path)
    except (OSError, ValueError) as e:
        kind = "unreadable" if isinstance(e, OSError) else "not valid JSON (truncated?)"
        return None, f"{path} is {kind}"
    if not isinstance(record, dict):
        return None, f"{path} is not a JSON object (it holds a {type(record).__name__})"
    return record, None


def read_metrics(run_dir: Path) -> dict | None:
    """The record, or None when there is none or it cannot be trusted."""
    return read_record(run_dir)[0]
