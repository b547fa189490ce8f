"""BM25 (bm25s): each query ranks the functions by the BM25 score of its tokens in their code tokens. No
trainable parameters, nothing to fit: like the n-grams it goes through the same task, batches and metrics
as the neural encoders. Within a batch the index is the batch's functions (their document frequencies,
their mean length), as when the benchmark ranks a query among 1,000 functions; sweeplab-search indexes
the whole corpus."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from sweeplab.models.dual_encoder import PAD, UNK


def bm25s():
    """The bm25s module, its logger quieted: it sets itself to DEBUG on import and logs every index it builds
    (one per evaluation batch here)."""
    import bm25s as module

    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return module


def _words(rows) -> list[list[str]]:
    """Rows of ids (lists, or a padded [N, T] tensor) → bm25s documents: the ids as strings, without padding
    or <unk> (all the words a vocabulary lacks would otherwise match one another)."""
    rows = rows.tolist() if isinstance(rows, torch.Tensor) else rows
    return [[str(i) for i in row if i != PAD and i != UNK] for row in rows]


class BM25(nn.Module):
    def __init__(self, *, vocab_size: int, max_len: int, k1: float, b: float, method: str):
        super().__init__()
        self.k1, self.b, self.method = k1, b, method

    def index(self, docs: Sequence[Sequence[int]] | torch.Tensor):
        """A bm25s retriever over ``docs`` (id lists, or a padded [N, T] tensor)."""
        retriever = bm25s().BM25(k1=self.k1, b=self.b, method=self.method)
        retriever.index(_words(docs), show_progress=False)
        return retriever

    @staticmethod
    def scores(retriever, queries) -> torch.Tensor:
        """[Bq, N]: every query against every indexed function (0 where they share no token)."""
        n = retriever.scores["num_docs"]
        # bm25s cannot score a query with no token (all <unk>): it matches nothing
        rows = [retriever.get_scores(q) if q else np.zeros(n, dtype=np.float32) for q in _words(queries)]
        return torch.from_numpy(np.stack(rows))

    def forward(self, batch) -> torch.Tensor:
        query, code = batch[0], batch[1]
        return self.scores(self.index(code.cpu()), query.cpu()).to(query.device)
