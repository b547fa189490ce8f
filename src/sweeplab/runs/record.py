"""What a run leaves on disk. Every file is written atomically (temp file + rename), so a crash or
Ctrl-C never leaves a half-written metrics.json, table or plot."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.json"
_UMASK = os.umask(0o022)
os.umask(_UMASK)
STATUSES = ("running", "completed", "failed", "interrupted", "diverged")


def _atomic(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; results should be readable like any other file
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    _atomic(path, lambda f: f.write(text.encode("utf-8")))


def _jsonable(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)  # JSON has no NaN/inf; "nan"/"inf" strings stay readable
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if hasattr(x, "item") and callable(x.item):
        return _jsonable(x.item())
    if isinstance(x, Path):
        return str(x)
    return x


def write_json(path: Path, obj: Any) -> None:
    write_text(path, json.dumps(_jsonable(obj), indent=2) + "\n")


def save_figure(fig, path: Path, dpi: int = 120) -> None:
    _atomic(path, lambda f: fig.savefig(f, format=Path(path).suffix.lstrip(".") or "png", dpi=dpi, bbox_inches="tight"))


def read_metrics(run_dir: Path) -> dict | None:
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, OSError):
        return None


def as_float(x: Any) -> float:
    """Inverse of _jsonable for metric values ("nan", "inf" strings included)."""
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan
