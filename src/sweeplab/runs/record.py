"""A run's record (metrics.json): reading it back, and keeping it while the run goes. Format: docs/RECORDS.md."""

from __future__ import annotations

import errno
import os
import socket
from datetime import datetime, timezone
from pathlib import Path

from sweeplab.constants import METRICS_FILE
from sweeplab.io import read_json, write_json


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


# ---------------------------------------------------------------- writing
RESERVE_FILE = ".reserve"
RESERVE_BYTES = 256 << 10  # freed when the disk is full, so the record of how the run ended still fits


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class RunRecord:
    """A run's metrics.json, kept in memory and written atomically after every change.

    Append-only across attempts: each launch into the run dir adds an entry to ``attempts``; the results
    (best, final, history, ...) are those of the last attempt that completed, and a later attempt that fails,
    diverges or is interrupted adds its entry without replacing them (docs/RECORDS.md).
    """

    def __init__(self, run_dir: Path, previous: dict | None = None):
        self.dir = Path(run_dir)
        self.path = self.dir / METRICS_FILE
        self.data: dict = dict(previous or {})
        self.data.setdefault("attempts", [])
        self.current: dict = {}  # this attempt's results, merged into data when it ends
        self.attempt: dict | None = None

    # -------------------------------------------------------------- attempts
    def start_attempt(self, **fields) -> dict:
        attempts = self.data["attempts"]
        self.attempt = {
            "attempt": len(attempts) + 1,
            "started": now(),
            "finished": None,
            "status": "running",
            "error": None,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            **fields,
        }
        attempts.append(self.attempt)
        self.data.setdefault("started", self.attempt["started"])
        self.data["status"] = "running"
        self._reserve()
        self.write()
        return self.attempt

    def end_attempt(self, status: str, error: str | None, duration_s: float, objective: float) -> None:
        """Close the attempt and set the top-level status and results (see the class docstring)."""
        assert self.attempt is not None
        self.attempt.update(status=status, error=error, finished=now(), duration_s=round(duration_s, 3))
        completed_before = any(a.get("status") == "completed" for a in self.data["attempts"][:-1])
        if status == "completed" or not completed_before:
            self.current.setdefault("objective", objective)
            self.current.setdefault("duration_s", round(duration_s, 3))
            self.data.update(self.current)
            self.data["status"] = status
            if error:
                self.data["error"] = error
            else:
                self.data.pop("error", None)
        else:
            self.data["status"] = "completed"  # the completed results stand; attempts[-1] says what happened since
        self.data["finished"] = self.attempt["finished"]
        self.write()
        self._unreserve()

    def update(self, **fields) -> None:
        """Top-level fields that are not per attempt (identity, choices, overrides, rerun)."""
        self.data.update(fields)

    # -------------------------------------------------------------- disk
    def write(self) -> None:
        try:
            write_json(self.path, self.data)
        except OSError as e:
            if e.errno != errno.ENOSPC or not self._unreserve():
                raise
            write_json(self.path, self.data)  # the reserve's blocks are free now

    def _reserve(self) -> None:
        try:
            with open(self.dir / RESERVE_FILE, "wb") as f:
                f.write(b"\0" * RESERVE_BYTES)
                f.flush()
                os.fsync(f.fileno())
        except OSError:
            (self.dir / RESERVE_FILE).unlink(missing_ok=True)

    def _unreserve(self) -> bool:
        path = self.dir / RESERVE_FILE
        if not path.exists():
            return False
        path.unlink()
        return True
