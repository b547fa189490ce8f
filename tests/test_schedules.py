import math

import pytest
import torch

from sweeplab.tasks import schedules


def lrs(factory, total=100, **kw):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = factory(opt, total_steps=total, steps_per_epoch=10, **kw)
    out = []
    for _ in range(total):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize("name", ["constant", "step", "cosine", "linear", "inverse_sqrt"])
def test_warmup_rises_linearly_to_peak(name):
    lr = lrs(getattr(schedules, name), warmup_steps=10)
    assert lr[0] == pytest.approx(0.1)
    assert all(a < b for a, b in zip(lr[:9], lr[1:10]))
    assert lr[9] == pytest.approx(1.0)


def test_warmup_epochs_count_in_steps_per_epoch():
    lr = lrs(schedules.constant, warmup_epochs=2.0)  # 10 steps per epoch
    assert lr[19] == pytest.approx(1.0) and lr[9] == pytest.approx(0.5)


def test_shapes_after_warmup():
    assert set(lrs(schedules.constant)) == {1.0}
    cos = lrs(schedules.cosine, min_lr_ratio=0.1)
    assert cos[0] == pytest.approx(1.0) and cos[-1] == pytest.approx(0.1, abs=1e-3)
    assert cos[50] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    lin = lrs(schedules.linear)
    assert lin[50] == pytest.approx(0.5) and lin[-1] == pytest.approx(0.01)
    step = lrs(schedules.step, milestones=[0.5, 0.75], gamma=0.1)
    assert step[49] == 1.0 and step[50] == pytest.approx(0.1) and step[80] == pytest.approx(0.01)
    inv = lrs(schedules.inverse_sqrt, warmup_steps=25)
    assert inv[24] == pytest.approx(1.0) and inv[99] == pytest.approx(math.sqrt(25 / 100), rel=0.02)
