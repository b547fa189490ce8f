"""Callbacks and loggers from the config (Lightning's own classes; sweeplab adds RunHistory)."""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

from omegaconf import DictConfig
from pytorch_lightning import callbacks as plc
from pytorch_lightning.loggers import CSVLogger

from sweeplab.runs.callbacks import RunHistory

# Lightning advertises its cloud products at every Trainer start; keep the run logs about the run.
logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(
    lambda record: not str(record.msg).startswith("💡 Tip")
)


def build_callbacks(cfg: DictConfig, out: Path, trainable: bool = True):
    cb = cfg.callbacks
    history = RunHistory(cfg.monitor, check_every=cfg.trainer.log_every_n_steps)
    callbacks = [history]
    callbacks.append(
        plc.ModelCheckpoint(
            dirpath=out / "checkpoints",
            filename="best-epoch{epoch}-step{step}",
            auto_insert_metric_name=False,
            monitor=cfg.monitor,
            mode=cfg.monitor_mode,
            save_top_k=cb.checkpoint.save_top_k,
            save_last=cb.checkpoint.save_last,
        )
    )
    if cb.early_stopping.enabled and trainable:
        callbacks.append(
            plc.EarlyStopping(
                monitor=cfg.monitor,
                mode=cfg.monitor_mode,
                patience=cb.early_stopping.patience,
                min_delta=cb.early_stopping.min_delta,
                check_finite=False,
            )
        )
    if trainable:
        callbacks.append(plc.LearningRateMonitor(logging_interval="step"))
    bar = cb.progress_bar
    if bar == "auto":
        bar = "rich" if sys.stderr.isatty() else "none"
    if bar == "rich":
        callbacks.append(plc.RichProgressBar())
    elif bar == "tqdm":
        callbacks.append(plc.TQDMProgressBar())
    return callbacks, history


def build_loggers(cfg: DictConfig, out: Path):
    # The run dir already holds Hydra's files; CSVLogger's "will be deleted" warning is wrong for it.
    warnings.filterwarnings("ignore", message=r".*exists and is not empty.*")
    loggers = [CSVLogger(save_dir=str(out), name="", version="")]
    if cfg.logger.tensorboard:
        from pytorch_lightning.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(save_dir=str(out), name="tensorboard", version="", default_hp_metric=False))
    return loggers
