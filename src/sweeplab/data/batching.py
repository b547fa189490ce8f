"""Batching helpers shared by the language-model datamodules.

Sequences are stored once as one padded tensor; a batch is a single fancy-index of it, trimmed to the
longest sequence in the batch. That keeps the per-step data cost to microseconds, which matters when
tiny models run thousands of steps.

The loaders are ordinary DataLoaders (a row sampler and a batch size, or a ``batch_sampler``) over datasets
that fetch a whole batch at once through ``__getitems__``: Lightning can then rebuild them with another
sampler (``trainer.overfit_batches`` swaps in a sequential one, DDP a distributed one) and still get batches.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from sweeplab.constants import IGNORE_INDEX


def pad_lm_pairs(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token id sequences (each BOS ... EOS) -> inputs x = seq[:-1], targets y = seq[1:], right-padded."""
    lengths = torch.tensor([len(s) - 1 for s in seqs])
    n, width = len(seqs), int(lengths.max())
    inside = torch.arange(width)[None, :] < lengths[:, None]  # row-major, as the flattened sequences below
    x = torch.full((n, width), pad_id, dtype=torch.long)
    y = torch.full((n, width), IGNORE_INDEX, dtype=torch.long)
    # One scatter per tensor rather than two slice writes per sequence (32k names: 0.4 s of every run's start).
    x[inside] = torch.tensor([t for s in seqs for t in s[:-1]], dtype=torch.long)
    y[inside] = torch.tensor([t for s in seqs for t in s[1:]], dtype=torch.long)
    return x, y


def whole_batch(batch):
    """The DataLoader's collate_fn: ``__getitems__`` already returned the batch."""
    return batch


class PaddedPairs(Dataset):
    """Row ``i`` is one (x, y) pair; a list of rows is one (x, y) batch trimmed to its longest row."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y
        self.lengths = (y != IGNORE_INDEX).sum(1)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, rows):
        rows = torch.as_tensor(rows)
        width = int(self.lengths[rows].max())
        return self.x[rows, :width], self.y[rows, :width]

    __getitems__ = __getitem__  # the DataLoader's batched fetch: one gather per batch, not one per row


def batch_loader(
    data: PaddedPairs | PackedPairs,
    batch_size: int,
    shuffle: bool,
    num_workers: int = 0,
    seed: int | None = None,
    batch_sampler=None,
) -> DataLoader:
    """Batches of ``batch_size`` rows (shuffled with ``seed``, or torch's global generator), or those of
    ``batch_sampler`` (lists of rows, e.g. a TokenBudgetSampler; it shuffles itself)."""
    if batch_sampler is not None:
        order = {"batch_sampler": batch_sampler}
    else:
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        order = {"batch_size": batch_size, "shuffle": shuffle, "generator": generator}
    return DataLoader(
        data, collate_fn=whole_batch, num_workers=num_workers, persistent_workers=num_workers > 0, **order
    )


# ---------------------------------------------------------------- variable-length corpora (code)
class PackedPairs(Dataset):
    """Sequences of very different lengths stored end to end (int32), so memory follows the token count,
    not rows × longest. Indexed by a list of rows like PaddedPairs: one gather builds the padded batch."""

    def __init__(self, flat: torch.Tensor, sizes: torch.Tensor, pad_id: int):
        """``flat``: every sequence (BOS ... EOS) end to end; ``sizes``: each one's number of tokens."""
        sizes = torch.as_tensor(sizes, dtype=torch.long)
        if len(sizes) == 0 or int(sizes.min()) < 2 or int(sizes.sum()) != len(flat):
            raise ValueError("PackedPairs needs sequences of at least two tokens whose sizes add up to the tokens")
        self.flat = torch.as_tensor(flat, dtype=torch.int32)
        self.offsets = torch.cumsum(sizes, 0) - sizes
        self.lengths = sizes - 1  # predicted positions of each sequence (x and y length)
        self.pad_id = pad_id

    @classmethod
    def from_lists(cls, seqs: Sequence[Sequence[int]], pad_id: int) -> PackedPairs:
        return cls(
            torch.tensor([t for s in seqs for t in s], dtype=torch.int32),
            torch.tensor([len(s) for s in seqs], dtype=torch.long),
            pad_id,
        )

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, rows):
        one = isinstance(rows, int)
        rows = torch.as_tensor([rows] if one else rows, dtype=torch.long)
        lengths = self.lengths[rows]
        pos = torch.arange(int(lengths.max()))
        inside = pos[None, :] < lengths[:, None]
        idx = (self.offsets[rows, None] + pos[None, :]).clamp(max=len(self.flat) - 2)
        x = torch.where(inside, self.flat[idx].long(), self.pad_id)
        y = torch.where(inside, self.flat[idx + 1].long(), IGNORE_INDEX)
        return (x[0], y[0]) if one else (x, y)

    __getitems__ = __getitem__


