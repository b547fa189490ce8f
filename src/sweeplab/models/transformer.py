"""Decoder-only Transformer language model, nanoGPT style (Radford et al., 2019; Karpathy's nanoGPT).

    x = E[idx] + P[0..T-1]                                       (token + learned position embeddings)
    x = x + Attn(LN(x)),  x = x + MLP(LN(x))                      (pre-LN block, num_layers times)
    h = LN(x)
Attention is causal (``is_causal=True``): position t attends to 0..t only. ``embed_dim`` is the model
width, ``hidden_dim`` the MLP width, ``num_heads`` the number of attention heads, ``activation`` the MLP's
nonlinearity. ``stochastic_depth`` p: in training each block's two residual branches are skipped per sample
with a rate rising linearly from 0 (first block) to p (last block), as in DeiT; ``drop_connect`` drops
entries of the MLP's weight matrices. ``init: gpt2`` is nanoGPT's N(0, 0.02) with the residual projections
scaled by 1/√(2·num_layers); the other schemes are models/layers.py's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from sweeplab.models.base import TokenLM
from sweeplab.models.layers import DropPath, depth_rates
from sweeplab.models.layers import activation as make_activation
from sweeplab.models.layers import drop_connect as add_drop_connect


class CausalSelfAttention(nn.Module):
    def __init__(self, width: int, num_heads: int, dropout: float):
        super().__init__()
        self.num_heads, self.dropout = num_heads, dropout
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, C]
        B, T, C = x.shape
        q, k, v = (
            t.view(B, T, self.num_heads, C // self.num_heads).transpose(1, 2)  # [B, nh, T, hd]
            for t in self.qkv(x).split(C, dim=2)
        )
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True)
        return self.drop(self.proj(y.transpose(1, 2).reshape(B, T, C)))


class Block(nn.Module):
    def __init__(self, width: int, hidden_dim: int, num_heads: int, dropout: float, activation: str, drop_path: float):
        super().__init__()
        self.ln1 = nn.LayerNorm(width)
        self.attn = CausalSelfAttention(width, num_heads, dropout)
        self.ln2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, hidden_dim), make_activation(activation), nn.Linear(hidden_dim, width), nn.Dropout(dropout)
        )
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.ln1(x)))
        return x + self.drop_path(self.mlp(self.ln2(x)))


class Transformer(TokenLM):
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
        tie_weights: bool,
        adaptive_cutoffs: Sequence[int] | None,
        activation: str,
        stochastic_depth: float,
        drop_connect: float,
        init: str,
    ):
        if embed_dim % num_heads:
            raise ValueError(f"model.embed_dim={embed_dim} must be divisible by model.num_heads={num_heads}")
        super().__init__(
            vocab_size=vocab_size,
            embed_dim=embed_dim,
            out_dim=embed_dim,
            dropout=dropout,
            tie_weights=tie_weights,
            adaptive_cutoffs=adaptive_cutoffs,
        )
        self.max_len = max_len
        self.pos = nn.Embedding(max_len, embed_dim)
        self.blocks = nn.ModuleList(
            Block(embed_dim, hidden_dim, num_heads, dropout, activation, rate)
            for rate in depth_rates(stochastic_depth, num_layers)
        )
        self.ln_f = nn.LayerNorm(embed_dim)
        if init == "gpt2":
            # nanoGPT's initialisation: small normal weights (incl. token embedding and head), and the
            # residual projections scaled down by depth so the residual stream's variance stays put.
            self.apply(self._init_weights)
            for name, p in self.named_parameters():
                if name.endswith("attn.proj.weight") or name.endswith("mlp.2.weight"):
                    nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * num_layers))
        else:
            self.finish_init(init, activation)
        for block in self.blocks:
            add_drop_connect(block.mlp[0], ["weight"], drop_connect)
            add_drop_connect(block.mlp[2], ["weight"], drop_connect)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, 0.0, 0.02)

    def body(self, x):
        T = x.shape[1]
        if self.max_len < T:
            raise ValueError(
                f"Transformer got a sequence of length {T} but has position embeddings for "
                f"max_len={self.max_len} only; crop the context to the last {self.max_len} tokens"
            )
        x = x + self.pos(torch.arange(T, device=x.device))
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x)
