"""One recurrent language model for several cells (makemore's RNN), stacked ``num_layers`` deep.

    rnn:   h_t = tanh(W_x x_t + W_h h_{t-1} + b)                                         (nn.RNN, Elman)
    lstm:  i, f, o = σ(W_x x_t + W_h h_{t-1} + b),  g = tanh(...)                          (nn.LSTM)
           c_t = f ⊙ c_{t-1} + i ⊙ g,  h_t = o ⊙ tanh(c_t)
    gru:   r, z = σ(W_x x_t + W_h h_{t-1} + b),  n = tanh(W_x x_t + b + r ⊙ (W_h h_{t-1} + b'))  (nn.GRU)
           h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}
    peephole_lstm: the LSTM whose gates also see the cell state, written out by hand (peephole_lstm.py)
Each layer reads the layer below's h_t from a zero initial state. Dropout on the embeddings, between layers
and on the top layer's output (not on the recurrence).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from sweeplab.models.base import TokenLM
from sweeplab.models.peephole_lstm import PeepholeLSTM

TORCH_CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
CELLS = (*TORCH_CELLS, "peephole_lstm")


class Recurrent(TokenLM):
    def __init__(
        self,
        *,
        vocab_size: int,
        max_len: int,
        cell: str,
        embed_dim: int,
        hidden_dim: int,
        num_layers: int,
        dropout: float,
        tie_weights: bool,
        adaptive_cutoffs: Sequence[int] | None,
    ):
        if cell not in CELLS:
            raise ValueError(f"model.cell={cell!r}: choose one of {', '.join(CELLS)}")
        super().__init__(
            vocab_size=vocab_size,
            embed_dim=embed_dim,
            out_dim=hidden_dim,
            dropout=dropout,
            tie_weights=tie_weights,
            adaptive_cutoffs=adaptive_cutoffs,
        )
        self.cell = cell
        if cell == "peephole_lstm":
            self.rnn = PeepholeLSTM(embed_dim, hidden_dim, num_layers, dropout)
        else:
            # torch warns about dropout with a single layer, where it has nothing to act on.
            between = dropout if num_layers > 1 else 0.0
            self.rnn = TORCH_CELLS[cell](embed_dim, hidden_dim, num_layers, batch_first=True, dropout=between)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)  # [B, T, H], zero initial state
        return self.drop(out)
