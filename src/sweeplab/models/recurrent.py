"""One recurrent language model for several cells (makemore's RNN), stacked ``num_layers`` deep.

    rnn:   h_t = φ(W_x x_t + W_h h_{t-1} + b)                                            (nn.RNN, Elman)
    lstm:  i, f, o = σ(W_x x_t + W_h h_{t-1} + b),  g = tanh(...)                          (nn.LSTM)
           c_t = f ⊙ c_{t-1} + i ⊙ g,  h_t = o ⊙ tanh(c_t)
    gru:   r, z = σ(W_x x_t + W_h h_{t-1} + b),  n = tanh(W_x x_t + b + r ⊙ (W_h h_{t-1} + b'))  (nn.GRU)
           h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}
    peephole_lstm: the LSTM whose gates also see the cell state, written out by hand (peephole_lstm.py)
    jordan: the output y_{t-1}, not the hidden state, is fed back (jordan.py)
    ctrnn:  continuous-time, Euler-discretised with time constant τ = model.time_constant (ctrnn.py)
Each layer reads the layer below's output from a zero initial state (or the state a chunk of truncated BPTT
left: ``features``). Dropout on the embeddings, between layers and on the top layer's output (not on the
recurrence); DropConnect (``drop_connect``) on the hidden-to-hidden weights, one mask per sequence, as in
AWD-LSTM. φ = ``model.activation`` for the cells that have one activation (rnn: tanh or relu; jordan, ctrnn:
also gelu); the gated cells keep their sigmoids and tanh.

``RecurrentStack`` is the stack alone, ``[B, T, I] -> [B, T, D·H]``: with ``bidirectional`` (D = 2) each layer
also reads the sequence backwards (within each row's length) and the two directions are concatenated. A
language model must be causal, so ``Recurrent`` refuses it; non-causal tasks (encoders) use the stack.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from sweeplab.config.schema import RECURRENT_CELLS as CELLS
from sweeplab.config.validate import bidirectional_problem, recurrent_problem
from sweeplab.models.base import TokenLM
from sweeplab.models.ctrnn import CTRNNLayer
from sweeplab.models.jordan import JordanLayer
from sweeplab.models.layers import drop_connect as add_drop_connect
from sweeplab.models.peephole_lstm import PeepholeLSTMLayer

TORCH_CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def detach_state(state):
    """The hidden state with its history cut (truncated BPTT): tensors detached, nesting kept."""
    if isinstance(state, torch.Tensor):
        return state.detach()
    if isinstance(state, (list, tuple)):
        return type(state)(detach_state(s) for s in state)
    return state


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """Each row of [B, T, ...] reversed within its first ``lengths[b]`` positions (padding stays at the end)."""
    if lengths is None:
        return x.flip(1)
    t = torch.arange(x.shape[1], device=x.device)[None, :]
    lengths = lengths.to(x.device)[:, None]
    idx = torch.where(t < lengths, lengths - 1 - t, t)
    return x.gather(1, idx.view(*idx.shape, *([1] * (x.ndim - 2))).expand_as(x))


class RecurrentStack(nn.Module):
    """``num_layers`` layers of ``cell``, dropout between them; ``forward(x, state=None, lengths=None)`` ->
    ``(out [B, T, D·H], state)``. ``lengths`` [B]: the rows' real lengths (padding after them is ignored
    by the backward direction and by packing); ``state``: what the previous call returned (None: zeros)."""

    def __init__(
        self,
        *,
        cell: str,
        input_size: int,
        hidden_size: int,
        num_layers: int,
        dropout: float,
        bidirectional: bool,
        activation: str,
        drop_connect: float,
        time_constant: float | None,
    ):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"model.cell={cell!r}: choose one of {', '.join(CELLS)}")
        problem = recurrent_problem(cell, activation, time_constant)
        if problem:
            raise ValueError(problem)
        self.cell, self.directions = cell, 2 if bidirectional else 1
        self.out_dim = hidden_size * self.directions
        if cell in TORCH_CELLS:
            # torch warns about dropout with a single layer, where it has nothing to act on.
            extra = {"nonlinearity": activation} if cell == "rnn" else {}
            self.rnn = TORCH_CELLS[cell](
                input_size,
                hidden_size,
                num_layers,
                batch_first=True,
                dropout=dropout if num_layers > 1 else 0.0,
                bidirectional=bidirectional,
                **extra,
            )
            self.layers = None
            names = [n for n, _ in self.rnn.named_parameters() if n.startswith("weight_hh")]
            add_drop_connect(self.rnn, names, drop_connect)
            return
        self.rnn = None
        self.drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            nn.ModuleList(
                self._layer(cell, input_size if l == 0 else self.out_dim, hidden_size, activation, time_constant)
                for _ in range(self.directions)
            )
            for l in range(num_layers)
        )
        for directions in self.layers:
            for layer in directions:
                add_drop_connect(getattr(layer, layer.recurrent), ["weight"], drop_connect)

    @staticmethod
    def _layer(cell, input_size, hidden_size, activation, time_constant) -> nn.Module:
        if cell == "peephole_lstm":
            return PeepholeLSTMLayer(input_size, hidden_size)
        if cell == "jordan":
            return JordanLayer(input_size, hidden_size, activation)
        return CTRNNLayer(input_size, hidden_size, activation, time_constant)

    def forward(self, x: torch.Tensor, state=None, lengths: torch.Tensor | None = None):
        if self.rnn is not None:
            # nn.RNN & co. read each weight several times per call: cached, a DropConnect mask is drawn once.
            with parametrize.cached():
                if lengths is None:
                    return self.rnn(x, state)
                packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
                out, state = self.rnn(packed, state)
            return pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0], state
        states = []
        for l, directions in enumerate(self.layers):
            x = self.drop(x) if l else x
            outs = []
            for d, layer in enumerate(directions):
                prev = state[l][d] if state is not None else None
                if d == 0:
                    out, s = layer(x, prev)
                else:  # the backward direction: each row reversed within its length, and back
                    out, s = layer(reverse_padded(x, lengths), prev)
                    out = reverse_padded(out, lengths)
                outs.append(out)
                states.append(s)
            x = torch.cat(outs, dim=-1) if len(outs) > 1 else outs[0]
        per_layer = [states[i : i + self.directions] for i in range(0, len(states), self.directions)]
        return x, per_layer


class Recurrent(TokenLM):
    stateful = True  # the hidden state can be carried from one chunk of a sequence to the next (TBPTT)

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
        init: str,
        activation: str,
        bidirectional: bool,
        drop_connect: float,
        time_constant: float | None,
    ):
        problem = bidirectional_problem(bidirectional)
        if problem:
            raise ValueError(problem)
        super().__init__(
            vocab_size=vocab_size,
            embed_dim=embed_dim,
            out_dim=hidden_dim,
            dropout=dropout,
            tie_weights=tie_weights,
            adaptive_cutoffs=adaptive_cutoffs,
        )
        self.cell = cell
        self.rnn = RecurrentStack(
            cell=cell,
            input_size=embed_dim,
            hidden_size=hidden_dim,
            num_layers=num_layers,
            dropout=dropout,
            bidirectional=False,
            activation=activation,
            drop_connect=drop_connect,
            time_constant=time_constant,
        )
        self.finish_init(init, activation)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)  # [B, T, H], zero initial state
        return self.drop(out)

    def features(self, idx: torch.Tensor, state=None):
        """(features [B, T, D] for the output layer, the state after the last position), going on from
        ``state``: truncated BPTT runs a long sequence chunk by chunk."""
        out, state = self.rnn(self.drop(self.embed(idx)), state)
        return self.proj(self.drop(out)), state

    def nll_chunk(self, idx: torch.Tensor, targets: torch.Tensor, state=None, label_smoothing: float = 0.0):
        """(summed NLL, token count, state) of one chunk, from the state the previous chunk left."""
        h, state = self.features(idx, state)
        return (*self.nll_of_hidden(h, targets, label_smoothing), state)
