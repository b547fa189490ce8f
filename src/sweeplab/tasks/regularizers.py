"""Weight penalties: L1, L2 and elastic net (both), the ``regularizer`` config group.

    penalty = l1 · Σ|w| + (l2 / 2) · Σ w²      over the weight matrices and kernels (tasks/base.py's
                                               ``decayed_parameters``: not biases, norms or 1-d parameters)

The penalty belongs to the training objective, which every task defines its own way; rather than each task
adding it to its loss, this callback adds the penalty's gradient (by autograd) to the data loss's right
before each optimizer step: the same update as minimising data loss + penalty, once per optimizer step
(whatever the gradient accumulation), after mixed precision's unscaling and before gradient clipping, for
every task. ``train/penalty_l1`` and ``train/penalty_l2`` are logged beside ``train/loss``, which stays the
data loss alone.

L2 here is not AdamW's weight decay (optimizer.weight_decay): with Adam the penalty's gradient l2·w goes
through the adaptive step like any gradient, so weights with large, noisy gradients are barely shrunk,
while decoupled weight decay (Loshchilov & Hutter, 2019) shrinks every weight by lr·weight_decay per step.
With plain SGD the two are the same (l2 = weight_decay). Both can be on at once.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch

from sweeplab.tasks.base import decayed_parameters


class Penalty(pl.Callback):
    def __init__(self, *, l1: float, l2: float):
        if l1 < 0 or l2 < 0:
            raise ValueError(f"regularizer coefficients must be >= 0, got l1={l1}, l2={l2}")
        self.l1, self.l2 = float(l1), float(l2)

    @property
    def active(self) -> bool:
        return bool(self.l1 or self.l2)

    def terms(self, net: torch.nn.Module) -> dict[str, torch.Tensor]:
        """The penalty's terms for ``net``'s weights, with their graph: ``{"l1": ..., "l2": ...}`` (those on)."""
        params = decayed_parameters(net)
        out = {}
        if self.l1 and params:
            out["l1"] = self.l1 * torch.stack([p.abs().sum() for p in params]).sum()
        if self.l2 and params:
            out["l2"] = 0.5 * self.l2 * torch.stack([p.pow(2).sum() for p in params]).sum()
        return out

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if not self.active:
            return
        with torch.enable_grad():
            terms = self.terms(pl_module.net)
            if not terms:
                return
            sum(terms.values()).backward()  # adds d(penalty)/dw to each weight's .grad
        # Only on the steps Lightning writes (see LanguageModelTask.training_step): a log call costs more
        # than a small model's step.
        if (trainer.global_step + 1) % trainer.log_every_n_steps == 0:
            for name, value in terms.items():
                pl_module.log(f"train/penalty_{name}", value.detach(), on_step=True, on_epoch=False)
