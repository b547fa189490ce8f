"""schedules.png: the LR (left) and the validation loss (right) of every job of the schedules study against the
step, read from each run's metrics.csv.   python plot.py <study dir> <out.png>"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from sweeplab.io import save_figure
from sweeplab.runs.plots import read_csv_series
from sweeplab.sweeps.jobs import find_run_dirs, parse_overrides


def label(run: Path) -> str:
    lines = (run / ".hydra" / "overrides.yaml").read_text().splitlines()
    o = parse_overrides([ln.removeprefix("- ").strip() for ln in lines if ln.startswith("- ")])
    warm = o.get("scheduler.warmup_steps")
    return f"{o.get('scheduler')}" + (f", warmup {warm}" if warm is not None else "")


def main(root: str, out: str) -> None:
    fig, (lr_ax, loss_ax) = plt.subplots(1, 2, figsize=(13, 4.8))
    runs = sorted(find_run_dirs([root]), key=label)
    cmap = plt.get_cmap("tab10")
    names = list(dict.fromkeys(label(r).split(",")[0] for r in runs))
    for run in runs:
        series = read_csv_series(run / "metrics.csv")
        name = label(run)
        style = {"color": cmap(names.index(name.split(",")[0])), "ls": "--" if "warmup 0" in name else "-"}
        lr = next((v for k, v in series.items() if k.startswith("lr-") and k.endswith("pg1")), [])
        if lr:
            lr_ax.plot(*zip(*lr), label=name, **style)
        if series.get("val/loss"):
            loss_ax.plot(*zip(*series["val/loss"]), marker="o", markersize=3, label=name, **style)
    lr_ax.set(xlabel="step", ylabel="learning rate", title="the schedules (dashed: no warmup)")
    loss_ax.set(xlabel="step", ylabel="val/loss (nats/char)", title="validation loss")
    for ax in (lr_ax, loss_ax):
        ax.grid(alpha=0.3)
    loss_ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    save_figure(fig, Path(out))
    plt.close(fig)


if __name__ == "__main__":
    main(*sys.argv[1:3])
