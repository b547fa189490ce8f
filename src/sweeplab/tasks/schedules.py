"""LR schedules: linear warmup, then constant / step / cosine / linear / inverse-sqrt decay.

Each factory is instantiated from ``conf/scheduler/*.yaml`` as a partial and completed by the task with
the optimizer and the run's length; the returned LambdaLR is stepped once per optimizer step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def _with_warmup(
    optimizer: Optimizer,
    total_steps: int,
    steps_per_epoch: float,
    warmup_steps: int,
    warmup_epochs: float,
    decay: Callable[[float], float],
) -> LambdaLR:
    """``decay(progress)`` maps progress through the post-warmup steps, in [0, 1], to an LR factor."""
    warmup = int(warmup_steps + round(warmup_epochs * steps_per_epoch))
    warmup = min(warmup, max(total_steps - 1, 0))
    span = max(total_steps - warmup, 1)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return decay(min((step - warmup) / span, 1.0))

    return LambdaLR(optimizer, factor)


def constant(optimizer, total_steps, steps_per_epoch, warmup_steps=0, warmup_epochs=0.0):
    return _with_warmup(optimizer, total_steps, steps_per_epoch, warmup_steps, warmup_epochs, lambda p: 1.0)


def step(
    optimizer,
    total_steps,
    steps_per_epoch,
    warmup_steps=0,
    warmup_epochs=0.0,
    milestones: Sequence[float] = (0.5, 0.75),
    gamma=0.1,
):
    marks = sorted(milestones)
    return _with_warmup(
        optimizer,
        total_steps,
        steps_per_epoch,
        warmup_steps,
        warmup_epochs,
        lambda p: gamma ** sum(p >= m for m in marks),
    )


def cosine(optimizer, total_steps, steps_per_epoch, warmup_steps=0, warmup_epochs=0.0, min_lr_ratio=0.0):
    return _with_warmup(
        optimizer,
        total_steps,
        steps_per_epoch,
        warmup_steps,
        warmup_epochs,
        lambda p: min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * p)),
    )


def linear(optimizer, total_steps, steps_per_epoch, warmup_steps=0, warmup_epochs=0.0, min_lr_ratio=0.0):
    return _with_warmup(
        optimizer, total_steps, steps_per_epoch, warmup_steps, warmup_epochs, lambda p: 1 - (1 - min_lr_ratio) * p
    )


def inverse_sqrt(optimizer, total_steps, steps_per_epoch, warmup_steps=0, warmup_epochs=0.0):
    # lr * sqrt(w / t) after warmup; with no warmup, the decay starts at step 1.
    warmup = max(int(warmup_steps + round(warmup_epochs * steps_per_epoch)), 1)
    warmup = min(warmup, max(total_steps - 1, 1))
    span = max(total_steps - warmup, 1)
    return _with_warmup(
        optimizer,
        total_steps,
        steps_per_epoch,
        warmup_steps,
        warmup_epochs,
        lambda p: math.sqrt(warmup / (warmup + p * span)),
    )
