"""LR schedules: linear warmup, then constant / step / cosine / linear / inverse-sqrt decay, and the
completion of any scheduler partial (these or torch's own) with the run's length.

A scheduler is instantiated from ``conf/scheduler/*.yaml`` as a partial; ``complete`` adds the optimizer
and whichever of ``total_steps``, ``steps_per_epoch`` and ``T_max`` its signature takes and the YAML did not
set. Every scheduler is stepped once per optimizer step, so these are all counted in optimizer steps.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Sequence

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from sweeplab.errors import ConfigError


def warmup_length(steps_per_epoch: int, warmup_steps: int, warmup_epochs: float) -> int:
    """Warmup in optimizer steps: ``warmup_steps`` plus ``warmup_epochs`` epochs."""
    return int(warmup_steps + round(warmup_epochs * steps_per_epoch))


def _run_facts(total_steps: int, steps_per_epoch: int) -> dict:
    # T_max is CosineAnnealingLR's name for the number of steps it decays over.
    return {"total_steps": total_steps, "steps_per_epoch": steps_per_epoch, "T_max": total_steps}


def complete(factory: Callable, optimizer: Optimizer, total_steps: int, steps_per_epoch: int):
    """``factory(optimizer, **run facts)``, passing each fact only where the scheduler's signature names it
    and the config did not give it (a partial's keywords)."""
    target = factory.func if isinstance(factory, functools.partial) else factory
    params = inspect.signature(target).parameters
    given = factory.keywords if isinstance(factory, functools.partial) else {}
    facts = {k: v for k, v in _run_facts(total_steps, steps_per_epoch).items() if k in params and k not in given}
    return factory(optimizer, **facts)


def check_warmup(factory: Callable, total_steps: int, steps_per_epoch: int) -> None:
    """A warmup at least as long as the run would never reach the peak LR: say so before the first step."""
    given = factory.keywords if isinstance(factory, functools.partial) else {}
    steps, epochs = given.get("warmup_steps", 0) or 0, given.get("warmup_epochs", 0.0) or 0.0
    warmup = warmup_length(steps_per_epoch, steps, epochs)
    if warmup and warmup >= total_steps:
        parts = [f"scheduler.warmup_steps={steps}"] if steps else []
        parts += [f"scheduler.warmup_epochs={epochs} ({round(epochs * steps_per_epoch)} steps)"] if epochs else []
        what = parts[0] if len(parts) == 1 else f"{' + '.join(parts)}, a warmup of {warmup} steps,"
        raise ConfigError(
            f"{what} is as long as the whole run: {total_steps} optimizer steps ({steps_per_epoch} per epoch); "
            f"the warmup must be < {total_steps} steps (shorten it or train longer)"
        )


def _with_warmup(
    optimizer: Optimizer,
    total_steps: int,
    steps_per_epoch: int,
    warmup_steps: int,
    warmup_epochs: float,
    decay: Callable[[float], float],
) -> LambdaLR:
    """``decay(progress)`` maps progress through the post-warmup steps, in [0, 1], to an LR factor.

    The task rejects a warmup as long as the run (``check_warmup``) except in runs a debug option cut short
    (fast_dev_run, overfit_batches, limit_train_batches): there the warmup is cut to the run.
    """
    warmup = min(warmup_length(steps_per_epoch, warmup_steps, warmup_epochs), max(total_steps - 1, 0))
    span = max(total_steps - warmup, 1)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return decay(min((step - warmup) / span, 1.0))

    return LambdaLR(optimizer, factor)


def constant(optimizer, *, total_steps, steps_per_epoch, warmup_steps, warmup_epochs):
    return _with_warmup(optimizer, total_steps, steps_per_epoch, warmup_steps, warmup_epochs, lambda p: 1.0)


def step(optimizer, *, total_steps, steps_per_epoch, warmup_steps, warmup_epochs, milestones: Sequence[float], gamma):
    marks = sorted(milestones)
    return _with_warmup(
        optimizer,
        total_steps,
        steps_per_epoch,
        warmup_steps,
        warmup_epochs,
        lambda p: gamma ** sum(p >= m for m in marks),
    )


def cosine(optimizer, *, total_steps, steps_per_epoch, warmup_steps, warmup_epochs, min_lr_ratio):
    return _with_warmup(
        optimizer,
        total_steps,
        steps_per_epoch,
        warmup_steps,
        warmup_epochs,
        lambda p: min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * p)),
    )


def linear(optimizer, *, total_steps, steps_per_epoch, warmup_steps, warmup_epochs, min_lr_ratio):
    return _with_warmup(
        optimizer, total_steps, steps_per_epoch, warmup_steps, warmup_epochs, lambda p: 1 - (1 - min_lr_ratio) * p
    )


def inverse_sqrt(optimizer, *, total_steps, steps_per_epoch, warmup_steps, warmup_epochs):
    # lr * sqrt(w / t) after warmup; with no warmup, the decay starts at step 1.
    warmup = max(warmup_length(steps_per_epoch, warmup_steps, warmup_epochs), 1)
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
