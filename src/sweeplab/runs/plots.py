"""curves.png: train/val loss and LR against step, read back from the run's metrics.csv."""

from __future__ import annotations

import contextlib
import csv
import math
from pathlib import Path

from sweeplab.io import save_figure


def read_csv_series(path: Path) -> dict[str, list[tuple[int, float]]]:
    """metrics.csv -> {column: [(step, value), ...]} for every numeric column."""
    series: dict[str, list[tuple[int, float]]] = {}
    if not Path(path).is_file():
        return series
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            try:
                step = int(float(row.get("step") or 0))
            except ValueError:
                continue
            for key, value in row.items():
                if key in ("step", "epoch") or value in (None, ""):
                    continue
                with contextlib.suppress(ValueError):
                    series.setdefault(key, []).append((step, float(value)))
    return series


def plot_curves(metrics_csv: Path, out: Path, title: str = "") -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = read_csv_series(metrics_csv)
    losses = [k for k in ("train/loss", "val/loss") if series.get(k)]
    lrs = [k for k in series if k.startswith("lr")]
    if not losses:
        return False
    fig, axes = plt.subplots(1, 2 if lrs else 1, figsize=(11 if lrs else 6, 4), squeeze=False)
    ax = axes[0, 0]
    for key in losses:
        steps, values = zip(*[(s, v) for s, v in series[key] if math.isfinite(v)] or [(0, math.nan)])
        ax.plot(steps, values, label=key, marker="o" if key.startswith("val") and len(steps) < 30 else None)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(title or "loss")
    ax.grid(alpha=0.3)
    ax.legend()
    if lrs:
        ax = axes[0, 1]
        for key in lrs:
            steps, values = zip(*series[key])
            ax.plot(steps, values, label=key)
        ax.set_xlabel("step")
        ax.set_ylabel("learning rate")
        ax.grid(alpha=0.3)
        ax.legend()
    save_figure(fig, out)
    plt.close(fig)
    return True
