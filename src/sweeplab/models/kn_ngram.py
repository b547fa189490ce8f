"""Interpolated modified Kneser-Ney n-gram (Chen & Goodman 1998) over a token vocabulary.

For the highest order n, with c(·) raw counts, and context h = the previous n-1 tokens:
    P_n(w | h) = max(c(hw) - D(c(hw)), 0) / c(h·) + γ(h) P_{n-1}(w | h')        h' = h minus its first token
    γ(h) = (D_1 N_1(h·) + D_2 N_2(h·) + D_3+ N_3+(h·)) / c(h·)                N_i(h·): words seen i times after h
Lower orders use the same formula on continuation counts N_1+(·g) (the number of distinct tokens seen
before g) instead of raw counts, except for n-grams that start at BOS (nothing can precede them: raw
counts, as KenLM does); the unigram level interpolates with the uniform 1/V, so every token has
non-zero probability and perplexity stays finite on unseen contexts. Unseen contexts fall back to the
lower order. Discounts per order from counts-of-counts n_1..n_4: Y = n_1 / (n_1 + 2 n_2),
D_i = i - (i + 1) Y n_{i+1} / n_i.

Counts are sparse: an n-gram is the integer key Σ token_i V^(n-1-i), kept in sorted tensors and looked up
with ``searchsorted`` (vectorised, and no per-n-gram Python objects). Fitted in one pass
(``fit_batch`` per batch, ``finalize`` at the end); no trainable parameters. The checkpoint holds the
highest-order counts only (``get_extra_state``); everything else is re-derived on load.
"""

from __future__ import annotations

import torch
from torch import nn

from sweeplab.constants import IGNORE_INDEX
from sweeplab.models.base import left_context

COMPACT_EVERY = 4_000_000  # raw keys buffered before merging them into the sorted counts


