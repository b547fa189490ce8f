"""One table for any set of runs: the sweep callback and `sweeplab-compare` both build it here.

Everything is read back from the run dirs (metrics.json, .hydra/overrides.yaml, .hydra/config.yaml,
metrics.csv): under joblib, Ray or SLURM the jobs ran in other processes, so files are the only record.
"""

from __future__ import annotations

import csv
import glob
import io
import math
import os
import re
import shlex
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from sweeplab.constants import METRICS_FILE
from sweeplab.io import as_float, save_figure, write_text
from sweeplab.runs.record import read_metrics

SUMMARY_CSV, SUMMARY_MD, CURVES_PNG = "summary.csv", "summary.md", "curves.png"
# Overrides that say where files go or how the console looks, not what was trained.
IGNORED_KEYS = ("hydra", "paths", "ckpt_path", "callbacks.progress_bar")
DONE = "completed"


class SummaryError(ValueError):
    """Nothing to summarise, or a bad option; the message is one line."""


def _ignored(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") or key.startswith(k + "/") for k in IGNORED_KEYS)


def _parse_overrides(lines: Sequence[str]) -> dict[str, Any]:
    """``["model=gru", "+model.x=1", "a=null"]`` → ``{"model": "gru", "model.x": 1, "a": None}``, typed
    by Hydra's own parser as the job saw them."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    out = {}
    for o in OverridesParser.create().parse_overrides(list(lines)):
        out[o.key_or_group] = "<deleted>" if o.is_delete() else o.value()
    return out


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value) if isinstance(value, (DictConfig, ListConfig)) else value


def _norm(value: Any) -> Any:
    """Comparable form: `0` and `0.0` are the same dropout, `null` on the command line is None."""
    value = _plain(value)
    if isinstance(value, bool) or value is None:
        return show(value)
    if isinstance(value, (int, float)):
        return float(value)
    return str(value)


def show(value: Any) -> str:
    """A config value as the command line writes it."""
    value = _plain(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


@dataclass
class Job:
    """One run dir, read back from disk."""

    dir: Path
    record: dict
    overrides: dict[str, Any]

    @classmethod
    def load(cls, run_dir: Path) -> Job:
        run_dir = Path(run_dir)
        record = read_metrics(run_dir) or {"status": "unknown", "error": "no metrics.json (the job never started)"}
        path = run_dir / ".hydra" / "overrides.yaml"
        lines = OmegaConf.to_container(OmegaConf.load(path)) if path.is_file() else record.get("overrides", [])
        return cls(run_dir, record, _parse_overrides(lines or []))

    @cached_property
    def config(self) -> DictConfig | None:
        path = self.dir / ".hydra" / "config.yaml"
        return OmegaConf.load(path) if path.is_file() else None

    def value(self, key: str) -> Any:
        """The job's effective value: its override, else its group choice, else its composed config."""
        if key in self.overrides:
            return self.overrides[key]
        choices = self.record.get("choices") or {}
        if key in choices:
            return choices[key]
        if self.config is not None:
            return _plain(OmegaConf.select(self.config, key, default=None, throw_on_resolution_failure=False))
        return None

    @property
    def status(self) -> str:
        return str(self.record.get("status", "unknown"))

    @property
    def monitor(self) -> str:
        return str(self.record.get("monitor") or "val/loss")

    @property
    def mode(self) -> str:
        return str(self.record.get("mode") or "min")

    def history(self, metric: str) -> list[float]:
        return [as_float(r[metric]) for r in self.record.get("history") or [] if metric in r]

    def best(self, metric: str, mode: str) -> float:
        best = self.record.get("best")
        if metric == self.monitor and mode == self.mode and isinstance(best, dict) and metric in best:
            return as_float(best[metric])
        values = [v for v in self.history(metric) if math.isfinite(v)]
        if not values:
            return math.nan
        return min(values) if mode == "min" else max(values)

    def final(self, metric: str) -> float:
        values = self.history(metric)
        return values[-1] if values else as_float((self.record.get("final") or {}).get(metric))

    def test(self, metric: str) -> float:
        name = "test/" + metric.split("/", 1)[1] if metric.startswith("val/") else None
        return as_float((self.record.get("final") or {}).get(name)) if name else math.nan

    @property
    def error(self) -> str:
        """One line: the run's own (metrics.json "error", the real cause unwrapped from Hydra's
        instantiation errors), else the last line of error.txt's traceback."""
        if self.record.get("error"):
            return str(self.record["error"])
        path = self.dir / "error.txt"
        lines = (
            [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()] if path.is_file() else []
        )
        return lines[-1] if lines else ""

    @property
    def sweep_dir(self) -> Path | None:
        parent = self.dir.parent
        return parent if (parent / "multirun.yaml").is_file() else None


def find_run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """Run dirs under the given run dirs, sweep dirs, log dirs or globs (each found once, in order)."""
    found: dict[Path, None] = {}
    for raw in paths:
        matches = sorted(glob.glob(os.path.expanduser(str(raw)))) or ([str(raw)] if Path(raw).exists() else [])
        if not matches:
            raise SummaryError(f"no such run or sweep dir: {raw}")
        for m in map(Path, matches):
            if not m.is_dir():
                continue
            if (m / METRICS_FILE).is_file() or (m / ".hydra" / "overrides.yaml").is_file():
                found[m.resolve()] = None
                continue
            hits = {p.parent for p in m.rglob(METRICS_FILE)} | {
                p.parent.parent for p in m.rglob("overrides.yaml") if p.parent.name == ".hydra"
            }
            for d in sorted(hits):
                found[d.resolve()] = None
    return list(found)


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        if math.isnan(x):
            return "-"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return f"{x:.{digits}g}"
    return str(x)


def _mean_std(values: list[float]) -> tuple[float, float]:
    vals = [v for v in values if math.isfinite(v)]
    if not vals:
        return math.nan, math.nan
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else math.nan)


