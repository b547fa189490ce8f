"""Rendering a Summary: the headline, markdown (summary.md), CSV (summary.csv), rich tables (the terminal),
validation curves of every job (curves.png) and the metric against a numeric override."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from sweeplab.errors import did_you_mean
from sweeplab.io import save_figure, write_text
from sweeplab.sweeps.jobs import DONE, SummaryError, norm, show
from sweeplab.sweeps.table import METRIC_COLUMNS, Summary

SUMMARY_CSV, SUMMARY_MD, CURVES_PNG = "summary.csv", "summary.md", "curves.png"
STATUS_COLOURS = {
    "completed": "green",
    "failed": "red",
    "diverged": "red",
    "unreadable": "red",
    "pruned": "cyan",
    "interrupted": "yellow",
    "running": "yellow",
    "unstarted": "yellow",
}


def _missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def fmt(x: Any, digits: int = 4) -> str:
    """A number for people: 4 significant digits, ``-`` for none."""
    if _missing(x):
        return "-"
    if isinstance(x, float):
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return f"{x:.{digits}g}"
    return str(x)


def cell(row: dict, key: str, varied: Sequence[str] = ()) -> str:
    """One table cell as summary.md and the terminal show it."""
    v = row.get(key)
    if key in varied:  # 4 significant digits for sampled floats (summary.csv keeps them whole)
        return fmt(v) if isinstance(v, float) else show(v)
    if key == "duration_s" and not _missing(v):
        return f"{float(v):.1f}"
    if key == "params" and not _missing(v):
        return f"{int(v):,}"
    if key == "overfit":  # the val − train gap of the jobs that overfit; blank for the others
        return "" if _missing(v) else f"yes ({fmt(v, 3)})"
    std = row.get(f"{key}_std")
    if key in METRIC_COLUMNS and std is not None and math.isfinite(std):  # a seed group: mean ± std
        return f"{fmt(v)} ± {fmt(std, 2)}"
    return fmt(v)


def headline(s: Summary) -> str:
    """``5 jobs (2 completed, 2 diverged, 1 failed); 2 diverged: ranked last; metric val/loss (min); ...``"""
    counts = s.status_counts()
    parts = [f"{len(s.table)} jobs ({', '.join(f'{n} {k}' for k, n in counts.items())})"]
    if s.ranked_by_metric and counts.get("diverged"):
        parts.append(f"{counts['diverged']} diverged: ranked last")
    if s.overfit:
        parts.append(f"{len(s.overfit)} overfit (val/loss ended above its best, train loss below it)")
    parts += [f"metric {s.metric} ({s.mode})", f"varied: {', '.join(s.varied) or 'nothing'}"]
    return "; ".join(parts)


def to_csv(s: Summary) -> str:
    """Every value whole (floats as Python writes them, the varied ones as the command line does)."""
    cols = [*s.columns(), ("error", "error"), ("note", "note")]

    def csv_cell(key: str, v: Any) -> Any:
        if key in s.varied:
            return show(v)
        if _missing(v):
            return ""
        return repr(v) if isinstance(v, float) else v

    out = pd.DataFrame([[csv_cell(k, r.get(k)) for k, _ in cols] for r in s.rows], columns=[h for _, h in cols])
    return out.to_csv(index=False, lineterminator="\n")


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    esc = lambda c: str(c).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    return [
        "| " + " | ".join(map(esc, header)) + " |",
        "|" + "---|" * len(header),
        *["| " + " | ".join(map(esc, r)) + " |" for r in rows],
    ]


def to_markdown(s: Summary, title: str = "", curves: bool = False) -> str:
    lines = [f"# {title or 'Run summary'}", "", headline(s) + ".", ""]
    cols = s.columns()
    lines += _md_table([h for _, h in cols], [[cell(r, k, s.varied) for k, _ in cols] for r in s.rows])
    if not s.groups.empty:
        gcols = s.group_columns()
        groups = s.groups.to_dict("records")
        lines += ["", "## Mean ± std over seeds", ""]
        lines += _md_table([h for _, h in gcols], [[cell(g, k, s.varied) for k, _ in gcols] for g in groups])
    if s.failed:
        lines += ["", "## Jobs that did not complete", ""]
        lines += _md_table(["job", "status", "error"], [[r["job"], r["status"], r["error"]] for r in s.failed])
        if s.reruns:
            lines += [
                "",
                "Rerun the failed, killed and interrupted ones with the sweep's own command aimed at its dir: "
                "completed jobs are skipped, killed or interrupted ones resume from their last checkpoint, "
                "failed ones start again (an Optuna search continues its study with new trials and resumes the trials "
                "a killed launch left running):",
                "",
                "```bash",
                *s.reruns,
                "```",
            ]
    if s.noted:
        lines += ["", "## Rerun and resumed jobs", ""]
        lines += _md_table(["job", "status", "note"], [[r["job"], r["status"], r["note"]] for r in s.noted])
    if curves:
        lines += ["", f"![validation curves]({CURVES_PNG})"]
    return "\n".join(lines) + "\n"


def short_job(job: str) -> str:
    """``sweep/3_model.dropout=0.2,seed=1`` → ``sweep/3``: the varied values have their own columns."""
    return "/".join(re.sub(r"^(\d+)_.*", r"\1", part) for part in Path(job).parts)


def rich_tables(s: Summary) -> list:
    from rich.table import Table
    from rich.text import Text

    numeric = ("best", "final", "test", "overfit", "epochs", "duration_s", "params", "n")

    def table(title: str, cols: list[tuple[str, str]], rows: list[dict], short: bool = False) -> Table:
        t = Table(title=title, title_justify="left")
        for key, header in cols:
            t.add_column(header, justify="right" if key in numeric else "left", overflow="fold")
        for r in rows:  # Text, not markup: values such as [0.8,0.1] are not rich tags
            cells = [short_job(r["job"]) if k == "job" and short else cell(r, k, s.varied) for k, _ in cols]
            t.add_row(
                *[
                    Text(c, style=STATUS_COLOURS.get(r.get("status"), "") if k == "status" else "")
                    for c, (k, _) in zip(cells, cols)
                ]
            )
        return t

    out = [table(headline(s), s.columns(), s.rows, short=True)]
    if not s.groups.empty:
        out.append(table("mean ± std over seeds", s.group_columns(), s.groups.to_dict("records")))
    if s.failed:
        cols = [("job", "job"), ("status", "status"), ("error", "error")]
        out.append(table("jobs that did not complete", cols, s.failed))
    if s.noted:
        out.append(table("rerun and resumed jobs", [("job", "job"), ("status", "status"), ("note", "note")], s.noted))
    return out


def _label(row: dict, varied: list[str]) -> str:
    return " ".join(f"{k.rsplit('.', 1)[-1]}={cell(row, k, varied)}" for k in varied) or row["job"]


def plot_curves(s: Summary, path: Path) -> bool:
    """Validation curves of every job overlaid: one colour per configuration, one line style per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sweeplab.runs.plots import read_csv_series

    curves = []
    for r in s.rows:
        series = read_csv_series(r["_job"].dir / "metrics.csv").get(s.metric, [])
        points = [(step, v) for step, v in series if math.isfinite(v)]
        if points:
            curves.append((r, points))
    if not curves:
        return False
    config = lambda r: tuple(norm(r[k]) for k in s.varied if k != "seed")  # noqa: E731
    configs = list(dict.fromkeys(config(r) for r, _ in curves))
    seeds = list(dict.fromkeys(norm(r.get("seed")) for r, _ in curves))
    cmap = plt.get_cmap("tab10" if len(configs) <= 10 else "tab20")
    styles = ["-", "--", ":", "-."]
    fig, ax = plt.subplots(figsize=(9, 5))
    for r, points in curves:
        steps, values = zip(*points)
        ax.plot(
            steps,
            values,
            color=cmap(configs.index(config(r)) % cmap.N),
            linestyle=styles[seeds.index(norm(r.get("seed"))) % len(styles)] if "seed" in s.varied else "-",
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
    the values span more than a decade. Jobs that did not complete are marked with their status."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = []
    for r in s.rows:
        try:
            x = float(r[key] if key in r else r["_job"].value(key))
        except (TypeError, ValueError):
            continue
        points.append((x, r["best"], r["test"], r["status"]))
    if not points:
        hint = did_you_mean(key, s.varied) + (f"; varied: {', '.join(s.varied)}" if s.varied else "")
        raise SummaryError(f"no run has a numeric value for '{key}'{hint}")
    points.sort()
    xs = [p[0] for p in points]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(xs, [p[1] for p in points], "o-", label=f"best {s.metric}")
    if s.has_test:
        ax.plot(xs, [p[2] for p in points], "s--", label=s.test_name, alpha=0.7)
    for x, best, _, status in points:
        if status != DONE and math.isfinite(best):
            ax.annotate(status, (x, best), textcoords="offset points", xytext=(4, 4), fontsize=8, color="red")
    if min(xs) > 0 and max(xs) / min(xs) > 10:
        ax.set_xscale("log")
    finite = [p[1] for p in points if math.isfinite(p[1])]
    if finite and min(finite) > 0 and max(finite) > 5 * min(finite):  # a blown-up run would flatten the rest
        ax.set_yscale("log")
    ax.set_xlabel(key)
    ax.set_ylabel(s.metric)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    save_figure(fig, path)
    plt.close(fig)
    return True


def write_summary(s: Summary, out_dir: Path, title: str = "") -> list[Path]:
    """summary.csv, summary.md and curves.png (when a job has curves) in ``out_dir``, each written atomically."""
    out_dir = Path(out_dir)
    curves = plot_curves(s, out_dir / CURVES_PNG)
    write_text(out_dir / SUMMARY_CSV, to_csv(s))
    write_text(out_dir / SUMMARY_MD, to_markdown(s, title=title, curves=curves))
    return [out_dir / SUMMARY_CSV, out_dir / SUMMARY_MD] + ([out_dir / CURVES_PNG] if curves else [])
