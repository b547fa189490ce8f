"""WaveNet-style causal CNN language model (van den Oord et al., 2016): dilated causal 1-d convolutions.

    h^0 = W_in e                                                    (embeddings -> hidden_dim channels)
    a = conv_{k, d=2^l}(left_pad(h^l))                              (layer l sees 2^l-spaced inputs)
    h^{l+1} = h^l + W_out (tanh(a_f) ⊙ σ(a_g))                       (gated activation, residual)
Padding only on the left, by (k-1)·d, so the output at t never sees t+1.. (strictly causal).
Receptive field: 1 + (k-1)(2^num_layers - 1) tokens; earlier positions fall out of view.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from sweeplab.models.base import TokenLM


class CausalConvBlock(nn.Module):
    def __init__(self, channels: int, kernel_size: int, dilation: int, dropout: float):
        super().__init__()
        self.pad = (kernel_size - 1) * dilation
        self.conv = nn.Conv1d(channels, 2 * channels, kernel_size, dilation=dilation)  # filter and gate
        self.out = nn.Conv1d(channels, channels, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # [B, C, T] -> [B, C, T]
        filt, gate = self.conv(F.pad(h, (self.pad, 0))).chunk(2, dim=1)
        return h + self.drop(self.out(torch.tanh(filt) * torch.sigmoid(gate)))


class CausalCNN(TokenLM):
    def __init__(
        self,
        *,
        vocab_size: int,
        max_len: int,
        embed_dim: int,
        hidden_dim: int,
        num_layers: int,
        kernel_size: int,
        dropout: float,
        tie_weights: bool,
        adaptive_cutoffs: Sequence[int] | None,
        init: str,
    ):
        super().__init__(
            vocab_size=vocab_size,
            embed_dim=embed_dim,
            out_dim=hidden_dim,
            dropout=dropout,
            tie_weights=tie_weights,
            adaptive_cutoffs=adaptive_cutoffs,
        )
        self.inp = nn.Conv1d(embed_dim, hidden_dim, 1)
        self.blocks = nn.ModuleList(CausalConvBlock(hidden_dim, kernel_size, 2**l, dropout) for l in range(num_layers))
        self.receptive_field = 1 + (kernel_size - 1) * (2**num_layers - 1)
        self.finish_init(init, "tanh")  # the gated activation's filter half

    def body(self, x):
        h = self.inp(x.transpose(1, 2))  # Conv1d wants channels first: [B, C, T]
        for block in self.blocks:
            h = block(h)
        return self.drop(F.gelu(h.transpose(1, 2)))