@dataclass
class Summary:
    jobs: list[Job]
    metric: str
    mode: str
    varied: list[str]
    root: Path
    rows: list[dict] = field(default_factory=list)
    groups: list[dict] = field(default_factory=list)
    reruns: list[str] = field(default_factory=list)

    @property
    def has_test(self) -> bool:
        return any(math.isfinite(r["test"]) for r in self.rows)

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.rows if r["status"] != DONE]

    @property
    def test_name(self) -> str:
        return "test/" + self.metric.split("/", 1)[1] if self.metric.startswith("val/") else "test"

    def columns(self) -> list[tuple[str, str]]:
        """(row key, header) pairs of the job table."""
        cols = [
            ("job", "job"),
            *[(k, k) for k in self.varied],
            ("status", "status"),
            ("best", f"best {self.metric}"),
            ("final", f"final {self.metric}"),
        ]
        if self.has_test:
            cols.append(("test", self.test_name))
        return cols + [("epochs", "epochs"), ("duration_s", "duration_s"), ("params", "params")]

    def group_columns(self) -> list[tuple[str, str]]:
        cols = [(k, k) for k in self.varied if k != "seed"] + [
            ("n", "n"),
            ("best", f"best {self.metric}"),
            ("final", f"final {self.metric}"),
        ]
        return cols + ([("test", self.test_name)] if self.has_test else [])


def _sort_key(key: str, mode: str):
    def k(row: dict):
        v = row.get(key)
        failed = row.get("status", DONE) != DONE
        if key in ("best", "final", "test"):
            x = as_float(v)
            ok = not failed and math.isfinite(x)
            return (not ok, (x if mode == "min" else -x) if ok else 0.0)
        n = _norm(v)
        return (v is None, isinstance(n, str), n if not isinstance(n, str) else 0.0, str(v))

    return k


