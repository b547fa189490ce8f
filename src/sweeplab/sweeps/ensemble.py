"""Ensembles: the top-k runs of a comparison (by its metric) evaluated together on the test split, their
probabilities averaged (runs/inference.py: evaluate_ensemble), reported beside each member.

    sweeplab-compare SWEEP --ensemble 3                 # the table, then the 3 best runs and their ensemble
    sweeplab-compare SWEEP --ensemble 3 --out reports/  # + ensemble.md and ensemble.json
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from sweeplab.io import write_json, write_text
from sweeplab.sweeps.jobs import DONE, SummaryError
from sweeplab.sweeps.render import _md_table, fmt
from sweeplab.sweeps.table import Summary, _sorted

ENSEMBLE_MD, ENSEMBLE_JSON = "ensemble.md", "ensemble.json"


@dataclass
class EnsembleReport:
    """``rows``: one per member, best first, then the ensemble's: {"run", "best", <split metrics>}."""

    k: int
    metric: str
    mode: str
    split: str
    rows: list[dict]

    @property
    def metrics(self) -> list[str]:
        return list(dict.fromkeys(m for r in self.rows for m in r if m not in ("run", "best")))

    def gain(self) -> float:
        """How much better the ensemble's split loss is than its best member's (positive: better)."""
        key = f"{self.split}/loss"
        members = [r[key] for r in self.rows[:-1] if key in r]
        return min(members) - self.rows[-1][key] if members and key in self.rows[-1] else math.nan


def ensemble(s: Summary, k: int, split: str = "test", accelerator: str = "auto") -> EnsembleReport:
    from sweeplab.runs.inference import evaluate_ensemble

    if k < 2:
        raise SummaryError(f"--ensemble {k}: an ensemble needs at least 2 runs")
    ranked = _sorted(s.table, "best", False, s.mode)
    ranked = ranked[(ranked["status"] == DONE) & ranked["best"].map(math.isfinite)]
    if len(ranked) < k:
        raise SummaryError(
            f"--ensemble {k}: only {len(ranked)} completed run{'s' * (len(ranked) != 1)} with a {s.metric} to "
            f"choose from; give --ensemble {len(ranked)} or less"
        )
    chosen = ranked.head(k).to_dict("records")
    res = evaluate_ensemble([r["_job"].dir for r in chosen], split=split, accelerator=accelerator)
    rows = [{"run": r["job"], "best": r["best"], **m} for r, m in zip(chosen, res["members"])]
    rows.append({"run": f"ensemble of {k} (mean probabilities)", "best": math.nan, **res["ensemble"]})
    return EnsembleReport(k, s.metric, s.mode, split, rows)


def to_markdown(rep: EnsembleReport) -> str:
    header = ["run", f"best {rep.metric}", *rep.metrics]
    body = [[r["run"], fmt(r["best"]), *(fmt(r.get(m)) for m in rep.metrics)] for r in rep.rows]
    gain = rep.gain()
    note = f" The ensemble's {rep.split}/loss is {fmt(gain, 3)} below its best member's." if math.isfinite(gain) else ""
    lines = [
        f"## Ensemble of the top {rep.k} runs by {rep.metric} ({rep.mode}), on the {rep.split} split",
        "",
        f"Each member's {rep.split} metrics and those of their averaged probabilities.{note}",
        "",
        *_md_table(header, body),
    ]
    return "\n".join(lines) + "\n"


def rich_table(rep: EnsembleReport):
    from rich.table import Table
    from rich.text import Text

    t = Table(title=f"ensemble of the top {rep.k} runs by {rep.metric}, {rep.split} split", title_justify="left")
    t.add_column("run", overflow="fold")
    for m in [f"best {rep.metric}", *rep.metrics]:
        t.add_column(m, justify="right")
    for i, r in enumerate(rep.rows):
        style = "bold" if i == len(rep.rows) - 1 else ""
        t.add_row(*[Text(c, style=style) for c in [r["run"], fmt(r["best"]), *(fmt(r.get(m)) for m in rep.metrics)]])
    return t


def write_ensemble(rep: EnsembleReport, out_dir: Path) -> list[Path]:
    out_dir = Path(out_dir)
    write_text(out_dir / ENSEMBLE_MD, to_markdown(rep))
    write_json(
        out_dir / ENSEMBLE_JSON,
        {"k": rep.k, "metric": rep.metric, "mode": rep.mode, "split": rep.split, "rows": rep.rows},
    )
    return [out_dir / ENSEMBLE_MD, out_dir / ENSEMBLE_JSON]
