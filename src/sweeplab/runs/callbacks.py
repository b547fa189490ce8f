"""Lightning callbacks every run gets: divergence guard, per-epoch history and log line."""

from __future__ import annotations

import logging
import math
import time

import pytorch_lightning as pl
import torch

log = logging.getLogger("sweeplab")


class Diverged(RuntimeError):
    """The training loss became NaN/inf, or stayed far above where it started: status 'diverged'."""


class RunHistory(pl.Callback):
    """Keeps every validation's metrics (for best/final in metrics.json), logs one line per validation, and
    stops a run that diverges: a non-finite loss, or a training loss above ``factor`` × max(the first logged
    loss, log(classes)) for ``patience`` checks in a row (SGD at lr=1e6 on names reaches losses of 1e6–1e9
    without ever being NaN). A chance-level model starts near log(classes), so the bound sits well above
    anything a run that is learning (or merely stuck) shows."""

    def __init__(
        self,
        *,
        monitor: str,
        check_every: int,
        classes: int | None,
        factor: float,
        patience: int,
        initial_tolerance: float,
    ):
        self.monitor, self.check_every = monitor, max(int(check_every), 1)
        self.floor = math.log(classes) if classes and classes > 1 else 0.0
        self.classes, self.initial_tolerance = classes, float(initial_tolerance)
        self.initial: dict | None = None  # the first training loss against log(classes), for metrics.json
        self._first_seen = False
        self.factor, self.patience = float(factor), int(patience)
        self.bound: float | None = None
        self._above = 0
        self.history: list[dict] = []
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if not self._first_seen:
            self._first_seen = True
            self._check_initial(trainer, pl_module, outputs)
        # One host sync every check_every steps, not every step: a NaN loss poisons the weights, so it
        # is still NaN at the next check, and a blown-up loss stays up.
        if trainer.global_step % self.check_every or not isinstance(outputs, dict) or "loss" not in outputs:
            return
        loss = outputs["loss"]
        if not isinstance(loss, torch.Tensor):
            return
        value = float(loss)
        step = trainer.global_step
        if not math.isfinite(value):
            raise Diverged(f"training loss is {value} at step {step}")
        if self.bound is None:
            self.bound = self.factor * max(value, self.floor)
            return
        self._above = self._above + 1 if value > self.bound else 0
        if self._above >= self.patience:
            raise Diverged(
                f"training loss {value:.4g} at step {step} has stayed above {self.bound:.4g} "
                f"({self.factor:g} x max(first loss, log classes)) for {self.patience} checks"
            )

    def _check_initial(self, trainer, pl_module, outputs) -> None:
        """The command center's first check: a network that starts out guessing uniformly has loss log(classes);
        far from it, the initialisation is too confident (or the labels are off). Only on a fresh run's first
        step (a resumed run starts elsewhere)."""
        loss = outputs.get("loss") if isinstance(outputs, dict) else None
        if not self.floor or not isinstance(loss, torch.Tensor) or trainer.global_step > 1:
            return
        value = float(loss) * (trainer.accumulate_grad_batches if pl_module.automatic_optimization else 1)
        if not math.isfinite(value):
            return  # the divergence check below reports it
        off = abs(value - self.floor) / self.floor
        self.initial = {
            "loss": value,
            "expected": self.floor,
            "classes": self.classes,
            "far": off > self.initial_tolerance,
        }
        if self.initial["far"]:
            log.warning(
                "first training loss %.3f is %.0f%% away from log(%d) = %.3f, the loss of a uniform guess "
                "(initial_loss.tolerance=%g): the network starts out %s; check the initialisation (model.init=scaled "
                "shrinks the output layer) and the labels",
                value,
                100 * off,
                self.classes,
                self.floor,
                self.initial_tolerance,
                "confidently wrong" if value > self.floor else "surprisingly right",
            )

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

    def best(self, mode: str) -> dict | None:
        rows = [r for r in self.history if math.isfinite(r.get(self.monitor, math.nan))]
        if not rows:
            return None
        pick = min if mode == "min" else max
        return pick(rows, key=lambda r: r[self.monitor])
