"""Jordan network (Jordan, 1986): the recurrent network whose *output* is fed back, not its hidden state.

    h_t = φ(W_x x_t + W_y y_{t-1} + b_h)        hidden units read the input and the previous output
    y_t = φ(W_o h_t + b_o)                      output units: what the layer gives (and the next step reads)
An Elman network (``cell: rnn``) feeds back h_{t-1}; here the context units hold y_{t-1}, the layer's own
output, which the language model's output layer (models/base.py) reads. φ is ``model.activation``.
The input term W_x x_t + b_h is computed for all timesteps at once; only the recurrence loops over time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sweeplab.models.layers import activation_fn


class JordanLayer(nn.Module):
    recurrent = "y2h"  # the output-to-hidden weights (DropConnect's target)

    def __init__(self, input_size: int, hidden_size: int, activation: str):
        super().__init__()
        self.hidden_size = hidden_size
        self.act = activation_fn(activation)
        self.x2h = nn.Linear(input_size, hidden_size)  # W_x, b_h
        self.y2h = nn.Linear(hidden_size, hidden_size, bias=False)  # W_y
        self.h2y = nn.Linear(hidden_size, hidden_size)  # W_o, b_o

    def forward(self, x: torch.Tensor, state=None):
        """[B, T, I] -> ([B, T, H] outputs y, y_T); ``state`` the previous output y, None for zeros."""
        xh = self.x2h(x)
        y = state if state is not None else x.new_zeros(x.shape[0], self.hidden_size)
        w_y = self.y2h.weight
        out = []
        for t in range(x.shape[1]):
            h = self.act(xh[:, t] + F.linear(y, w_y))
            y = self.act(self.h2y(h))
            out.append(y)
        return torch.stack(out, dim=1), y
