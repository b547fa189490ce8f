"""Several processes for one run (``trainer=ddp``, ``trainer=ddp_cpu``): only rank 0 owns the run dir.

Lightning's ``ddp`` strategy starts ranks 1..N-1 by running the same command again (with LOCAL_RANK set and
``hydra.run.dir`` pointing at rank 0's run dir); srun/torchrun start every rank themselves (RANK,
SLURM_PROCID). Rank 0 is the run: it validates, locks the dir, keeps metrics.json and writes the files.
Every other rank joins the same training and testing (the collectives need it) and writes nothing: no lock,
no record, no .hydra/, no plots; Lightning's loggers and checkpoints already write on rank 0 only.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from types import SimpleNamespace

from omegaconf import DictConfig

log = logging.getLogger("sweeplab")
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "SLURM_PROCID")  # the launchers' own, as Lightning reads them


def worker_rank() -> int:
    """This process's rank when a distributed launcher started it as one of several ranks, else 0."""
    for name in RANK_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 0


def run_worker(cfg: DictConfig, ctx) -> float:
    """Rank > 0: the same fit and test as rank 0, on a record that is never written. Returns nothing to
    rank 0 (it has every metric itself); the objective is nan."""
    from sweeplab.runs.fit import build_datamodule, fit_and_test
    from sweeplab.runs.run import LAST_CKPT

    logging.getLogger("sweeplab").setLevel(logging.WARNING)  # rank 0 logs the run once
    ckpt = None
    if cfg.ckpt_path:  # resuming: every rank restores the same checkpoint rank 0 resolved
        path = Path(ctx.run_dir) / LAST_CKPT if cfg.ckpt_path == "last" else Path(cfg.ckpt_path).expanduser()
        ckpt = str(path / LAST_CKPT if path.is_dir() else path)
    fit_and_test(cfg, ctx, build_datamodule(cfg), SimpleNamespace(current={}, data={}), ckpt)
    return float("nan")
