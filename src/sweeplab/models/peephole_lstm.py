"""LSTM with peephole connections (Gers & Schmidhuber, 2000), the cell written out by hand.

    i_t = σ(W_xi x_t + W_hi h_{t-1} + w_ci ⊙ c_{t-1} + b_i)     input gate sees the old cell
    f_t = σ(W_xf x_t + W_hf h_{t-1} + w_cf ⊙ c_{t-1} + b_f)     forget gate sees the old cell
    g_t = tanh(W_xg x_t + W_hg h_{t-1} + b_g)                   candidate
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
    o_t = σ(W_xo x_t + W_ho h_{t-1} + w_co ⊙ c_t + b_o)         output gate sees the new cell
    h_t = o_t ⊙ tanh(c_t)
The peephole weights w_c· are diagonal (vectors). The input terms W_x· x_t + b· are computed for all
timesteps in one matmul; only the recurrent part loops over time. The language model around it is
models/recurrent.py (``cell: peephole_lstm``), which stacks layers of it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class PeepholeLSTMLayer(nn.Module):
    recurrent = "h2g"  # the hidden-to-hidden weights (DropConnect's target)

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.hidden_size = hidden_size
        self.x2g = nn.Linear(input_size, 4 * hidden_size)  # W_x[i,f,g,o], b[i,f,g,o]
        self.h2g = nn.Linear(hidden_size, 4 * hidden_size, bias=False)  # W_h[i,f,g,o]
        self.w_ci = nn.Parameter(torch.empty(hidden_size))
        self.w_cf = nn.Parameter(torch.empty(hidden_size))
        self.w_co = nn.Parameter(torch.empty(hidden_size))
        bound = 1 / math.sqrt(hidden_size)  # nn.LSTM's initialisation
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)
        with torch.no_grad():  # forget gate open at the start: gradients flow through c (Jozefowicz et al.)
            self.x2g.bias[hidden_size : 2 * hidden_size] += 1.0

    def step(self, xg: torch.Tensor, h: torch.Tensor, c: torch.Tensor, w_h: torch.Tensor | None = None):
        """One timestep; ``xg`` = x2g(x_t) [B, 4H] is precomputed, ``w_h`` the recurrent weight (read once
        per sequence). Returns (h_t, c_t)."""
        gi, gf, gg, go = (xg + F.linear(h, self.h2g.weight if w_h is None else w_h)).chunk(4, dim=-1)
        i = torch.sigmoid(gi + self.w_ci * c)
        f = torch.sigmoid(gf + self.w_cf * c)
        g = torch.tanh(gg)
        c = f * c + i * g
        o = torch.sigmoid(go + self.w_co * c)
        return o * torch.tanh(c), c

    def forward(self, x: torch.Tensor, state=None):
        """[B, T, I] -> ([B, T, H], (h_T, c_T)); ``state`` (h, c) to go on from, None for zeros."""
        xg = self.x2g(x)  # all timesteps at once
        h, c = state if state is not None else (x.new_zeros(x.shape[0], self.hidden_size),) * 2
        w_h = self.h2g.weight
        out = []
        for t in range(x.shape[1]):
            h, c = self.step(xg[:, t], h, c, w_h)
            out.append(h)
        return torch.stack(out, dim=1), (h, c)
