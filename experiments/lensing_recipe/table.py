"""The lensing tables (markdown) from run dirs and the plain CNN's JSON lines: one row per run, with the
overrides that differ between the runs, the test metrics (the held-out 10 % of train/, best-val checkpoint,
rotation-averaged where the run said so), the best validation AUC, parameters, epochs and wall time.

    python table.py RUN_OR_SWEEP_DIR... [--plain plain.jsonl] [--sort fsub|order]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

DIFFICULTY = {"high": "0.04-0.08", "medium": "0.02-0.04", "realistic": "0.005-0.02"}  # data/lensing_sim.py
COMMON = {"num_threads=1", "num_threads=2", "callbacks.progress_bar=null", "data=lensing"}


def runs(paths: list[str]) -> list[Path]:
    found = []
    for p in map(Path, paths):
        found += [p] if (p / "metrics.json").is_file() else sorted(m.parent for m in p.glob("*/metrics.json"))
    return found


def overrides(run: dict) -> list[str]:
    return [o for o in run["overrides"] if o not in COMMON and not o.startswith(("hydra.", "paths."))]


def rows(paths: list[str], plain: str | None) -> list[dict]:
    loaded = [json.loads((r / "metrics.json").read_text()) for r in runs(paths)]
    shared = set.intersection(*(set(overrides(m)) for m in loaded)) if loaded else set()
    out = []
    for m in loaded:
        test, best = m.get("classification", {}), m.get("best", {})
        varied = [o for o in overrides(m) if o not in shared and not o.startswith(("model=", "data.difficulty="))]
        out.append(
            {
                "model": m["choices"].get("model", "?"),
                "fsub": m.get("data", {}).get("fsub", "?"),
                "setting": " ".join(varied) or "defaults",
                "status": m["status"],
                "acc": test.get("acc"),
                "f1": test.get("f1"),
                "auc": test.get("auc"),
                "val_auc": best.get("val/auc"),
                "params": m.get("params"),
                "epochs": m.get("epochs"),
                "minutes": m.get("duration_s", 0) / 60,
            }
        )
    for line in Path(plain).read_text().splitlines() if plain else []:
        b = json.loads(line)
        out.append(
            {
                "model": "plain CNN (benchmark)",
                "fsub": DIFFICULTY[b["difficulty"]],
                "setting": f"{b['threads']} threads",
                "status": "completed",
                "acc": b["test_acc"],
                "f1": b["test_f1"],
                "auc": b["test_auc"],
                "val_auc": b["val_auc"],
                "params": b["params"],
                "epochs": b["epochs"],
                "minutes": b["total_s"] / 60,
            }
        )
    return out


def fmt(v, spec: str = ".3f") -> str:
    return "–" if v is None else format(v, spec)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--plain", help="JSON lines of benchmarks/lensing_plain_cnn.py")
    ap.add_argument("--sort", choices=("fsub", "order"), default="fsub")
    args = ap.parse_args()
    table = rows(args.paths, args.plain)
    if not table:
        raise SystemExit(f"table.py: no run dirs with metrics.json under {' '.join(args.paths)}")
    if args.sort == "fsub":
        table.sort(key=lambda r: (-float(r["fsub"].split("-")[0]) if r["fsub"][0].isdigit() else 0, r["model"]))
    print(
        "| f_sub | model | setting | test macro AUC | test acc | test macro-F1 | best val AUC | params | epochs | min |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in table:
        status = "" if r["status"] == "completed" else f" ({r['status']})"
        print(
            f"| {r['fsub']} | {r['model']} | {r['setting']}{status} | {fmt(r['auc'], '.4f')} | {fmt(r['acc'])} | "
            f"{fmt(r['f1'])} | {fmt(r['val_auc'], '.4f')} | {fmt(r['params'], ',')} | {r['epochs']} | "
            f"{fmt(r['minutes'], '.1f')} |"
        )


if __name__ == "__main__":
    main()
