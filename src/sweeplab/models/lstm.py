"""LSTM language model (nn.LSTM), stacked ``num_layers`` deep.

    i, f, o = σ(W_x x_t + W_h h_{t-1} + b)       (input, forget, output gates)
    g = tanh(W_x x_t + W_h h_{t-1} + b)          (candidate)
    c_t = f ⊙ c_{t-1} + i ⊙ g,   h_t = o ⊙ tanh(c_t)
Dropout on the embeddings, between layers and on the top layer's output (not on the recurrence).
See peephole_lstm.py for the same cell written out by hand.
"""

from __future__ import annotations

from torch import nn

from sweeplab.models.base import TokenLM


class LSTM(TokenLM):
    def __init__(
        self,
        vocab_size: int,
        max_len: int,
        embed_dim: int = 64,
        hidden_dim: int = 128,
        num_layers: int = 2,
        dropout: float = 0.0,
        tie_weights: bool = False,
        adaptive_cutoffs=None,
    ):
        super().__init__(vocab_size, embed_dim, hidden_dim, dropout, tie_weights, adaptive_cutoffs)
        # nn.LSTM warns about dropout with a single layer, where it has nothing to act on.
        self.rnn = nn.LSTM(
            embed_dim, hidden_dim, num_layers, batch_first=True, dropout=dropout if num_layers > 1 else 0.0
        )

    def body(self, x):
        out, _ = self.rnn(x)  # [B, T, H], zero initial state
        return self.drop(out)
