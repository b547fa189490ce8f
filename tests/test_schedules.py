import functools
import math

import pytest
import torch

from conftest import build
from sweeplab.errors import ConfigError
from sweeplab.tasks import schedules


def shipped(name: str, **kw):
    """conf/scheduler/<name>.yaml's partial, with ``kw`` as overrides (the YAML holds the other values)."""
    return build("scheduler", f"scheduler={name}", *(f"scheduler.{k}={v}" for k, v in kw.items()))


def lrs(name, total=100, **kw):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = shipped(name, **kw)(opt, total_steps=total, steps_per_epoch=10)
    out = []
    for _ in range(total):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize("name", ["constant", "step", "cosine", "linear", "inverse_sqrt"])
def test_warmup_rises_linearly_to_peak(name):
    lr = lrs(name, warmup_steps=10, warmup_epochs=0)
    assert lr[0] == pytest.approx(0.1)
    assert all(a < b for a, b in zip(lr[:9], lr[1:10]))
    assert lr[9] == pytest.approx(1.0)


def test_warmup_epochs_count_in_steps_per_epoch():
    lr = lrs("constant", warmup_steps=0, warmup_epochs=2.0)  # 10 steps per epoch
    assert lr[19] == pytest.approx(1.0) and lr[9] == pytest.approx(0.5)


def test_shapes_after_warmup():
    assert set(lrs("constant", warmup_steps=0)) == {1.0}
    cos = lrs("cosine", warmup_steps=0, min_lr_ratio=0.1)
    assert cos[0] == pytest.approx(1.0) and cos[-1] == pytest.approx(0.1, abs=1e-3)
    assert cos[50] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    lin = lrs("linear", warmup_steps=0, min_lr_ratio=0)
    assert lin[50] == pytest.approx(0.5) and lin[-1] == pytest.approx(0.01)
    step = lrs("step", warmup_steps=0, milestones="[0.5,0.75]", gamma=0.1)
    assert step[49] == 1.0 and step[50] == pytest.approx(0.1) and step[80] == pytest.approx(0.01)
    inv = lrs("inverse_sqrt", warmup_steps=25)
    assert inv[24] == pytest.approx(1.0) and inv[99] == pytest.approx(math.sqrt(25 / 100), rel=0.02)


# ------------------------------------------------------------------ completion from the run's length
def completed(factory, total=40, per_epoch=8):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    return schedules.complete(factory, opt, total, per_epoch)


def test_torch_schedulers_get_the_facts_their_signature_names():
    from torch.optim import lr_scheduler

    assert completed(functools.partial(lr_scheduler.OneCycleLR, max_lr=0.1)).total_steps == 40
    assert completed(functools.partial(lr_scheduler.CosineAnnealingLR, eta_min=0.01)).T_max == 40
    assert completed(functools.partial(lr_scheduler.CosineAnnealingLR, T_max=7)).T_max == 7  # the YAML's value wins
    step = completed(functools.partial(lr_scheduler.StepLR, step_size=3))  # takes none of them: gets none
    assert step.step_size == 3
    ours = completed(
        shipped("linear", warmup_steps=0, warmup_epochs=1.0, min_lr_ratio=0)
    )  # ours take total_steps and per-epoch
    assert ours.lr_lambdas[0](7) == pytest.approx(1.0) and ours.lr_lambdas[0](39) == pytest.approx(1 / 32)


def test_warmup_length_and_check():
    assert schedules.warmup_length(10, warmup_steps=5, warmup_epochs=1.5) == 20
    schedules.check_warmup(shipped("cosine", warmup_steps=39), 40, 8)  # shorter than the run
    schedules.check_warmup(functools.partial(torch.optim.lr_scheduler.OneCycleLR, max_lr=1.0), 1, 1)  # no warmup
    with pytest.raises(ConfigError) as err:
        schedules.check_warmup(shipped("cosine", warmup_steps=40), 40, 8)
    assert str(err.value) == (
        "scheduler.warmup_steps=40 is as long as the whole run: 40 optimizer steps (8 per epoch); "
        "the warmup must be < 40 steps (shorten it or train longer)"
    )
    with pytest.raises(ConfigError, match=r"^scheduler.warmup_epochs=6.0 \(48 steps\) is as long"):
        schedules.check_warmup(shipped("constant", warmup_steps=0, warmup_epochs=6.0), 40, 8)