class KneserNeyNGram(nn.Module):
    def __init__(self, *, vocab_size: int, max_len: int, order: int):
        super().__init__()
        if order < 1:
            raise ValueError(f"model.order={order} must be at least 1")
        if vocab_size**order >= 2**63:
            raise ValueError(
                f"model.order={order} with a {vocab_size:,}-token vocabulary overflows the 64-bit "
                f"n-gram keys; lower model.order or data.vocab_size"
            )
        self.vocab_size, self.order = vocab_size, order
        self.bos_id: int | None = None  # the first token of the first batch: the datamodule's BOS
        self._pending: list[torch.Tensor] = []
        self._n_pending = 0
        self._dirty = False
        self.register_buffer("keys", torch.zeros(0, dtype=torch.long), persistent=False)
        self.register_buffer("counts", torch.zeros(0, dtype=torch.long), persistent=False)
        # Level k (1..order): k-gram keys (sorted), their discounted counts; its contexts (sorted keys),
        # context totals, γ numerators, and where each context's k-grams start in the k-gram table.
        for k in range(1, order + 1):
            for name, dtype in (
                ("gram", torch.long),
                ("disc", torch.float64),
                ("ctx", torch.long),
                ("total", torch.float64),
                ("gnum", torch.float64),
                ("start", torch.long),
            ):
                self.register_buffer(f"{name}{k}", torch.zeros(0, dtype=dtype), persistent=False)
        self.register_buffer(
            "unigram", torch.full((vocab_size,), 1.0 / vocab_size, dtype=torch.float64), persistent=False
        )

    # -------------------------------------------------------------- counting
    def _windows(self, idx: torch.Tensor) -> torch.Tensor:
        """The previous order-1 tokens of every position, BOS-padded at the start: [B, T, order-1]."""
        if self.order == 1:
            return idx.new_zeros(*idx.shape, 0)
        return left_context(idx, self.order - 1)

    @staticmethod
    def _encode(tokens: torch.Tensor, base: int) -> torch.Tensor:
        """[..., k] token ids -> [...] integer keys (base-V digits, first token most significant)."""
        key = torch.zeros(tokens.shape[:-1], dtype=torch.long, device=tokens.device)
        for i in range(tokens.shape[-1]):
            key = key * base + tokens[..., i]
        return key

    @torch.no_grad()
    def fit_batch(self, idx: torch.Tensor, targets: torch.Tensor) -> None:
        if self.bos_id is None:
            self.bos_id = int(idx[0, 0])
        keep = targets != IGNORE_INDEX
        grams = torch.cat([self._windows(idx), targets.clamp(min=0)[..., None]], -1)[keep]
        self._pending.append(self._encode(grams, self.vocab_size))
        self._n_pending += len(self._pending[-1])
        self._dirty = True
        if self._n_pending > COMPACT_EVERY:
            self._compact()

    def _compact(self) -> None:
        if not self._pending:
            return
        raw = torch.cat([self.keys, *self._pending])
        weights = torch.cat([self.counts, torch.ones(self._n_pending, dtype=torch.long, device=raw.device)])
        keys, inverse = torch.unique(raw, return_inverse=True)
        self.keys, self.counts = keys, torch.zeros_like(keys).scatter_add_(0, inverse, weights)
        self._pending, self._n_pending = [], 0

    @staticmethod
    def _discounts(counts: torch.Tensor) -> torch.Tensor:
        """[D_0=0, D_1, D_2, D_3+] from the counts-of-counts (Chen & Goodman's estimates, kept in [0.05, i])."""
        n = [float((counts == i).sum()) for i in range(1, 5)]
        y = n[0] / (n[0] + 2 * n[1]) if n[0] + 2 * n[1] > 0 else 0.5
        d = [0.0]
        for i in range(1, 4):
            di = i - (i + 1) * y * n[i] / n[i - 1] if n[i - 1] > 0 else 0.5 * i
            d.append(min(max(di, 0.05), float(i)))
        return torch.tensor(d, dtype=torch.float64, device=counts.device)

    @torch.no_grad()
    def finalize(self) -> None:
        """Turn the counts into the interpolated tables (idempotent: a second call without new data is free)."""
        if not self._dirty:
            return
        self._compact()
        V, n = self.vocab_size, self.order
        grams, counts = self.keys, self.counts
        raw = counts
        for k in range(n, 0, -1):
            if k < n:
                # k-grams are the suffixes of the (k+1)-grams: continuation = distinct left extensions,
                # raw = summed counts (each position has a full-order n-gram, BOS-padded).
                suffix = grams % V**k
                low, inverse = torch.unique(suffix, return_inverse=True)
                cont = torch.zeros_like(low).scatter_add_(0, inverse, torch.ones_like(inverse))
                raw = torch.zeros_like(low).scatter_add_(0, inverse, raw)
                first = low // V ** (k - 1) if k > 1 else torch.full_like(low, -1)
                grams, counts = low, torch.where(first == self.bos_id, raw, cont)
            D = self._discounts(counts)
            disc = (counts.double() - D[counts.clamp(max=3)]).clamp(min=0)
            if k == 1:
                total = counts.sum().double()
                gnum = D[counts.clamp(max=3)].sum()
                uni = torch.full((V,), float(gnum / total) / V, dtype=torch.float64, device=grams.device)
                uni[grams] += disc / total
                self.unigram = uni
            ctx, ctx_inverse, ctx_n = torch.unique_consecutive(grams // V, return_inverse=True, return_counts=True)
            setattr(self, f"gram{k}", grams)
            setattr(self, f"disc{k}", disc)
            setattr(self, f"ctx{k}", ctx)
            setattr(
                self,
                f"total{k}",
                torch.zeros(len(ctx), dtype=torch.float64, device=grams.device).scatter_add_(
                    0, ctx_inverse, counts.double()
                ),
            )
            setattr(
                self,
                f"gnum{k}",
                torch.zeros(len(ctx), dtype=torch.float64, device=grams.device).scatter_add_(
                    0, ctx_inverse, D[counts.clamp(max=3)]
                ),
            )
            setattr(self, f"start{k}", torch.cumsum(ctx_n, 0) - ctx_n)
        self._dirty = False

    # -------------------------------------------------------------- lookups
    @staticmethod
    def _find(table: torch.Tensor, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(position, found) of each key in a sorted table."""
        if len(table) == 0:
            return torch.zeros_like(keys), torch.zeros_like(keys, dtype=torch.bool)
        pos = torch.searchsorted(table, keys).clamp(max=len(table) - 1)
        return pos, table[pos] == keys

    def _contexts(self, windows: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For level k: (context key, its row in the context table, found) of each window [M, order-1]."""
        hkey = self._encode(windows[:, self.order - k :], self.vocab_size)
        row, found = self._find(getattr(self, f"ctx{k}"), hkey)
        return hkey, row, found

    def prob(self, windows: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
        """P(word | window) for [M, order-1] windows and [M] words (float64)."""
        p = self.unigram[words]
        for k in range(2, self.order + 1):
            if len(getattr(self, f"ctx{k}")) == 0:  # not fitted yet
                break
            hkey, row, found = self._contexts(windows, k)
            pos, seen = self._find(getattr(self, f"gram{k}"), hkey * self.vocab_size + words)
            disc = torch.where(seen, getattr(self, f"disc{k}")[pos], 0.0)
            mixed = (disc + getattr(self, f"gnum{k}")[row] * p) / getattr(self, f"total{k}")[row].clamp(min=1)
            p = torch.where(found, mixed, p)
        return p

    def nll(self, idx: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0):
        """(summed NLL, token count) without forming the [B, T, V] distribution."""
        keep = targets != IGNORE_INDEX
        p = self.prob(self._windows(idx)[keep], targets[keep])
        return -p.log().sum().float(), keep.sum()

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Log-probabilities of every next token, [B, T, V] (for sampling and beam search)."""
        B, T = idx.shape
        windows = self._windows(idx).reshape(B * T, -1)
        P = self.unigram.float().expand(B * T, -1).clone()
        for k in range(2, self.order + 1):
            if len(getattr(self, f"ctx{k}")) == 0:
                break
            _, row, found = self._contexts(windows, k)
            rows = found.nonzero().squeeze(1)
            if len(rows) == 0:
                continue
            ctx = row[rows]
            total = getattr(self, f"total{k}")[ctx].clamp(min=1)
            P[rows] *= (getattr(self, f"gnum{k}")[ctx] / total).float()[:, None]
            # every k-gram seen after these contexts: a contiguous run of the sorted table per context
            n_after = torch.diff(
                torch.cat(
                    [getattr(self, f"start{k}"), torch.tensor([len(getattr(self, f"gram{k}"))], device=idx.device)]
                )
            )
            runs = n_after[ctx]
            which = torch.repeat_interleave(torch.arange(len(rows), device=idx.device), runs)
            first = torch.repeat_interleave(getattr(self, f"start{k}")[ctx] - (torch.cumsum(runs, 0) - runs), runs)
            pos = first + torch.arange(len(which), device=idx.device)
            words = getattr(self, f"gram{k}")[pos] % self.vocab_size
            P.index_put_((rows[which], words), (getattr(self, f"disc{k}")[pos] / total[which]).float(), accumulate=True)
        return P.clamp(min=1e-30).log().view(B, T, self.vocab_size)

    # -------------------------------------------------------------- checkpoints
    def get_extra_state(self) -> dict:
        self._compact()
        return {
            "keys": self.keys.cpu(),
            "counts": self.counts.cpu(),
            "bos_id": self.bos_id,
            "vocab_size": self.vocab_size,
            "order": self.order,
        }

    def set_extra_state(self, state: dict) -> None:
        if (state["vocab_size"], state["order"]) != (self.vocab_size, self.order):
            raise ValueError(
                f"checkpoint of a {state['order']}-gram over {state['vocab_size']} tokens loaded into "
                f"a {self.order}-gram over {self.vocab_size}"
            )
        device = self.unigram.device
        self.keys, self.counts = state["keys"].to(device), state["counts"].to(device)
        self.bos_id, self._pending, self._n_pending = state["bos_id"], [], 0
        self._dirty = len(self.keys) > 0
        self.finalize()
