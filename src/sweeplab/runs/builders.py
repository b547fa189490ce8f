"""Callbacks and loggers from the config: every non-null entry of ``cfg.callbacks`` / ``cfg.logger`` with a
``_target_`` is instantiated (the YAMLs in conf/callbacks and conf/logger, one per item)."""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

# Lightning advertises its cloud products at every Trainer start; keep the run logs about the run.
logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(
    lambda record: not str(record.msg).startswith("💡 Tip")
)


def instantiate_items(node: DictConfig | None) -> list:
    """``{name: {_target_: ..., ...} | null}`` → the objects, in the config's order; null entries are skipped."""
    if not node:
        return []
    out = []
    for item in node.values():
        if isinstance(item, DictConfig) and "_target_" in item:
            obj = instantiate(item, _convert_="all")
            if obj is not None:
                out.append(obj)
    return out


def progress_bar(style: str = "auto"):
    """A Lightning progress bar, or None: ``auto`` is rich on a terminal and none in a log file."""
    from pytorch_lightning import callbacks as plc

    if style == "auto":
        style = "rich" if sys.stderr.isatty() else "none"
    return {"rich": plc.RichProgressBar, "tqdm": plc.TQDMProgressBar}.get(style, lambda: None)()


def build_callbacks(cfg: DictConfig, trainable: bool = True) -> list:
    """The configured callbacks; early stopping and LR logging only where there is something to optimise."""
    from pytorch_lightning import callbacks as plc

    callbacks = instantiate_items(cfg.get("callbacks"))
    if not trainable:
        callbacks = [c for c in callbacks if not isinstance(c, (plc.EarlyStopping, plc.LearningRateMonitor))]
    return callbacks


def build_loggers(cfg: DictConfig, out: Path) -> list:
    """The configured loggers, plus the CSV logger writing ``out/metrics.csv`` when none of them does: that
    file is the run's history, which summaries, curves and resumes read."""
    from pytorch_lightning.loggers import CSVLogger

    # The run dir already holds Hydra's files; CSVLogger's "will be deleted" warning is wrong for it.
    warnings.filterwarnings("ignore", message=r".*exists and is not empty.*")
    loggers = instantiate_items(cfg.get("logger"))
    if not any(isinstance(lg, CSVLogger) and Path(lg.log_dir).resolve() == Path(out).resolve() for lg in loggers):
        loggers.insert(0, CSVLogger(save_dir=str(out), name="", version=""))
    return loggers
