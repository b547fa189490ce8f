"""What every neural code-search encoder shares: two towers, one for queries and one for code, each
token ids [B, T] → embedding → the encoder's body → pooled vector [B, D]; the score of a query and a
function is the cosine of their vectors divided by ``temperature``. (The CodeSearchNet baselines score by
the dot product; on the stdlib corpus the cosine at temperature 0.05-0.1 trains to a much higher MRR.)

Batches of kind ``pairs`` (docs/ARCHITECTURE.md) pad with id 0 and read an unknown token as id 1.
``shared=true`` puts one tower on both sides (one set of weights; the query's words and the code's
identifiers then share their embeddings), ``false`` gives each side its own, as in the CodeSearchNet
paper. Pooling is the mean over the tokens or attention pooling (a learned score per position, softmax
over the tokens, the weighted mean). Data facts (``vocab_size``, ``max_len``) come from the datamodule,
hyperparameters from the config.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

PAD, UNK = 0, 1  # the token vocabularies' <pad> and <unk> (data.vocab.Vocab.from_tokens)


class Pooling(nn.Module):
    def __init__(self, kind: str, dim: int):
        super().__init__()
        if kind not in ("mean", "attention"):
            raise ValueError(f"model.pooling={kind!r}: choose mean or attention")
        self.kind = kind
        self.score = nn.Linear(dim, 1) if kind == "attention" else None

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``h`` [B, T, D], ``mask`` [B, T] (True on tokens) → [B, D]; a row with no token gives zeros."""
        m = mask.to(h.dtype)[..., None]
        if self.score is None:
            return (h * m).sum(1) / m.sum(1).clamp(min=1)
        logits = self.score(h).squeeze(-1).masked_fill(~mask, float("-inf"))
        weights = torch.softmax(logits, dim=1).nan_to_num(0.0)  # all -inf (no token): zeros, not NaN
        return (weights[..., None] * h).sum(1)


class Tower(nn.Module):
    """Token ids → one vector: embedding, dropout, ``body`` (subclasses), pooling."""

    def __init__(self, *, vocab_size: int, embed_dim: int, out_dim: int, dropout: float, pooling: str):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD)
        self.drop = nn.Dropout(dropout)
        self.pool = Pooling(pooling, out_dim)

    def body(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Embeddings [B, T, E] (zero at padding) → features [B, T, D]."""
        return x

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = ids != PAD
        x = self.drop(self.embed(ids)) * mask[..., None]
        return self.pool(self.body(x, mask), mask)


class DualEncoder(nn.Module):
    """A query tower and a code tower (the same one when ``shared``) built by ``tower()``."""

    def __init__(self, *, shared: bool, temperature: float, tower: Callable[[], Tower]):
        super().__init__()
        self.shared, self.temperature = shared, temperature
        self.towers = nn.ModuleList([tower()] if shared else [tower(), tower()])

    def encode_query(self, ids: torch.Tensor) -> torch.Tensor:
        """Query ids [B, T] → unit vectors [B, D]."""
        return F.normalize(self.towers[0](ids), dim=-1)

    def encode_code(self, ids: torch.Tensor) -> torch.Tensor:
        """Code ids [B, T] → unit vectors [B, D]."""
        return F.normalize(self.towers[-1](ids), dim=-1)

    def score(self, queries: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Encoded queries [Bq, D] × encoded functions [Bc, D] → scores [Bq, Bc]."""
        return queries @ codes.T / self.temperature

    def forward(self, batch) -> torch.Tensor:
        """A (query ids, code ids, ...) batch → scores [B, B]: row i is query i against every function."""
        query, code = batch[0], batch[1]
        return self.score(self.encode_query(query), self.encode_code(code))
