"""Bengio et al. (2003) MLP language model: the next token from the previous ``block_size`` tokens.

    e_{t-k+1..t} = E[idx]                    (embed each context token)
    h = φ(BN(W [e_{t-k+1}; ...; e_t] + b))   (concatenate, one or more hidden layers; φ = activation)
    logits = U h + c
Applied to every position of a sequence at once, which equals training on each window (makemore part 2). With
``batch_norm`` each hidden layer is Linear (no bias: the norm's shift replaces it) → BatchNorm → φ, as in
makemore's later lectures; the batch statistics are over every position of the batch (padding included,
the same in training and in the running statistics used for evaluation). ``drop_connect`` drops entries of
the hidden layers' weight matrices (models/layers.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from sweeplab.models.base import TokenLM, left_context
from sweeplab.models.layers import activation as make_activation
from sweeplab.models.layers import drop_connect as add_drop_connect


class TokenBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d over the features of [..., H] inputs: every position of every sequence is one sample."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.reshape(-1, x.shape[-1])).view_as(x)


class MLP(TokenLM):
    def __init__(
        self,
        *,
        vocab_size: int,
        max_len: int,
        block_size: int,
        embed_dim: int,
        hidden_dim: int,
        num_layers: int,
        dropout: float,
        tie_weights: bool,
        adaptive_cutoffs: Sequence[int] | None,
        activation: str,
        batch_norm: bool,
        drop_connect: float,
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
        self.block_size = block_size
        layers, width = [], block_size * embed_dim
        for _ in range(num_layers):
            layers.append(nn.Linear(width, hidden_dim, bias=not batch_norm))
            layers += [TokenBatchNorm(hidden_dim)] if batch_norm else []
            layers += [make_activation(activation), nn.Dropout(dropout)]
            width = hidden_dim
        self.mlp = nn.Sequential(*layers)
        self.finish_init(init, activation)
        for layer in self.mlp:
            if isinstance(layer, nn.Linear):
                add_drop_connect(layer, ["weight"], drop_connect)

    def body(self, x):
        ctx = left_context(x, self.block_size)  # [B, T, block, E]
        return self.mlp(ctx.flatten(2))  # [B, T, H]
