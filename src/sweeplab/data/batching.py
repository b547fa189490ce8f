"""Batching helpers shared by the language-model datamodules.

Sequences are stored once as one padded tensor; a batch is a single fancy-index of it, trimmed to the
longest sequence in the batch. That keeps the per-step data cost to microseconds, which matters when
tiny models run thousands of steps.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from sweeplab.models.base import IGNORE_INDEX


def pad_lm_pairs(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token id sequences (each BOS ... EOS) -> inputs x = seq[:-1], targets y = seq[1:], right-padded."""
    n, width = len(seqs), max(len(s) for s in seqs) - 1
    x = torch.full((n, width), pad_id, dtype=torch.long)
    y = torch.full((n, width), IGNORE_INDEX, dtype=torch.long)
    for i, s in enumerate(seqs):
        t = torch.as_tensor(s, dtype=torch.long)
        x[i, : len(s) - 1] = t[:-1]
        y[i, : len(s) - 1] = t[1:]
    return x, y


class PaddedPairs(Dataset):
    """Indexed by a list of row indices; returns one (x, y) batch trimmed to its longest row."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y
        self.lengths = (y != IGNORE_INDEX).sum(1)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, rows):
        rows = torch.as_tensor(rows)
        width = int(self.lengths[rows].max())
        return self.x[rows, :width], self.y[rows, :width]


def batch_loader(data: PaddedPairs, batch_size: int, shuffle: bool, num_workers: int = 0,
                 seed: int | None = None, batch_sampler=None) -> DataLoader:
    if batch_sampler is None:
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        base = RandomSampler(data, generator=generator) if shuffle else SequentialSampler(data)
        batch_sampler = BatchSampler(base, batch_size, drop_last=False)
    return DataLoader(data, sampler=batch_sampler, batch_size=None, num_workers=num_workers,
                      persistent_workers=num_workers > 0)
