"""Reading jobs back from disk: a run dir → a Job (its record, overrides and composed config).

Everything comes from files (metrics.json, .hydra/overrides.yaml, .hydra/config.yaml, error.txt): under
joblib, Ray or SLURM the jobs ran in other processes. A record that cannot be trusted becomes a job with
status ``unreadable`` and the problem as its error; nothing here raises on a bad run dir.
"""

from __future__ import annotations

import fnmatch
import glob
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from sweeplab.constants import METRICS_FILE, STATUSES
from sweeplab.errors import UserError, did_you_mean, first_line
from sweeplab.io import as_float
from sweeplab.runs.record import read_record

DONE = "completed"
UNREADABLE = "unreadable"  # metrics.json exists but is no record (truncated, not an object, no valid status)
UNSTARTED = "unstarted"  # no metrics.json: Hydra made the dir, the job never wrote its record
# Run dirs moved aside by overwrite=true or by a sweep job whose config changed: archives, not jobs.
ARCHIVE_PATTERN = "*.old-*"
MISSING = object()


class SummaryError(UserError):
    """Nothing to summarise, or a bad option (metric, filter, sort column); the message is one line."""


def parse_overrides(lines: Sequence[str]) -> dict[str, Any]:
    """``["model=gru", "+model.x=1", "a=null", "~b"]`` → ``{"model": "gru", "model.x": 1, "a": None,
    "b": "<deleted>"}``, typed by Hydra's own parser as the job saw them."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    out = {}
    for o in OverridesParser.create().parse_overrides(list(lines)):
        out[o.key_or_group] = "<deleted>" if o.is_delete() else o.value()
    return out


def plain(value: Any) -> Any:
    return OmegaConf.to_container(value) if isinstance(value, (DictConfig, ListConfig)) else value


def show(value: Any) -> str:
    """A config value as the command line writes it."""
    value = plain(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def norm(value: Any) -> Any:
    """Comparable, hashable form: `0` and `0.0` are the same dropout, `null` on the command line is None,
    `[1, 2]` is the string the command line writes."""
    value = plain(value)
    if isinstance(value, bool) or value is None:
        return show(value)
    if isinstance(value, (int, float)):
        return float(value)
    return str(value)


def is_archive(path: Path) -> bool:
    return fnmatch.fnmatch(Path(path).name, ARCHIVE_PATTERN)


def _dict(x: Any) -> dict:
    return x if isinstance(x, dict) else {}


def _list_of_dicts(x: Any) -> list[dict]:
    return [d for d in x if isinstance(d, dict)] if isinstance(x, list) else []


def load_yaml(path: Path) -> tuple[Any, str | None]:
    """(content, problem): a YAML file Hydra wrote, or why it cannot be read."""
    if not path.is_file():
        return None, None
    try:
        return OmegaConf.load(path), None
    except Exception as e:  # yaml's and OmegaConf's errors share no base class worth naming
        return None, f"{path} cannot be read: {first_line(e)}"


@dataclass
class Job:
    """One run dir, read back from disk. ``record`` is {} when there is none or it cannot be trusted;
    ``problem`` then says why."""

    dir: Path
    record: dict
    overrides: dict[str, Any]
    status: str
    problem: str | None = None

    @classmethod
    def load(cls, run_dir: Path) -> Job:
        run_dir = Path(run_dir)
        record, problem = read_record(run_dir)
        status = UNSTARTED if record is None and problem is None else UNREADABLE
        if record is not None:
            status = record.get("status")
            if not isinstance(status, str) or status not in STATUSES:
                problem = f"{run_dir / METRICS_FILE} has no valid status: {status!r}" + did_you_mean(
                    str(status), STATUSES
                )
                record, status = None, UNREADABLE
        overrides, yaml_problem = load_yaml(run_dir / ".hydra" / "overrides.yaml")
        lines = plain(overrides) if overrides is not None else (record or {}).get("overrides")
        try:
            parsed = parse_overrides([str(x) for x in lines] if isinstance(lines, list) else [])
        except Exception as e:  # a hand-edited overrides.yaml: the job is still listed, without its values
            parsed, yaml_problem = {}, yaml_problem or f"{run_dir}/.hydra/overrides.yaml: {first_line(e)}"
        return cls(run_dir, record or {}, parsed, status, problem or yaml_problem)

    @cached_property
    def config(self) -> DictConfig | None:
        cfg, _ = load_yaml(self.dir / ".hydra" / "config.yaml")
        return cfg if isinstance(cfg, DictConfig) else None

    def lookup(self, key: str) -> Any:
        """The job's effective value of ``key``: its override, else its group choice, else its composed
        config; ``MISSING`` when the job has no such key."""
        if key in self.overrides:
            return self.overrides[key]
        choices = _dict(self.record.get("choices"))
        if key in choices:
            return choices[key]
        if self.config is not None:
            value = OmegaConf.select(self.config, key, default=MISSING, throw_on_resolution_failure=False)
            return plain(value) if value is not MISSING else MISSING
        return MISSING

    def value(self, key: str) -> Any:
        value = self.lookup(key)
        return None if value is MISSING else value

    def has(self, key: str) -> bool:
        return self.lookup(key) is not MISSING

    def keys(self) -> set[str]:
        """Every key this job has a value for (what --filter accepts)."""
        keys = set(self.overrides) | set(_dict(self.record.get("choices")))
        if self.config is not None:
            stack = [("", OmegaConf.to_container(self.config, resolve=False))]
            while stack:
                prefix, node = stack.pop()
                for k, v in node.items():
                    keys.add(prefix + str(k))
                    if isinstance(v, dict):
                        stack.append((f"{prefix}{k}.", v))
        return keys

    @property
    def monitor(self) -> str:
        return str(self.record.get("monitor") or "val/loss")

    @property
    def mode(self) -> str:
        return str(self.record.get("mode") or "min")

    @property
    def attempts(self) -> list[dict]:
        return _list_of_dicts(self.record.get("attempts"))

    def history(self, metric: str) -> list[float]:
        return [as_float(r[metric]) for r in _list_of_dicts(self.record.get("history")) if metric in r]

    def metrics(self) -> set[str]:
        """The metric names this job recorded (its validation history, best and final values)."""
        names = {k for r in _list_of_dicts(self.record.get("history")) for k in r}
        names |= set(_dict(self.record.get("best"))) | set(_dict(self.record.get("final")))
        return {n for n in names if n not in ("epoch", "step", "checkpoint")}

    def best(self, metric: str, mode: str) -> float:
        best = _dict(self.record.get("best"))
        if metric == self.monitor and mode == self.mode and metric in best:
            return as_float(best[metric])
        values = [v for v in self.history(metric) if math.isfinite(v)]
        if not values:
            return math.nan
        return min(values) if mode == "min" else max(values)

    def final(self, metric: str) -> float:
        values = self.history(metric)
        return values[-1] if values else as_float(_dict(self.record.get("final")).get(metric))

    def test(self, metric: str) -> float:
        name = "test/" + metric.split("/", 1)[1] if metric.startswith("val/") else None
        return as_float(_dict(self.record.get("final")).get(name)) if name else math.nan

    def number(self, key: str) -> float | int | None:
        """A numeric record field (epochs, duration_s, params), None when absent or not a number."""
        v = self.record.get(key)
        return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    @property
    def error(self) -> str:
        """One line: the run's own error (metrics.json), else its last attempt's, else the last line of
        error.txt's traceback, else why the record cannot be read."""
        for source in (self.record, *(self.attempts[-1:])):
            if source.get("error"):
                return str(source["error"])
        path = self.dir / "error.txt"
        try:
            lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            lines = []
        if lines:
            return lines[-1]
        if self.status == UNSTARTED:
            return "no metrics.json: the job never started"
        return self.problem or ""

    @property
    def note(self) -> str:
        """What happened besides the result: rerun because its config changed, resumed or retried, an
        attempt that failed after the job had completed."""
        notes = []
        rerun = _dict(self.record.get("rerun"))
        if rerun:
            previous = f"; the earlier run is in {Path(str(rerun['previous'])).name}" if rerun.get("previous") else ""
            notes.append(f"rerun: {rerun.get('reason') or 'its config changed'}{previous}")
        attempts = self.attempts
        if len(attempts) > 1:
            steps = [_attempt_status(a, last=i == len(attempts) - 1) for i, a in enumerate(attempts)]
            resumed = sum(1 for a in attempts[1:] if a.get("resumed_from"))
            how = f"resumed {resumed}×" if resumed else "restarted"
            notes.append(f"{len(attempts)} attempts ({' → '.join(steps)}), {how}")
            done = [a for a in attempts if a.get("status") == DONE]
            last = attempts[-1]
            if self.status == DONE and done and last.get("status") != DONE:
                why = f": {last['error']}" if last.get("error") else ""
                notes.append(
                    f"attempt {last.get('attempt', len(attempts))} {_attempt_status(last, last=True)} after the job "
                    f"completed{why}; the results are attempt {done[-1].get('attempt', '?')}'s"
                )
        if self.problem and self.status != UNREADABLE:
            notes.append(self.problem)
        return "; ".join(notes)

    @property
    def sweep_dir(self) -> Path | None:
        parent = self.dir.parent
        return parent if (parent / "multirun.yaml").is_file() else None


