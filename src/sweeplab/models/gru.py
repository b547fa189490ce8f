"""GRU language model (nn.GRU), stacked ``num_layers`` deep.

    r, z = σ(W_x x_t + W_h h_{t-1} + b)          (reset, update gates)
    n = tanh(W_x x_t + b + r ⊙ (W_h h_{t-1} + b'))
    h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}
Dropout on the embeddings, between layers and on the top layer's output (not on the recurrence).
"""

from __future__ import annotations

from torch import nn

from sweeplab.models.base import TokenLM


class GRU(TokenLM):
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
        # nn.GRU warns about dropout with a single layer, where it has nothing to act on.
        self.rnn = nn.GRU(
            embed_dim, hidden_dim, num_layers, batch_first=True, dropout=dropout if num_layers > 1 else 0.0
        )

    def body(self, x):
        out, _ = self.rnn(x)  # [B, T, H], zero initial state
        return self.drop(out)