def summarise(
    paths: Iterable[str | Path],
    metric: str | None = None,
    mode: str | None = None,
    sort: str | None = None,
    filters: Sequence[str] = (),
) -> Summary:
    """The table for the run dirs under ``paths``. ``filters``: ``key=value`` (a job's value of an
    override key or group, or its status); ``sort``: a column, ``-column`` for descending."""
    dirs = find_run_dirs(paths)
    if not dirs:
        raise SummaryError(f"no runs found under {', '.join(map(str, paths))}")
    jobs = [Job.load(d) for d in dirs]
    metric = metric or _most_common([j.monitor for j in jobs])
    if mode is None:
        modes = [j.mode for j in jobs if j.monitor == metric]
        mode = _most_common(modes) if modes else ("max" if any(w in metric for w in ("acc", "auc", "f1")) else "min")
    if mode not in ("min", "max"):
        raise SummaryError(f"--mode must be min or max, not {mode!r}")

    keys = list(dict.fromkeys(k for j in jobs for k in j.overrides if not _ignored(k)))
    for spec in filters:
        try:  # typed like an override: seed=2 matches the int 2, x=null matches None
            ((key, want),) = _parse_overrides([spec]).items()
        except Exception:
            raise SummaryError(f"--filter wants key=value, got {spec!r}") from None
        jobs = [j for j in jobs if _norm(j.status if key == "status" else j.value(key)) == _norm(want)]
    if not jobs:
        raise SummaryError(f"no runs left after --filter {' '.join(filters)}")
    varied = [k for k in keys if len({_norm(j.value(k)) for j in jobs}) > 1]

    root = Path(os.path.commonpath([str(j.dir) for j in jobs])) if len(jobs) > 1 else jobs[0].dir.parent
    rows = []
    for j in jobs:
        row = {
            "job": os.path.relpath(j.dir, root),
            "status": j.status,
            **{k: j.value(k) for k in varied},
            "best": j.best(metric, mode),
            "final": j.final(metric),
            "test": j.test(metric),
            "epochs": j.record.get("epochs"),
            "duration_s": j.record.get("duration_s"),
            "params": j.record.get("params"),
            "error": "" if j.status == DONE else j.error,
            "_job": j,
        }
        rows.append(row)
    summary = Summary(jobs, metric, mode, varied, root)
    sort_col = (sort or "best").lstrip("-")
    valid = {k for k, _ in summary.columns()} | {"duration", "status"}
    if sort_col not in valid:
        raise SummaryError(f"--sort {sort_col!r}: choose one of {', '.join(sorted(valid))}")
    sort_col = "duration_s" if sort_col == "duration" else sort_col
    rows.sort(key=_sort_key(sort_col, mode), reverse=bool(sort and sort.startswith("-")))
    if sort_col in ("best", "final", "test"):  # jobs without the value go last either way
        rows = [r for r in rows if math.isfinite(r[sort_col])] + [r for r in rows if not math.isfinite(r[sort_col])]
    summary.rows = rows
    summary.groups = _seed_groups(summary) if "seed" in varied else []
    summary.reruns = _rerun_commands(summary)
    return summary


def _most_common(items: list[str]) -> str:
    return max(dict.fromkeys(items), key=items.count)


def _seed_groups(s: Summary) -> list[dict]:
    """Jobs that differ only in seed: mean ± std over the completed ones."""
    keys = [k for k in s.varied if k != "seed"]
    groups: dict[tuple, list[dict]] = {}
    for row in s.rows:
        groups.setdefault(tuple(_norm(row[k]) for k in keys), []).append(row)
    out = []
    for members in groups.values():
        done = [r for r in members if r["status"] == DONE]
        g = {k: members[0][k] for k in keys}
        g["n"] = f"{len(done)}/{len(members)}" if len(done) != len(members) else str(len(done))
        for m in ("best", "final", "test"):
            g[m] = _mean_std([r[m] for r in done])
        out.append(g)
    sign = 1 if s.mode == "min" else -1
    out.sort(key=lambda g: (not math.isfinite(g["best"][0]), sign * g["best"][0] if math.isfinite(g["best"][0]) else 0))
    return out


def _rerun_commands(s: Summary) -> list[str]:
    """Per sweep with unfinished jobs: the sweep's own command (from its multirun.yaml) aimed at its own
    dir. Completed jobs are skipped (run_job reads their metrics.json), killed or interrupted ones resume
    from last.ckpt, failed ones start again; an Optuna search continues its study."""
    sweeps = dict.fromkeys(r["_job"].sweep_dir for r in s.failed if r["_job"].sweep_dir is not None)
    cmds = []
    for sweep in sweeps:
        hydra = OmegaConf.select(OmegaConf.load(sweep / "multirun.yaml"), "hydra", default=None)
        if hydra is None:
            continue
        prog = f"sweeplab-{OmegaConf.select(hydra, 'job.name', default='train')}"
        hydra_overrides = [
            o
            for o in OmegaConf.to_container(hydra.overrides.hydra)
            if not o.startswith(("hydra.sweep.dir=", "hydra.mode="))
        ]  # -m sets the mode
        task = OmegaConf.to_container(hydra.overrides.task)
        args = [prog, "-m", *hydra_overrides, f"hydra.sweep.dir={sweep}", *task]
        cwd = OmegaConf.select(hydra, "runtime.cwd", default=None)  # relative paths in overrides start there
        cmds.append((f"cd {shlex.quote(cwd)} && " if cwd else "") + " ".join(shlex.quote(a) for a in args))
    return cmds


