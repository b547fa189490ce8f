"""Elman RNN language model (nn.RNN, tanh), stacked ``num_layers`` deep.

    h_t = tanh(W_x x_t + W_h h_{t-1} + b)       (per layer; layer l reads layer l-1's h_t)
    logits_t = U h_t + c
Dropout on the embeddings, between layers and on the top layer's output (not on the recurrence).
"""

from __future__ import annotations

from torch import nn

from sweeplab.models.base import TokenLM


class RNN(TokenLM):
    def __init__(
        self,
        vocab_size: int,
        max_len: int,
        embed_dim: int = 64,
        hidden_dim: int = 128,
        num_layers: int = 1,
        dropout: float = 0.0,
        tie_weights: bool = False,
        adaptive_cutoffs=None,
    ):
        super().__init__(vocab_size, embed_dim, hidden_dim, dropout, tie_weights, adaptive_cutoffs)
        # nn.RNN warns about dropout with a single layer, where it has nothing to act on.
        self.rnn = nn.RNN(
            embed_dim,
            hidden_dim,
            num_layers,
            nonlinearity="tanh",
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )

    def body(self, x):
        out, _ = self.rnn(x)  # [B, T, H], zero initial state
        return self.drop(out)
