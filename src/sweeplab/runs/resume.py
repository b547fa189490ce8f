"""Resuming a run in its own dir: the checkpoint restores weights, optimizer, loops and callbacks; this
module makes the run's *records* continue too (metrics.csv, the validation history in metrics.json).

Lightning's CSVLogger deletes an existing metrics.csv when it starts ("Previous log files in this
directory will be deleted"), and RunHistory starts empty, so a resumed run would report only the epochs
after the restart. Here the old rows up to the checkpoint stay, and the history travels in the checkpoint.
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter

from sweeplab.io import write_text

log = logging.getLogger("sweeplab")


class _ContinuedWriter(ExperimentWriter):
    """Appends to an existing metrics.csv (its header included) instead of deleting it."""

    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as f:
                self.metrics_keys = list(csv.DictReader(f).fieldnames or [])


def continue_csv_logs(loggers: list) -> None:
    """Make the CSV logger of a resumed run append to the run's metrics.csv."""
    for lg in loggers:
        if isinstance(lg, CSVLogger):
            lg._experiment = _ContinuedWriter(log_dir=lg.log_dir)


def truncate_csv(path: Path, step: int) -> int:
    """Drop the rows logged at or after ``step`` (after the checkpoint we resume from: they are logged
    again); returns the number of rows kept."""
    path = Path(path)
    if not path.is_file():
        return 0
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames or [], list(reader)
    kept = [r for r in rows if not r.get("step") or float(r["step"]) < step]
    if len(kept) != len(rows):
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        w.writerows(kept)
        write_text(path, buf.getvalue())
    return len(kept)


class ResumeState(pl.Callback):
    """Keeps a resumed run's records whole.

    - The validation history (RunHistory.history: best/final/objective in metrics.json) is saved in every
      checkpoint and restored from it.
    - The loggers are flushed whenever a checkpoint is written and at each epoch start, so after a kill
      metrics.csv holds every row up to the last checkpoint (Lightning flushes every 100 steps otherwise).
    - On resume, metrics.csv rows logged after the checkpoint are dropped before training goes on.
    """

    def __init__(self, history, metrics_csv: Path | None = None):
        self.history = history
        self.metrics_csv = metrics_csv  # set when resuming: the file to continue

    def state_dict(self) -> dict:
        return {"history": list(self.history.history)}

    def load_state_dict(self, state_dict: dict) -> None:
        # Only into an empty history: trainer.test(ckpt_path=best) after fit loads callback states again.
        if not self.history.history:
            self.history.history.extend(state_dict.get("history", []))

    def on_train_start(self, trainer, pl_module) -> None:
        if self.metrics_csv is not None and trainer.global_step > 0:
            kept = truncate_csv(self.metrics_csv, trainer.global_step)
            log.info(
                "resumed at epoch %d, step %d; metrics.csv continues after %d earlier rows",
                trainer.current_epoch,
                trainer.global_step,
                kept,
            )

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        _flush(trainer)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        _flush(trainer)


def _flush(trainer) -> None:
    for lg in trainer.loggers:
        lg.save()
