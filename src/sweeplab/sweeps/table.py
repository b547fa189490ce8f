"""Building the table: one pandas DataFrame of jobs, the overrides that vary as columns, filtered and
sorted (jobs that did not complete rank last), seed groups as mean ± std, and the rerun commands."""

from __future__ import annotations

import math
import os
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from sweeplab.constants import STATUSES
from sweeplab.errors import did_you_mean
from sweeplab.io import as_float
from sweeplab.sweeps.jobs import (
    DONE,
    MISSING,
    UNREADABLE,
    UNSTARTED,
    Job,
    SummaryError,
    load_jobs,
    load_yaml,
    norm,
    parse_overrides,
    plain,
    show,
)

# Overrides that say where files go or how the console looks, not what was trained.
IGNORED_KEYS = ("hydra", "paths", "ckpt_path", "callbacks.progress_bar")
METRIC_COLUMNS = ("best", "final", "test")
# What a rerun of the sweep's command fixes: it skips completed jobs, resumes killed or interrupted ones and
# starts failed ones again. A diverged job would diverge again, a pruned one was stopped by its search on
# purpose; an unreadable record is not trained over.
RERUNNABLE = ("failed", "interrupted", "running", UNSTARTED)
STATUS_ORDER = (DONE, *(s for s in STATUSES if s != DONE), UNREADABLE, UNSTARTED)
# Overfitting: the validation loss ended this far (relative) above its best while the training loss sat below it.
OVERFIT_RISE = 0.01


