"""The comparison table (markdown) from a sweep dir's run dirs: test and best-validation metrics,
parameters and wall time per network. Usage: python table.py <sweep dir>"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def row(run: Path) -> str:
    m = json.loads((run / "metrics.json").read_text())
    if m.get("status") != "completed":
        return f"| {m['choices'].get('model')} | {m.get('status')}: {m.get('error', '')} |||||||||"
    test, best = m.get("classification", {}), m.get("best", {})
    auc = test.get("auc_per_class", {})
    minutes = m["duration_s"] / 60
    nan = float("nan")
    return (
        f"| {m['choices']['model']} | {test.get('acc', nan):.3f} | {test.get('f1', nan):.3f} | "
        f"{test.get('auc', nan):.3f} | {' / '.join(f'{auc[k]:.3f}' for k in auc)} | "
        f"{best.get('val/acc', nan):.3f} | {best.get('val/auc', nan):.3f} | "
        f"{m['params']:,} | {m['epochs']} | {minutes:.1f} |"
    )


def main(sweep: str) -> None:
    runs = sorted(p.parent for p in Path(sweep).glob("*/metrics.json"))
    if not runs:
        raise SystemExit(f"table.py: no run dirs with metrics.json under {sweep}")
    print(
        "| model | test acc | test macro-F1 | test macro AUC | test AUC no / sphere / vort | best val acc | "
        "best val AUC | params | epochs | wall min |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for run in runs:
        print(row(run))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
