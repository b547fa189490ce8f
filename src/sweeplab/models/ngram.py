"""Count-based n-gram over a small vocabulary (characters), add-k smoothed.

    P(w | c) = (N(c, w) + k) / (N(c) + k V)     with c the previous order-1 tokens
Fitted in one pass over the train split (no optimizer) and evaluated with the same metrics as the
neural models. The full table has V^order entries, so this is for character vocabularies; token
vocabularies use the sparse Kneser-Ney model (kn_ngram).
"""

from __future__ import annotations

import torch
from torch import nn

from sweeplab.constants import IGNORE_INDEX
from sweeplab.models.base import left_context

MAX_TABLE = 50_000_000


class NGram(nn.Module):
    def __init__(self, *, vocab_size: int, max_len: int, order: int, smoothing: float):
        super().__init__()
        if vocab_size**order > MAX_TABLE:
            raise ValueError(
                f"model.order={order} with a {vocab_size}-token vocabulary needs a table of "
                f"{vocab_size**order:,} counts; lower model.order or use model=kn_ngram"
            )
        self.vocab_size, self.order, self.smoothing = vocab_size, order, smoothing
        self.register_buffer("counts", torch.zeros(vocab_size**order, dtype=torch.float64))
        self.register_buffer("logp", torch.zeros(vocab_size ** (order - 1), vocab_size))

    def _context_index(self, idx: torch.Tensor) -> torch.Tensor:
        """Row of the table for each position: the previous order-1 tokens as a base-V number."""
        if self.order == 1:
            return torch.zeros_like(idx)
        ctx = left_context(idx, self.order - 1)  # [B, T, order-1]
        weights = self.vocab_size ** torch.arange(self.order - 2, -1, -1, device=idx.device)
        return (ctx * weights).sum(-1)

    @torch.no_grad()
    def fit_batch(self, idx: torch.Tensor, targets: torch.Tensor) -> None:
        keep = targets != IGNORE_INDEX
        cells = self._context_index(idx)[keep] * self.vocab_size + targets[keep]
        self.counts += torch.bincount(cells, minlength=self.counts.numel()).to(self.counts.dtype)

    @torch.no_grad()
    def finalize(self) -> None:
        table = self.counts.view(-1, self.vocab_size) + self.smoothing
        self.logp.copy_((table / table.sum(1, keepdim=True)).log().float())

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.logp[self._context_index(idx)]
