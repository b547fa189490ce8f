"""Pieces the networks share: activations by name, weight initialisation schemes, DropConnect (weight dropout)
and stochastic depth (drop path).

    DropConnect (Wan et al., 2013; AWD-LSTM's WeightDrop, Merity et al., 2017): W' = W ⊙ m / (1 - p),
        m ~ Bernoulli(1 - p) elementwise, one mask per forward pass (so a recurrent weight keeps its mask over
        every timestep of the sequence), W' = W in eval mode.
    Stochastic depth (Huang et al., 2016): a residual branch is skipped for a whole sample with probability p
        in training, x + f(x) · b / (1 - p) with b ~ Bernoulli(1 - p); always kept in eval mode.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from sweeplab.config.schema import INITS

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU}
OUTPUT_SCALE = 0.01  # the scaled init's output layer: logits near 0, so the first loss is about log(classes)


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"model.activation={name!r}: choose one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def activation_fn(name: str):
    """The functional form (for cells written out by hand)."""
    activation(name)  # the same error for an unknown name
    return {"tanh": torch.tanh, "relu": F.relu, "gelu": F.gelu}[name]


def gain(name: str) -> float:
    """torch's recommended gain for the activation (GELU is ReLU-like: it gets ReLU's sqrt(2))."""
    return nn.init.calculate_gain("relu" if name == "gelu" else name)


NOT_INITIALISED = (nn.Embedding, nn.LayerNorm, nn.BatchNorm1d)


def weight_matrices(module: nn.Module) -> list[nn.Parameter]:
    """Every matrix or kernel the init schemes set: Linear, Conv and recurrent weights (``weight_ih_l0``,
    ``x2g.weight``, ...), each once; not embeddings (nor an output layer tied to one), norms or biases."""
    skip = {id(p) for m in module.modules() if isinstance(m, NOT_INITIALISED) for p in m.parameters()}
    found: dict[int, nn.Parameter] = {}
    for mod in module.modules():
        params = list(mod.named_parameters(recurse=False))
        if parametrize.is_parametrized(mod):  # DropConnect: the weight itself is the parametrization's original
            params += [(name, mod.parametrizations[name].original) for name in mod.parametrizations]
        for pname, p in params:
            if p.ndim >= 2 and pname.startswith("weight") and id(p) not in skip:
                found.setdefault(id(p), p)
    return list(found.values())


@torch.no_grad()
def init_weights(net: nn.Module, scheme: str, nonlinearity: str, output: nn.Module | None = None) -> None:
    """Re-initialise ``net``'s weight matrices (biases to zero) by ``scheme``:

    - ``default``: leave torch's own initialisation (Linear: U(±1/√fan_in), recurrent: U(±1/√hidden)).
    - ``kaiming``: N(0, gain²/fan_in) (He et al., 2015), gain of ``nonlinearity``.
    - ``xavier``: U(±gain·√(6/(fan_in + fan_out))) (Glorot & Bengio, 2010).
    - ``scaled``: makemore's (Karpathy, "Activations & Gradients"): the hidden layers as ``kaiming`` (for
      tanh: (5/3)/√fan_in, so the units do not saturate), and the ``output`` layer's weights × 0.01 with zero
      bias, so the network starts out predicting nearly uniform probabilities (first loss ≈ log classes).

    The output layer gets gain 1 (it is linear) under kaiming and xavier.
    """
    if scheme not in INITS:
        raise ValueError(f"model.init={scheme!r}: choose one of {', '.join(INITS)}")
    if scheme == "default":
        return
    out_params = {id(p) for p in output.parameters()} if output is not None else set()
    for w in weight_matrices(net):
        g = 1.0 if id(w) in out_params else gain(nonlinearity)
        if scheme == "xavier":
            nn.init.xavier_uniform_(w, gain=g)
        else:
            fan_in = w[0].numel()  # in_features × kernel size
            nn.init.normal_(w, 0.0, g / fan_in**0.5)
            if scheme == "scaled" and id(w) in out_params:
                w.mul_(OUTPUT_SCALE)
    for mod in net.modules():
        if isinstance(mod, NOT_INITIALISED):
            continue
        for pname, p in mod.named_parameters(recurse=False):
            if pname.startswith("bias"):
                p.zero_()


# ---------------------------------------------------------------- DropConnect
class WeightDropout(nn.Module):
    """A parametrization: the weight with each entry dropped with probability ``p`` (training only)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return F.dropout(w, self.p, self.training)


def drop_connect(module: nn.Module, names: Iterable[str], p: float) -> None:
    """DropConnect on ``module``'s weights ``names`` (a no-op for p = 0). torch.nn.utils.parametrize computes
    the dropped weight each time the attribute is read: nn.RNN/LSTM/GRU read it once per forward pass, and the
    cells written out here read it once before their time loop, so a sequence shares one mask."""
    if not p:
        return
    for name in names:
        parametrize.register_parametrization(module, name, WeightDropout(p))


# ---------------------------------------------------------------- stochastic depth
class DropPath(nn.Module):
    """Skip a residual branch for whole samples: ``x + DropPath(p)(f(x))``."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not self.p:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


def depth_rates(p: float, n: int) -> list[float]:
    """Per-block drop rates rising linearly from 0 to ``p`` (the first block is always kept; Huang et al.'s
    linear decay rule, as in DeiT)."""
    return [p * i / max(n - 1, 1) for i in range(n)]
