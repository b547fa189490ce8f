"""1-D CNN encoder: ``num_layers`` convolutions over the token embeddings (same length, kernel_size wide),
each with a residual connection, then pooling (CodeSearchNet's 1D-CNN baseline). Not causal: every
position sees both sides, unlike the language model's CNN (models/cnn.py)."""

from __future__ import annotations

import torch
from torch import nn

from sweeplab.models.dual_encoder import DualEncoder, Tower


class ConvTower(Tower):
    def __init__(self, *, vocab_size, embed_dim, hidden_dim, num_layers, kernel_size, dropout, pooling):
        super().__init__(
            vocab_size=vocab_size, embed_dim=embed_dim, out_dim=hidden_dim, dropout=dropout, pooling=pooling
        )
        self.inp = nn.Linear(embed_dim, hidden_dim) if embed_dim != hidden_dim else nn.Identity()
        # padding="same" pads an even kernel unevenly: fine, nothing here is causal
        self.convs = nn.ModuleList(
            nn.Conv1d(hidden_dim, hidden_dim, kernel_size, padding="same") for _ in range(num_layers)
        )
        self.body_drop = nn.Dropout(dropout)

    def body(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask[:, None, :].to(x.dtype)
        h = self.inp(x).transpose(1, 2)  # [B, H, T]
        for conv in self.convs:
            # padding stays zero, so a function's vector does not depend on the batch's longest one
            h = (h + self.body_drop(torch.relu(conv(h)))) * m
        return h.transpose(1, 2)


class CNNEncoder(DualEncoder):
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
        pooling: str,
        shared: bool,
        temperature: float,
    ):
        super().__init__(
            shared=shared,
            temperature=temperature,
            tower=lambda: ConvTower(
                vocab_size=vocab_size,
                embed_dim=embed_dim,
                hidden_dim=hidden_dim,
                num_layers=num_layers,
                kernel_size=kernel_size,
                dropout=dropout,
                pooling=pooling,
            ),
        )