def ignored(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") or key.startswith(k + "/") for k in IGNORED_KEYS)


@dataclass
class Summary:
    """``table``: one row per job in ranking order, with columns job, <varied keys>, status, best, final,
    test, epochs, duration_s, params, error, note and ``_job`` (the Job). ``groups``: mean ± std over
    seeds per configuration (empty unless the seed varies)."""

    table: pd.DataFrame
    metric: str
    mode: str
    varied: list[str]
    root: Path
    sort: str = "best"
    groups: pd.DataFrame = field(default_factory=pd.DataFrame)
    reruns: list[str] = field(default_factory=list)

    @property
    def rows(self) -> list[dict]:
        """The table as dicts, best first (what the sweep callback logs)."""
        return self.table.to_dict("records")

    @property
    def jobs(self) -> list[Job]:
        return list(self.table["_job"])

    @property
    def failed(self) -> list[dict]:
        """Rows of the jobs that did not complete."""
        return [r for r in self.rows if r["status"] != DONE]

    @property
    def noted(self) -> list[dict]:
        """Rows with a note: rerun, resumed or retried jobs."""
        return [r for r in self.rows if r["note"]]

    @property
    def overfit(self) -> list[dict]:
        """Rows of the jobs that overfit (``overfit``: their final val − train loss gap)."""
        return [r for r in self.rows if np.isfinite(r["overfit"])]

    @property
    def ranked_by_metric(self) -> bool:
        return self.sort in METRIC_COLUMNS

    @property
    def has_test(self) -> bool:
        return bool(np.isfinite(self.table["test"]).any())

    @property
    def test_name(self) -> str:
        return "test/" + self.metric.split("/", 1)[1] if self.metric.startswith("val/") else "test"

    def status_counts(self) -> dict[str, int]:
        counts = self.table["status"].value_counts()
        known = [s for s in STATUS_ORDER if s in counts]
        return {s: int(counts[s]) for s in known + sorted(set(counts.index) - set(known))}

    def columns(self) -> list[tuple[str, str]]:
        """(column, header) pairs of the job table."""
        cols = [
            ("job", "job"),
            *[(k, k) for k in self.varied],
            ("status", "status"),
            ("best", f"best {self.metric}"),
            ("final", f"final {self.metric}"),
        ]
        if self.has_test:
            cols.append(("test", self.test_name))
        if self.overfit:
            cols.append(("overfit", "overfit: val−train loss"))
        return cols + [("epochs", "epochs"), ("duration_s", "duration_s"), ("params", "params")]

    def group_columns(self) -> list[tuple[str, str]]:
        cols = [(k, k) for k in self.varied if k != "seed"]
        cols += [("n", "n"), ("best", f"best {self.metric}"), ("final", f"final {self.metric}")]
        return cols + ([("test", self.test_name)] if self.has_test else [])


def parse_filter(spec: str) -> tuple[str, Any]:
    """``key=value``, typed like an override: ``seed=2`` matches the int 2, ``x=null`` matches None."""
    try:
        ((key, want),) = parse_overrides([spec]).items()
    except Exception:
        key = ""
    if not key:
        raise SummaryError(f"--filter wants key=value, got {spec!r}")
    return key, want


def _most_common(items: list[str]) -> str:
    return max(dict.fromkeys(items), key=items.count)


def _choose_metric(jobs: list[Job], metric: str | None, mode: str | None) -> tuple[str, str]:
    readable = [j for j in jobs if j.record]
    if metric is None:
        metric = _most_common([j.monitor for j in readable]) if readable else "val/loss"
    else:
        have = set().union(*(j.metrics() for j in jobs)) | {j.monitor for j in readable if j.status == DONE}
        if metric not in have:
            listing = f"the runs have: {', '.join(sorted(have))}" if have else "no run recorded a metric"
            raise SummaryError(f"no run has metric '{metric}'{did_you_mean(metric, have)}; {listing}")
    if mode is None:
        modes = [j.mode for j in readable if j.monitor == metric]
        mode = _most_common(modes) if modes else ("max" if any(w in metric for w in ("acc", "auc", "f1")) else "min")
    if mode not in ("min", "max"):
        raise SummaryError(f"--mode must be min or max, not {mode!r}")
    return metric, mode


def _filter(jobs: list[Job], filters: Sequence[str]) -> list[Job]:
    for spec in filters:
        key, want = parse_filter(spec)
        if key != "status" and not any(j.has(key) for j in jobs):
            known = {"status"} | set().union(*(j.keys() for j in jobs))
            raise SummaryError(f"--filter {spec}: no run has the key '{key}'{did_you_mean(key, known)}")
        values = [j.status if key == "status" else j.value(key) for j in jobs]
        kept = [j for j, v in zip(jobs, values) if norm(v) == norm(want)]
        if not kept:
            have = sorted({show(v) for v in values})
            raise SummaryError(
                f"--filter {spec}: no run left{did_you_mean(show(want), have)}; {key} is one of {', '.join(have)}"
            )
        jobs = kept
    return jobs


def overfit_gap(job: Job) -> float:
    """The final val − train loss gap of a completed job that overfit (its validation loss ended more than
    OVERFIT_RISE above its best while its training loss sat below it), else NaN."""
    final = job.record.get("final") if isinstance(job.record.get("final"), dict) else {}
    train = as_float(final.get("train/epoch_loss", final.get("train/loss")))
    vals = [v for v in job.history("val/loss") if math.isfinite(v)]
    if job.status != DONE or len(vals) < 2 or not math.isfinite(train):
        return math.nan
    gap = vals[-1] - train
    return gap if vals[-1] > (1 + OVERFIT_RISE) * min(vals) and gap > 0 else math.nan


def _row(job: Job, keys: list[str], metric: str, mode: str, root: Path) -> dict:
    name = os.path.relpath(job.dir, root)
    return {
        "job": name,
        **{k: job.value(k) for k in keys},
        "status": job.status,
        "best": job.best(metric, mode),
        "final": job.final(metric),
        "test": job.test(metric),
        "epochs": job.number("epochs"),
        "duration_s": job.number("duration_s"),
        "params": job.number("params"),
        "overfit": overfit_gap(job),
        # the job column names the dir: messages about its files need not repeat where it lies
        "error": "" if job.status == DONE else job.error.replace(str(job.dir), name),
        "note": job.note.replace(str(job.dir), name),
        "_job": job,
    }


def _sorted(df: pd.DataFrame, column: str, descending: bool, mode: str) -> pd.DataFrame:
    """Metric columns: completed jobs with a value first (best first, or worst with ``descending``), then
    completed jobs without one, then every job that did not complete (failed, diverged, ...), in dir order.
    Other columns: numbers before strings, missing values last."""
    if column in METRIC_COLUMNS:
        value = df[column].astype(float)
        done = df["status"] == DONE
        ok = done & np.isfinite(value)
        signed = (value if mode == "min" else -value) * (-1 if descending else 1)
        keys = pd.DataFrame({"tier": np.where(ok, 0, np.where(done, 1, 2)), "v": signed.where(ok, 0.0)})
        ascending = [True, True]
    else:
        values = df[column].map(lambda v: MISSING if v is None or v is MISSING else norm(v))
        keys = pd.DataFrame(
            {
                "missing": values.map(lambda v: v is MISSING),
                "is_str": values.map(lambda v: isinstance(v, str)),
                "num": values.map(lambda v: v if isinstance(v, float) else np.nan).astype(float),
                "str": values.map(lambda v: v if isinstance(v, str) else ""),
            }
        )
        ascending = [True, True, not descending, not descending]
    order = keys.sort_values(list(keys.columns), ascending=ascending, kind="stable").index
    return df.loc[order].reset_index(drop=True)


def seed_groups(df: pd.DataFrame, varied: list[str], mode: str) -> pd.DataFrame:
    """Jobs that differ only in seed, one row per configuration: how many completed (``n``, "done/all"
    when some did not) and the mean and std (``<metric>_std``) of each metric over the completed ones
    (non-finite values left out). Best configuration first."""
    keys = [k for k in varied if k != "seed"]
    metrics = df[list(METRIC_COLUMNS)].astype(float)
    done = df["status"] == DONE
    values = metrics.where(done.to_numpy()[:, None] & np.isfinite(metrics))
    by = [df[k].map(norm).rename(k) for k in keys] or [pd.Series(0, index=df.index, name="_all")]
    grouped = values.groupby(by, sort=False, dropna=False)
    stats = grouped.agg(["mean", "std"])
    counts = done.groupby(by, sort=False, dropna=False).agg(["sum", "size"])
    first = df.groupby(by, sort=False, dropna=False).head(1)  # the values as the jobs wrote them
    # object dtype: pandas would otherwise store strings as its str dtype and turn a None value into NaN
    out = pd.DataFrame({k: first[k].to_numpy() for k in keys}, index=stats.index, dtype=object)
    out["n"] = [str(d) if d == n else f"{d}/{n}" for d, n in zip(counts["sum"], counts["size"])]
    for m in METRIC_COLUMNS:
        out[m], out[f"{m}_std"] = stats[(m, "mean")], stats[(m, "std")]
    sign = 1 if mode == "min" else -1
    rank = pd.DataFrame({"missing": ~np.isfinite(out["best"]), "v": (sign * out["best"]).fillna(0.0)})
    return out.loc[rank.sort_values(["missing", "v"], kind="stable").index].reset_index(drop=True)


def shown_path(path: str | Path, relative_to: Path | None) -> str:
    """``path`` relative to ``relative_to`` when it lies inside it, else as it is."""
    if relative_to is not None:
        rel = os.path.relpath(Path(path).resolve(), Path(relative_to).resolve())
        if rel != ".." and not rel.startswith(".." + os.sep):
            return rel
    return str(path)


def rerun_commands(jobs: Iterable[Job], relative_to: Path | None = None) -> list[str]:
    """Per sweep with jobs a rerun can finish (failed, killed, interrupted, never started): the sweep's own
    command (from its multirun.yaml) aimed at its own dir, run from the dir it was launched in. Completed
    jobs are then skipped, killed or interrupted ones resume from last.ckpt, failed ones start again; an
    Optuna search continues its study. With ``relative_to`` (the current dir) paths under it are relative."""
    sweeps = dict.fromkeys(j.sweep_dir for j in jobs if j.status in RERUNNABLE and j.sweep_dir is not None)
    cmds = []
    for sweep in sweeps:
        cfg, _ = load_yaml(sweep / "multirun.yaml")
        hydra = OmegaConf.select(cfg, "hydra", default=None) if isinstance(cfg, DictConfig) else None
        if not isinstance(hydra, DictConfig):
            continue
        prog = f"sweeplab-{OmegaConf.select(hydra, 'job.name', default='train')}"
        overrides = {k: plain(OmegaConf.select(hydra, f"overrides.{k}", default=[])) for k in ("hydra", "task")}
        hydra_overrides = [
            str(o) for o in overrides["hydra"] if not str(o).startswith(("hydra.sweep.dir=", "hydra.mode="))
        ]  # -m sets the mode
        cwd = OmegaConf.select(hydra, "runtime.cwd", default=None)  # relative paths in overrides start there
        sweep_arg = shown_path(sweep, Path(cwd)) if cwd else str(sweep)
        args = [
            prog,
            "-m",
            *hydra_overrides,
            f"hydra.sweep.dir={sweep_arg}",
            *map(str, overrides["task"]),
        ]
        here = relative_to is not None and cwd and Path(cwd).resolve() == Path(relative_to).resolve()
        cd = f"cd {shlex.quote(shown_path(cwd, relative_to))} && " if cwd and not here else ""
        cmds.append(cd + " ".join(shlex.quote(a) for a in args))
    return cmds


def summarise(
    paths: Iterable[str | Path],
    metric: str | None = None,
    mode: str | None = None,
    sort: str | None = None,
    filters: Sequence[str] = (),
    relative_to: Path | None = None,
) -> Summary:
    """The table for the run dirs under ``paths``. ``metric``/``mode``: what ranks the jobs (default: their
    monitor); ``filters``: ``key=value`` (a job's override, group choice, config value or its status);
    ``sort``: a column, ``-column`` for descending; ``relative_to``: show paths under this dir relative."""
    jobs = load_jobs(paths)
    metric, mode = _choose_metric(jobs, metric, mode)
    keys = list(dict.fromkeys(k for j in jobs for k in j.overrides if not ignored(k)))
    jobs = _filter(jobs, filters)
    root = Path(os.path.commonpath([str(j.dir) for j in jobs])) if len(jobs) > 1 else jobs[0].dir.parent
    df = pd.DataFrame([_row(j, keys, metric, mode, root) for j in jobs], dtype=object)
    df[list(METRIC_COLUMNS)] = df[list(METRIC_COLUMNS)].astype(float)
    varied = [k for k in keys if df[k].map(norm).nunique(dropna=False) > 1]
    df = df.drop(columns=[k for k in keys if k not in varied])

    summary = Summary(df, metric, mode, varied, root)
    column = (sort or "best").lstrip("-")
    column = "duration_s" if column == "duration" else column
    valid = [k for k, _ in summary.columns()] + ["duration"]
    if column not in valid:
        raise SummaryError(f"--sort {column!r}{did_you_mean(column, valid)}: choose one of {', '.join(valid)}")
    summary.sort = column
    summary.table = _sorted(df, column, bool(sort and sort.startswith("-")), mode)
    summary.groups = seed_groups(summary.table, varied, mode) if "seed" in varied else pd.DataFrame()
    summary.reruns = rerun_commands(summary.jobs, relative_to)
    return summary
