"""Table and plot for run.sh: python report.py <grid sweep dir> <random sweep dir> --axis KEY --out <dir>.

Per search: its trials, how many distinct values of each axis it tried, the best trial; then every trial;
and <out>/grid_vs_random.png: the best val/loss of each trial against the learning rate and against the second
axis (KEY), with the values each search tried marked under the axis.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from sweeplab.io import save_figure
from sweeplab.sweeps.jobs import load_jobs

LABELS = {"optimizer.lr": "learning rate", "optimizer.weight_decay": "weight decay", "model.dropout": "dropout"}
LOG_SCALE = ("optimizer.lr", "optimizer.weight_decay")


def trials(sweep: Path, axes: list[str]) -> list[dict]:
    out = []
    for job in load_jobs([sweep]):
        out.append(
            {
                "job": job.dir.name.split("_", 1)[0],
                "status": job.status,
                **{k: float(job.value(k)) for k in axes},
                "val": job.best(job.monitor, job.mode),
                "test": job.test(job.monitor),
            }
        )
    return sorted(out, key=lambda t: int(t["job"]))


def fmt(x: float) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4g}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("grid", type=Path)
    ap.add_argument("random", type=Path)
    ap.add_argument("--axis", default="model.dropout", help="the second axis: its config key")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    axes = ["optimizer.lr", args.axis]
    second = LABELS.get(args.axis, args.axis)
    searches = {"grid": trials(args.grid, axes), "random": trials(args.random, axes)}

    print(
        f"| search | trials | distinct learning rates | distinct {second} values | best val/loss | its lr "
        f"| its {second} | its test/loss | trials within 0.02 of the best of both |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    overall = min(t["val"] for ts in searches.values() for t in ts if t["status"] == "completed")
    for name, ts in searches.items():
        done = [t for t in ts if t["status"] == "completed"]
        best = min(done, key=lambda t: t["val"])
        near = sum(t["val"] <= overall + 0.02 for t in done)
        print(
            f"| {name} | {len(ts)} | {len({t['optimizer.lr'] for t in ts})} | {len({t[args.axis] for t in ts})} "
            f"| {fmt(best['val'])} | {fmt(best['optimizer.lr'])} | {fmt(best[args.axis])} | {fmt(best['test'])} "
            f"| {near} |"
        )
    print()
    for name, ts in searches.items():
        print(f"**{name}** (by learning rate):\n")
        print(f"| job | lr | {second} | best val/loss | test/loss | status |")
        print("|---|---|---|---|---|---|")
        for t in sorted(ts, key=lambda t: (t["optimizer.lr"], t[args.axis])):
            print(
                f"| {t['job']} | {fmt(t['optimizer.lr'])} | {fmt(t[args.axis])} | {fmt(t['val'])} "
                f"| {fmt(t['test'])} | {t['status']} |"
            )
        print()

    fig, panels = plt.subplots(1, 2, figsize=(11, 4.8), sharey=True)
    style = {"grid": ("s", "tab:blue"), "random": ("o", "tab:orange")}
    for ax, key in zip(panels, axes):
        for name, ts in searches.items():
            marker, colour = style[name]
            done = [t for t in ts if t["status"] == "completed" and math.isfinite(t["val"])]
            ax.scatter(
                [t[key] for t in done],
                [t["val"] for t in done],
                marker=marker,
                color=colour,
                alpha=0.75,
                label=f"{name} ({len({t[key] for t in ts})} distinct values)",
            )
            # the values tried, as a rug under the points
            for t in ts:
                ax.axvline(t[key], ymin=0, ymax=0.04 if name == "grid" else 0.02, color=colour, lw=1.5)
        if key in LOG_SCALE:
            ax.set_xscale("log")
        ax.set_xlabel(LABELS.get(key, key))
        ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncol=2, frameon=False, fontsize=9)
    panels[0].set_ylabel("best val/loss (nats/char)")
    fig.suptitle("names MLP, 3 epochs per trial: grid vs random search, 16 trials each over the same box")
    fig.tight_layout()
    save_figure(fig, args.out / "grid_vs_random.png")


if __name__ == "__main__":
    main()
