"""Continuous-time RNN (Beer, 1995; Funahashi & Nakamura, 1993), Euler-discretised.

    τ du/dt = -u + W_h φ(u) + W_x x + b
    u_t = u_{t-1} + (Δt/τ) (-u_{t-1} + W_h φ(u_{t-1}) + W_x x_t + b),   Δt = 1 (one token per step)
    h_t = φ(u_t)                                                      what the layer gives
The time constant τ = ``model.time_constant`` (>= 1, so the Euler step is stable) sets how slowly the state
forgets: each step moves u a fraction 1/τ of the way to its target, a leaky integrator. At τ = 1 the leak
vanishes and the layer is an Elman network written in pre-activation form: h_t = φ(W_x x_t + W_h h_{t-1} + b).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sweeplab.models.layers import activation_fn


class CTRNNLayer(nn.Module):
    recurrent = "h2h"  # the hidden-to-hidden weights (DropConnect's target)

    def __init__(self, input_size: int, hidden_size: int, activation: str, time_constant: float):
        super().__init__()
        if time_constant < 1:
            raise ValueError(f"model.time_constant={time_constant} is out of range: it must be >= 1")
        self.hidden_size, self.alpha = hidden_size, 1.0 / time_constant
        self.act = activation_fn(activation)
        self.x2u = nn.Linear(input_size, hidden_size)  # W_x, b
        self.h2h = nn.Linear(hidden_size, hidden_size, bias=False)  # W_h

    def forward(self, x: torch.Tensor, state=None):
        """[B, T, I] -> ([B, T, H] outputs φ(u), u_T); ``state`` the membrane state u, None for zeros."""
        xu = self.x2u(x)
        u = state if state is not None else x.new_zeros(x.shape[0], self.hidden_size)
        w_h = self.h2h.weight
        out = []
        for t in range(x.shape[1]):
            u = u + self.alpha * (-u + F.linear(self.act(u), w_h) + xu[:, t])
            out.append(self.act(u))
        return torch.stack(out, dim=1), u