def _attempt_status(attempt: dict, last: bool) -> str:
    status = str(attempt.get("status") or "?")
    # An earlier attempt still "running" was killed: a later attempt took over its run dir.
    return "killed" if status == "running" and not last else status


def _natural(path: Path) -> list:
    """Sort key: ``sweep/10_x`` after ``sweep/9_x`` (Hydra numbers the jobs of a sweep)."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


def _is_job_dir(path: Path) -> bool:
    return (path / METRICS_FILE).is_file() or (path / ".hydra" / "overrides.yaml").is_file()


def find_run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """Run dirs under the given run dirs, sweep dirs, log dirs or globs (each found once, in order).
    Archives (``*.old-*``) found by a glob or under a dir are left out; one named on its own is read."""
    found: dict[Path, None] = {}
    for raw in paths:
        raw = os.path.expanduser(str(raw))
        if glob.has_magic(raw):
            matches = [Path(m) for m in sorted(glob.glob(raw)) if not is_archive(Path(m))]
        else:
            matches = [Path(raw)] if Path(raw).exists() else []
        if not matches:
            raise SummaryError(f"no such run or sweep dir: {raw}")
        for m in matches:
            if not m.is_dir():
                continue
            if _is_job_dir(m):
                found[m.resolve()] = None
                continue
            hits = {p.parent for p in m.rglob(METRICS_FILE)}
            hits |= {p.parent.parent for p in m.rglob("overrides.yaml") if p.parent.name == ".hydra"}
            for d in sorted(hits, key=_natural):
                if not any(is_archive(Path(part)) for part in d.relative_to(m).parts):
                    found[d.resolve()] = None
    return list(found)


def load_jobs(paths: Iterable[str | Path]) -> list[Job]:
    paths = list(paths)
    dirs = find_run_dirs(paths)
    if not dirs:
        raise SummaryError(f"no runs found under {', '.join(map(str, paths))}")
    return [Job.load(d) for d in dirs]
