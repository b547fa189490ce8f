"""Neural bag of words: each tower pools its token embeddings (CodeSearchNet's NBoW baseline)."""

from __future__ import annotations

from sweeplab.models.dual_encoder import DualEncoder, Tower


class NBoW(DualEncoder):
    def __init__(
        self,
        *,
        vocab_size: int,
        max_len: int,
        embed_dim: int,
        dropout: float,
        pooling: str,
        shared: bool,
        temperature: float,
    ):
        super().__init__(
            shared=shared,
            temperature=temperature,
            tower=lambda: Tower(
                vocab_size=vocab_size, embed_dim=embed_dim, out_dim=embed_dim, dropout=dropout, pooling=pooling
            ),
        )
