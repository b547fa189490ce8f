"""What every task shares: optimizer with decoupled weight decay, per-step LR schedule, the
label-smoothing switch, and the hook through which a task leaves its own files in the run dir."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn


def param_groups(net: nn.Module, weight_decay: float):
    """Decay weight matrices and conv kernels only; biases, norms and 1-d parameters are left alone."""
    decay, no_decay = [], []
    for p in net.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


class Task(pl.LightningModule):
    """Base LightningModule: takes any network plus partial optimizer/scheduler from the config."""

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable | None = None,
        scheduler: Callable | None = None,
        loss: dict | None = None,
        meta: dict | None = None,
    ):
        super().__init__()
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        loss = dict(loss or {})
        self.label_smoothing = float(loss.get("label_smoothing", 0.0))
        self.smoothing_start_epoch = int(loss.get("smoothing_start_epoch", 0))
        # Everything needed to rebuild the run from the checkpoint alone: resolved config, vocabulary, data facts.
        self.meta = meta or {}

    @property
    def trainable(self) -> bool:
        return any(p.requires_grad for p in self.net.parameters())

    def current_label_smoothing(self) -> float:
        return self.label_smoothing if self.current_epoch >= self.smoothing_start_epoch else 0.0

    def configure_optimizers(self) -> Any:
        if not self.trainable or self.optimizer_factory is None:
            return []  # count-based models: nothing to optimise ([] rather than None, which Lightning warns about)
        wd = self.optimizer_factory.keywords.get("weight_decay", 0.0)
        optimizer = self.optimizer_factory(param_groups(self.net, wd))
        if self.scheduler_factory is None:
            return optimizer
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        epochs = self.trainer.max_epochs if self.trainer.max_epochs and self.trainer.max_epochs > 0 else 1
        per_epoch = total / epochs if self.trainer.max_steps in (-1, None) else total / max(epochs, 1)
        scheduler = self.scheduler_factory(optimizer, total_steps=total, steps_per_epoch=per_epoch)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # Validation and test run the same code on their own split: subclasses write _eval_step and
    # _eval_epoch_end once.
    def _eval_step(self, batch, split: str) -> None:
        raise NotImplementedError

    def _eval_epoch_end(self, split: str) -> None:
        raise NotImplementedError

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, "val")

    def on_validation_epoch_end(self):
        self._eval_epoch_end("val")

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, "test")

    def on_test_epoch_end(self):
        self._eval_epoch_end("test")

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["sweeplab"] = self.meta

    def write_artifacts(self, out_dir: Path, datamodule) -> dict:
        """Task-specific files after testing (samples, ROC curves...); returns extra metrics.json fields."""
        return {}

    @staticmethod
    def scalar(x: torch.Tensor | float) -> float:
        return float(x.detach().cpu()) if isinstance(x, torch.Tensor) else float(x)
