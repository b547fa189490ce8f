"""Bengio et al. (2003) MLP language model: the next token from the previous ``block_size`` tokens.

    e_{t-k+1..t} = E[idx]                    (embed each context token)
    h = tanh(W [e_{t-k+1}; ...; e_t] + b)    (concatenate, one or more hidden layers)
    logits = U h + c
Applied to every position of a sequence at once, which equals training on each window (makemore part 2).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from sweeplab.models.base import TokenLM, left_context


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
            layers += [nn.Linear(width, hidden_dim), nn.Tanh(), nn.Dropout(dropout)]
            width = hidden_dim
        self.mlp = nn.Sequential(*layers)

    def body(self, x):
        ctx = left_context(x, self.block_size)  # [B, T, block, E]
        return self.mlp(ctx.flatten(2))  # [B, T, H]
