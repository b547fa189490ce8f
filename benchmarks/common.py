"""What the benchmark scripts share: the shipped config composed as ``sweeplab-train`` would, the objects a run
builds from it, and a note of the machine's state (the load average says whether a figure was taken under load)."""

from __future__ import annotations

import os
import statistics
import tempfile
from pathlib import Path


def compose(overrides: list[str], run_dir: str | Path | None = None):
    """The job config ``sweeplab-train <overrides>`` runs, its run dir a fresh temporary one by default."""
    from sweeplab.api import compose as api_compose

    run_dir = run_dir or tempfile.mkdtemp(prefix="sweeplab_bench_")
    return api_compose(overrides, run_dir=run_dir, check=False).cfg


def build(overrides: list[str], run_dir: str | Path | None = None):
    """(config, datamodule set up for fit, network) of ``overrides``, seeded as a run is."""
    import pytorch_lightning as pl
    from hydra.utils import instantiate

    cfg = compose(overrides, run_dir)
    pl.seed_everything(cfg.seed, verbose=False)
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup("fit")
    net = instantiate(cfg.model, **dm.model_kwargs())
    return cfg, dm, net


def machine() -> dict:
    """Cores and the 1-minute load average when the figure was taken (above ~0.5 on 2 cores: under load)."""
    return {"cores": os.cpu_count(), "load1": round(os.getloadavg()[0], 2)}


def spread(values: list[float], digits: int = 3) -> dict:
    """Median and min–max of repeated measurements."""
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "n": len(values),
    }