# ---------------------------------------------------------------- output
def _cell(row: dict, key: str, keys: Sequence[str] = ()) -> str:
    v = row.get(key)
    if key in keys:  # 4 significant digits for sampled floats (summary.csv keeps them whole)
        return _fmt(v) if isinstance(v, float) else show(v)
    if key == "duration_s" and v is not None:
        return f"{float(v):.1f}"
    if key == "params" and v is not None:
        return f"{int(v):,}"
    if isinstance(v, tuple):  # (mean, std)
        mean, std = v
        return _fmt(mean) if not math.isfinite(std) else f"{_fmt(mean)} ± {_fmt(std, 2)}"
    return _fmt(v)


def to_csv(s: Summary) -> str:
    buf = io.StringIO()
    cols = s.columns() + [("error", "error")]
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([h for _, h in cols])

    def cell(key, v):
        if key in s.varied:
            return show(v)
        if isinstance(v, float):
            return "" if math.isnan(v) else repr(v)
        return "" if v is None else v

    for row in s.rows:
        w.writerow([cell(k, row.get(k)) for k, _ in cols])
    return buf.getvalue()


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    esc = lambda c: str(c).replace("|", "\\|")  # noqa: E731
    return [
        "| " + " | ".join(map(esc, header)) + " |",
        "|" + "---|" * len(header),
        *["| " + " | ".join(map(esc, r)) + " |" for r in rows],
    ]


def headline(s: Summary) -> str:
    counts: dict[str, int] = {}
    for r in s.rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    status = ", ".join(f"{n} {k}" for k, n in sorted(counts.items(), key=lambda kv: kv[0] != DONE))
    varied = ", ".join(s.varied) or "nothing"
    return f"{len(s.rows)} jobs ({status}); metric {s.metric} ({s.mode}); varied: {varied}"


def to_markdown(s: Summary, title: str = "", curves: bool = False) -> str:
    lines = [f"# {title or 'Run summary'}", "", headline(s) + ".", ""]
    cols = s.columns()
    lines += _md_table([h for _, h in cols], [[_cell(r, k, s.varied) for k, _ in cols] for r in s.rows])
    if s.groups:
        gcols = s.group_columns()
        lines += ["", "## Mean ± std over seeds", ""]
        lines += _md_table([h for _, h in gcols], [[_cell(g, k, s.varied) for k, _ in gcols] for g in s.groups])
    if s.failed:
        lines += ["", "## Jobs that did not complete", ""]
        lines += _md_table(["job", "status", "error"], [[r["job"], r["status"], r["error"]] for r in s.failed])
        if s.reruns:
            lines += [
                "",
                "Rerun only these with the sweep's own command aimed at its dir: completed jobs are "
                "skipped, killed or interrupted ones resume from their last checkpoint, failed ones start "
                "again (an Optuna search continues its study with new trials):",
                "",
                "```bash",
                *s.reruns,
                "```",
            ]
    if curves:
        lines += ["", f"![validation curves]({CURVES_PNG})"]
    return "\n".join(lines) + "\n"


def rich_tables(s: Summary) -> list:
    from rich.table import Table
    from rich.text import Text

    colour = {"completed": "green", "failed": "red", "diverged": "red", "interrupted": "yellow", "running": "yellow"}
    numeric = ("best", "final", "test", "epochs", "duration_s", "params", "n")

    def table(title: str, cols: list[tuple[str, str]], rows: list[dict], short: bool = False) -> Table:
        t = Table(title=title, title_justify="left")
        for key, header in cols:
            t.add_column(header, justify="right" if key in numeric else "left", overflow="fold")
        for r in rows:  # Text, not markup: values such as [0.8,0.1] are not rich tags
            cells = [_short_job(r["job"]) if k == "job" and short else _cell(r, k, s.varied) for k, _ in cols]
            t.add_row(
                *[
                    Text(c, style=colour.get(r.get("status"), "") if k == "status" else "")
                    for c, (k, _) in zip(cells, cols)
                ]
            )
        return t

    # The varied values have their own columns: the job dir shows just its number there.
    out = [table(headline(s), s.columns(), s.rows, short=True)]
    if s.groups:
        out.append(table("mean ± std over seeds", s.group_columns(), s.groups))
    if s.failed:
        out.append(
            table("jobs that did not complete", [("job", "job"), ("status", "status"), ("error", "error")], s.failed)
        )
    return out