class TokenBudgetSampler(torch.utils.data.Sampler):
    """Batches of rows of similar length whose padded size (rows × longest row) stays within ``max_tokens``.

    Rows are sorted by length and cut greedily into batches; a batch is also closed before its longest row
    would exceed its shortest by more than ``max_padding`` of the width, so no batch (hence no epoch) has
    more than that share of padding, however sparse the lengths (on the 46k-function stdlib corpus the
    batches are nearly full anyway: 0.2 % padding). With ``shuffle`` each epoch reshuffles rows of equal
    length among their batches and the order of the batches (seed + epoch): the batch boundaries depend
    on the sorted lengths only, so every epoch has the same number of batches, each within budget, and
    every row appears exactly once.
    """

    def __init__(
        self,
        lengths: Sequence[int] | torch.Tensor,
        max_tokens: int,
        shuffle: bool = True,
        seed: int = 0,
        max_padding: float = 0.05,
    ):
        self.lengths = torch.as_tensor(lengths, dtype=torch.long)
        longest = int(self.lengths.max())
        if longest > max_tokens:
            raise ValueError(f"a sequence of {longest} tokens does not fit a batch budget of {max_tokens} tokens")
        self.max_tokens, self.shuffle, self.seed, self.epoch = max_tokens, shuffle, seed, 0
        self.sorted_lengths = self.lengths.sort(stable=True).values
        self.bounds = self._cut(self.sorted_lengths.tolist(), max_tokens, max_padding)

    @staticmethod
    def _cut(sorted_lengths: list[int], budget: int, max_padding: float) -> list[tuple[int, int]]:
        bounds, start = [], 0
        for end, n in enumerate(sorted_lengths, 1):
            # adding this row would break the budget, or pad the batch's shortest row too much: close it
            if (end - start) * n > budget or sorted_lengths[start] < (1 - max_padding) * n:
                bounds.append((start, end - 1))
                start = end - 1
        bounds.append((start, len(sorted_lengths)))
        return bounds

    def set_epoch(self, epoch: int) -> None:  # Lightning calls this before each epoch
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.bounds)

    def padding_fraction(self) -> float:
        """Share of the tokens in this sampler's batches that are padding (the same every epoch)."""
        real = int(self.sorted_lengths.sum())
        padded = sum((b - a) * int(self.sorted_lengths[b - 1]) for a, b in self.bounds)
        return 1.0 - real / padded

    def __iter__(self):
        if not self.shuffle:
            order = torch.argsort(self.lengths, stable=True)
            yield from (order[a:b].tolist() for a, b in self.bounds)
            return
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        self.epoch += 1  # a new order next time even where no one calls set_epoch
        perm = torch.randperm(len(self.lengths), generator=g)
        order = perm[torch.argsort(self.lengths[perm], stable=True)]  # sorted; ties in random order
        for i in torch.randperm(len(self.bounds), generator=g).tolist():
            a, b = self.bounds[i]
            yield order[a:b].tolist()
