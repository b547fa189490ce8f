"""Self-attention encoder: a small Transformer encoder (pre-LN, learned positions, padding masked out of
the attention), then pooling (CodeSearchNet's self-attention baseline). ``embed_dim`` is the model
width, ``hidden_dim`` the feed-forward width."""

from __future__ import annotations

import torch
from torch import nn

from sweeplab.models.dual_encoder import DualEncoder, Tower


class AttentionTower(Tower):
    def __init__(self, *, vocab_size, max_len, embed_dim, hidden_dim, num_layers, num_heads, dropout, pooling):
        super().__init__(
            vocab_size=vocab_size, embed_dim=embed_dim, out_dim=embed_dim, dropout=dropout, pooling=pooling
        )
        if embed_dim % num_heads:
            raise ValueError(f"model.embed_dim={embed_dim} must be divisible by model.num_heads={num_heads}")
        self.pos = nn.Embedding(max_len, embed_dim)
        layer = nn.TransformerEncoderLayer(
            embed_dim, num_heads, hidden_dim, dropout, activation="gelu", batch_first=True, norm_first=True
        )
        # no nested tensors: they need post-LN layers (torch warns and falls back otherwise)
        self.encoder = nn.TransformerEncoder(
            layer, num_layers, norm=nn.LayerNorm(embed_dim), enable_nested_tensor=False
        )

    def body(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.pos(torch.arange(x.shape[1], device=x.device))
        # a row with no token attends to its first position rather than to nothing (NaN)
        pad = ~mask
        pad[:, 0] &= mask.any(1)
        return self.encoder(x, src_key_padding_mask=pad)


class SelfAttention(DualEncoder):
    def __init__(
        self,
        *,
        vocab_size: int,
        max_len: int,
        embed_dim: int,
        hidden_dim: int,
        num_layers: int,
        num_heads: int,
        dropout: float,
        pooling: str,
        shared: bool,
        temperature: float,
    ):
        super().__init__(
            shared=shared,
            temperature=temperature,
            tower=lambda: AttentionTower(
                vocab_size=vocab_size,
                max_len=max_len,
                embed_dim=embed_dim,
                hidden_dim=hidden_dim,
                num_layers=num_layers,
                num_heads=num_heads,
                dropout=dropout,
                pooling=pooling,
            ),
        )
