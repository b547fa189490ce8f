"""What every language-model network shares: token embedding → body → output layer.

A network maps token ids ``idx`` [B, T] to next-token logits [B, T, V], causally: the output at t
depends on ``idx[:, :t+1]`` only. Subclasses write ``body`` (embeddings [B, T, E] → features
[B, T, D]); the output layer (plain, tied to the embedding, or adaptive softmax) lives here once.
Data facts (``vocab_size``, ``max_len``) come from the datamodule, hyperparameters from the config.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from sweeplab.constants import IGNORE_INDEX
from sweeplab.models.layers import init_weights

MIN_TAIL = 2  # tokens the last tail cluster of an adaptive softmax must hold


def sequence_nll(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0):
    """(summed NLL over non-padded targets, number of such targets); no host sync."""
    total = F.cross_entropy(
        logits.flatten(0, 1).float(),
        targets.flatten(),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
        label_smoothing=label_smoothing,
    )
    return total, (targets != IGNORE_INDEX).sum()


class TokenLM(nn.Module):
    def __init__(
        self,
        *,
        vocab_size: int,
        embed_dim: int,
        out_dim: int,
        dropout: float,
        tie_weights: bool,
        adaptive_cutoffs: Sequence[int] | None,
    ):
        super().__init__()
        self.vocab_size = vocab_size
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.drop = nn.Dropout(dropout)
        # Tying needs the features in embedding space: project when the widths differ.
        self.proj = nn.Linear(out_dim, embed_dim) if tie_weights and out_dim != embed_dim else nn.Identity()
        head_in = embed_dim if tie_weights else out_dim
        if adaptive_cutoffs and tie_weights:
            raise ValueError("model.tie_weights and model.adaptive_cutoffs cannot be combined")
        self.cutoffs = fit_cutoffs(adaptive_cutoffs, vocab_size)
        self.adaptive = bool(self.cutoffs)
        if self.adaptive:
            # Tail clusters shrink by div_value each; keep the last one at least 1 wide for narrow models.
            div = min(4.0, head_in ** (1 / len(self.cutoffs))) if head_in > 1 else 1.0
            self.head = nn.AdaptiveLogSoftmaxWithLoss(
                head_in, vocab_size, cutoffs=self.cutoffs, div_value=max(div, 1.0)
            )
        else:
            self.head = nn.Linear(head_in, vocab_size)
            if tie_weights:
                self.head.weight = self.embed.weight

    def finish_init(self, init: str, nonlinearity: str) -> None:
        """Subclasses call this last in ``__init__``: the weight initialisation scheme (models/layers.py), with
        this network's output layer as the one the scaled init shrinks."""
        init_weights(self, init, nonlinearity, output=self.head)

    def body(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, E] -> [B, T, D]
        raise NotImplementedError

    def hidden(self, idx: torch.Tensor) -> torch.Tensor:
        return self.proj(self.body(self.drop(self.embed(idx))))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        h = self.hidden(idx)
        if self.adaptive:  # full log-probabilities: used for generation and beam search
            return self.head.log_prob(h.flatten(0, 1)).view(*h.shape[:2], self.vocab_size)
        return self.head(h)

    def nll(self, idx: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0):
        """(summed NLL, token count): the adaptive softmax never forms the full [B, T, V] logits."""
        return self.nll_of_hidden(self.hidden(idx), targets, label_smoothing)

    def nll_of_hidden(self, h: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0):
        if not self.adaptive:
            return sequence_nll(self.head(h), targets, label_smoothing)
        if label_smoothing:
            raise ValueError("label smoothing is not supported with model.adaptive_cutoffs")
        keep = targets != IGNORE_INDEX
        out = self.head(h[keep].float(), targets[keep])
        return -out.output.sum(), keep.sum()

    def target_logprobs(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """log p(target) at every position [B, T] (0 where the target is padding), without the full
        [B, T, V] log-probabilities under an adaptive softmax: what an ensemble averages."""
        h = self.hidden(idx)
        keep = targets != IGNORE_INDEX
        if not self.adaptive:
            return gather_targets(self.head(h), targets)
        out = torch.zeros(targets.shape, dtype=torch.float32, device=h.device)
        out[keep] = self.head(h[keep].float(), targets[keep]).output
        return out


def gather_targets(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log_softmax(logits) at the targets [B, T] (0 where the target is padding)."""
    keep = targets != IGNORE_INDEX
    logp = F.log_softmax(logits.float(), dim=-1).gather(-1, targets.clamp(min=0)[..., None]).squeeze(-1)
    return logp.masked_fill(~keep, 0.0)


def fit_cutoffs(cutoffs: Sequence[int] | None, vocab_size: int) -> list[int]:
    """The adaptive softmax clusters that fit this vocabulary; [] (a full softmax) when none does.

    The cutoffs are a data set's default in vocabulary ranks (e.g. [2000, 10000] for its 40k vocabulary), but
    a real sample can have far fewer distinct tokens than data.vocab_size: cutoffs past the vocabulary are
    dropped, and a vocabulary smaller than the head gets the full (exact, and then cheap) softmax.
    """
    if not cutoffs:
        return []
    return sorted({int(c) for c in cutoffs if 0 < c <= vocab_size - MIN_TAIL})


def left_context(x: torch.Tensor, size: int) -> torch.Tensor:
    """Sliding windows of the last ``size`` positions: [B, T, ...] -> [B, T, size, ...].

    Sequences start with the boundary token, so the context before the start is that token
    repeated (makemore's convention): the windows equal makemore's fixed-context training examples.
    """
    pad = x[:, :1].expand(x.shape[0], size - 1, *x.shape[2:])
    x = torch.cat([pad, x], dim=1)
    return x.unfold(1, size, 1).movedim(-1, 2)