def _short_job(job: str) -> str:
    """``sweep/3_model.dropout=0.2,seed=1`` → ``sweep/3``."""
    return "/".join(re.sub(r"^(\d+)_.*", r"\1", part) for part in Path(job).parts)


def _label(row: dict, varied: list[str]) -> str:
    return " ".join(f"{k.rsplit('.', 1)[-1]}={_cell(row, k, varied)}" for k in varied) or row["job"]


def plot_curves(s: Summary, path: Path) -> bool:
    """Validation curves of every job overlaid: one colour per configuration, one line style per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sweeplab.runs.plots import read_csv_series

    curves = []
    for r in s.rows:
        points = [
            (st, v) for st, v in read_csv_series(r["_job"].dir / "metrics.csv").get(s.metric, []) if math.isfinite(v)
        ]
        if points:
            curves.append((r, points))
    if not curves:
        return False
    configs = list(dict.fromkeys(tuple(_norm(r[k]) for k in s.varied if k != "seed") for r, _ in curves))
    seeds = list(dict.fromkeys(_norm(r.get("seed")) for r, _ in curves))
    cmap = plt.get_cmap("tab10" if len(configs) <= 10 else "tab20")
    styles = ["-", "--", ":", "-."]
    fig, ax = plt.subplots(figsize=(9, 5))
    for r, points in curves:
        steps, values = zip(*points)
        c = configs.index(tuple(_norm(r[k]) for k in s.varied if k != "seed"))
        ls = styles[seeds.index(_norm(r.get("seed"))) % len(styles)] if "seed" in s.varied else "-"
        ax.plot(
            steps,
            values,
            color=cmap(c % cmap.N),
            linestyle=ls,
            marker="o" if len(steps) < 30 else None,
            markersize=3,
            label=_label(r, s.varied),
        )
    ax.set_xlabel("step")
    ax.set_ylabel(s.metric)
    ax.set_title(f"{s.metric} of {len(curves)} jobs")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    save_figure(fig, path)
    plt.close(fig)
    return True


def plot_against(s: Summary, key: str, path: Path) -> bool:
    """Best (and test) metric of each job against a numeric override, e.g. the LR: a log axis when
    the values span more than a decade. Diverged or failed jobs are marked where they stand."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = []
    for r in s.rows:
        try:
            x = float(r.get(key) if key in r else r["_job"].value(key))
        except (TypeError, ValueError, KeyError):
            continue
        points.append((x, r["best"], r["test"], r["status"]))
    if not points:
        raise SummaryError(
            f"no run has a numeric value for '{key}'" + (f"; varied: {', '.join(s.varied)}" if s.varied else "")
        )
    points.sort()
    xs = [p[0] for p in points]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(xs, [p[1] for p in points], "o-", label=f"best {s.metric}")
    if s.has_test:
        ax.plot(xs, [p[2] for p in points], "s--", label=s.test_name, alpha=0.7)
    for x, best, _, status in points:
        if status != DONE:
            ax.annotate(status, (x, best), textcoords="offset points", xytext=(4, 4), fontsize=8, color="red")
    if min(xs) > 0 and max(xs) / min(xs) > 10:
        ax.set_xscale("log")
    finite = [p[1] for p in points if math.isfinite(p[1])]
    if finite and max(finite) > 5 * min(finite):  # a blown-up run would flatten the interesting part
        ax.set_yscale("log")
    ax.set_xlabel(key)
    ax.set_ylabel(s.metric)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    save_figure(fig, path)
    plt.close(fig)
    return True


def write_summary(s: Summary, out_dir: Path, title: str = "") -> list[Path]:
    """summary.csv, summary.md and curves.png in ``out_dir``, each written atomically."""
    out_dir = Path(out_dir)
    curves = plot_curves(s, out_dir / CURVES_PNG)
    write_text(out_dir / SUMMARY_CSV, to_csv(s))
    write_text(out_dir / SUMMARY_MD, to_markdown(s, title=title, curves=curves))
    return [out_dir / SUMMARY_CSV, out_dir / SUMMARY_MD] + ([out_dir / CURVES_PNG] if curves else [])
