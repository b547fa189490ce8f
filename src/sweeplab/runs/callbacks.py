"""Lightning callbacks every run gets: divergence guard, per-epoch history and log line."""

from __future__ import annotations

import logging
import math
import time

import pytorch_lightning as pl
import torch

log = logging.getLogger("sweeplab")


class Diverged(RuntimeError):
    """The loss became NaN or infinite: the run stops with status 'diverged'."""


class RunHistory(pl.Callback):
    """Keeps every validation's metrics (for best/final in metrics.json), stops on non-finite losses,
    and logs one line per validation."""

    def __init__(self, monitor: str, check_every: int = 50):
        self.monitor, self.check_every = monitor, max(int(check_every), 1)
        self.history: list[dict] = []
        self.interrupted = False
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        # One host sync every check_every steps, not every step: a NaN loss poisons the weights, so it
        # is still NaN at the next check.
        if trainer.global_step % self.check_every or not isinstance(outputs, dict) or "loss" not in outputs:
            return
        loss = outputs["loss"]
        if isinstance(loss, torch.Tensor) and not bool(torch.isfinite(loss)):
            raise Diverged(f"training loss is {float(loss)} at step {trainer.global_step}")

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        metrics = {
            k: float(v)
            for k, v in trainer.callback_metrics.items()
            if isinstance(v, (torch.Tensor, float, int)) and getattr(v, "numel", lambda: 1)() == 1
        }
        row = {"epoch": trainer.current_epoch, "step": trainer.global_step, **metrics}
        self.history.append(row)
        shown = " | ".join(
            f"{k} {v:.4g}" for k, v in metrics.items() if k.startswith(("train/", "val/")) and k != "train/epoch_loss"
        )
        lr = [g["lr"] for opt in trainer.optimizers for g in opt.param_groups][:1]
        log.info(
            "epoch %d step %d | %s%s | %.1fs",
            trainer.current_epoch,
            trainer.global_step,
            shown,
            f" | lr {lr[0]:.3g}" if lr else "",
            time.perf_counter() - self._t0,
        )
        value = metrics.get(self.monitor)
        if value is not None and not math.isfinite(value):
            raise Diverged(f"{self.monitor} is {value} at epoch {trainer.current_epoch}")

    def on_exception(self, trainer, pl_module, exception):
        self.interrupted = isinstance(exception, KeyboardInterrupt)

    def best(self, mode: str) -> dict | None:
        rows = [r for r in self.history if math.isfinite(r.get(self.monitor, math.nan))]
        if not rows:
            return None
        pick = min if mode == "min" else max
        return pick(rows, key=lambda r: r[self.monitor])
