"""Bidirectional RNN encoder (``cell``: rnn, gru or lstm): the forward and backward states of each token,
concatenated (2 × hidden_dim), then pooling (CodeSearchNet's biRNN baseline). Padded positions are
packed away, so they never enter a state."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from sweeplab.models.dual_encoder import DualEncoder, Tower

CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


class RNNTower(Tower):
    def __init__(self, *, vocab_size, embed_dim, hidden_dim, num_layers, cell, dropout, pooling):
        super().__init__(
            vocab_size=vocab_size, embed_dim=embed_dim, out_dim=2 * hidden_dim, dropout=dropout, pooling=pooling
        )
        if cell not in CELLS:
            raise ValueError(f"model.cell={cell!r}: choose one of {', '.join(CELLS)}")
        self.rnn = CELLS[cell](
            embed_dim,
            hidden_dim,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if num_layers > 1 else 0.0,  # torch warns about dropout with one layer
        )

    def body(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        lengths = mask.sum(1).clamp(min=1).cpu()  # a row with no token is read as one padding token
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
        h, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return h


class BiRNN(DualEncoder):
    def __init__(
        self,
        *,
        vocab_size: int,
        max_len: int,
        embed_dim: int,
        hidden_dim: int,
        num_layers: int,
        cell: str,
        dropout: float,
        pooling: str,
        shared: bool,
        temperature: float,
    ):
        super().__init__(
            shared=shared,
            temperature=temperature,
            tower=lambda: RNNTower(
                vocab_size=vocab_size,
                embed_dim=embed_dim,
                hidden_dim=hidden_dim,
                num_layers=num_layers,
                cell=cell,
                dropout=dropout,
                pooling=pooling,
            ),
        )
