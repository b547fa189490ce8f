"""What every task shares: optimizer with decoupled weight decay, per-step LR schedule completed with the
run's length, the label-smoothing switch, and the two hooks through which a task hands the run its files
(``artifacts``) and extra record fields (``record_fields``). Tasks write no files: the run layer does."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl
import torch
from torch import nn
from torchmetrics import MeanMetric

from sweeplab.errors import ConfigError
from sweeplab.tasks import schedules

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger("sweeplab")


def decayed_parameters(net: nn.Module) -> list[nn.Parameter]:
    """The trainable weight matrices and conv kernels: what weight decay and the regularizer penalties act
    on (biases, norms and other 1-d parameters are left alone)."""
    return [p for p in net.parameters() if p.requires_grad and p.ndim >= 2]


def param_groups(net: nn.Module, weight_decay: float):
    """Decay weight matrices and conv kernels only; biases, norms and 1-d parameters are left alone."""
    decay = decayed_parameters(net)
    chosen = {id(p) for p in decay}
    no_decay = [p for p in net.parameters() if p.requires_grad and id(p) not in chosen]
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


class WeightedMean(MeanMetric):
    """MeanMetric weighted by counts (tokens, images), without a host sync: torchmetrics' own update
    replaces the weights by ones when nan_strategy="disable", which made every split's loss a mean over
    batches. Its states are sums, so ranks reduce exactly."""

    def update(self, value: torch.Tensor, weight: torch.Tensor) -> None:
        self.mean_value += value * weight
        self.weight += weight


def run_length(trainer: pl.Trainer) -> tuple[int, int]:
    """(optimizer steps in the whole run, optimizer steps per epoch), as Lightning will run them."""
    total = trainer.estimated_stepping_batches  # sets up the train loader: num_training_batches is then known
    batches = trainer.num_training_batches
    if not math.isfinite(total) or not math.isfinite(batches):
        raise ConfigError("the training data has no length: set trainer.max_steps for the LR schedule")
    return max(int(total), 1), max(math.ceil(batches / trainer.accumulate_grad_batches), 1)


def shortened_for_debugging(trainer: pl.Trainer) -> bool:
    """Whether a debug option cut the run short (fast_dev_run, overfit_batches, limit_train_batches)."""
    limit = trainer.limit_train_batches
    return bool(trainer.fast_dev_run) or trainer.overfit_batches > 0 or isinstance(limit, int) or limit < 1.0


class Task(pl.LightningModule):
    """Base LightningModule: any network plus partial optimizer/scheduler from the config.

    ``optimizer`` and ``scheduler`` are partials (``None`` for none: count-based models, evaluation);
    ``loss`` is the loss group (``label_smoothing``, ``smoothing_start_epoch``); ``meta`` is an opaque dict
    saved as ``checkpoint["sweeplab"]``, everything needed to rebuild the run from the checkpoint alone.
    """

    def __init__(
        self, *, net: nn.Module, optimizer: Callable | None, scheduler: Callable | None, loss: dict, meta: dict
    ):
        super().__init__()
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.label_smoothing = float(loss["label_smoothing"])
        self.smoothing_start_epoch = int(loss["smoothing_start_epoch"])
        self.meta = meta
        # (gradient_clip_val, gradient_clip_algorithm) for a task that steps its optimizer itself (truncated
        # BPTT): Lightning clips only under automatic optimisation, so the run hands the trainer's values here.
        self.manual_clip: tuple[float | None, str | None] = (None, None)

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
        total, per_epoch = run_length(self.trainer)
        if shortened_for_debugging(self.trainer):
            log.info("debug run of %d optimizer steps: a longer warmup is cut to the run", total)
        else:
            schedules.check_warmup(self.scheduler_factory, total, per_epoch)
        scheduler = schedules.complete(self.scheduler_factory, optimizer, total, per_epoch)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_before_optimizer_step(self, optimizer) -> None:
        # After the callbacks' hooks (the regularizer's gradient), as Lightning's own clipping would be.
        value, algorithm = self.manual_clip
        if value and not self.automatic_optimization:
            self.clip_gradients(optimizer, gradient_clip_val=value, gradient_clip_algorithm=algorithm)

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

    def artifacts(self, datamodule) -> dict[str, str | Figure]:
        """Files for the run dir after testing, by file name: text (samples.txt) or a matplotlib Figure
        (roc.png). The run layer writes them."""
        return {}

    def record_fields(self) -> dict:
        """Extra fields for metrics.json (e.g. the classifier's confusion matrix)."""
        return {}
