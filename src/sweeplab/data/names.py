"""Character-level language modelling on any one-item-per-line text file (default: names.txt, 32k names)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import pytorch_lightning as pl
import torch

from sweeplab.data.batching import PaddedPairs, batch_loader, pad_lm_pairs
from sweeplab.data.vocab import Vocab
from sweeplab.errors import DataError


def bundled_names() -> Path:
    return Path(str(resources.files("sweeplab.data") / "assets" / "names.txt"))


def read_lines(path: Path, lowercase: bool = False) -> list[str]:
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte {e.start})") from None
    lines = [ln.strip() for ln in text.splitlines()]
    lines = [ln.lower() if lowercase else ln for ln in lines if ln]
    if not lines:
        raise DataError(f"{path}: no items (the file is empty or blank)")
    return lines


def split_items(items: Sequence[str], fractions: Sequence[float], seed: int) -> list[list[str]]:
    """Deterministic train/val/test split by a seeded permutation."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise DataError(f"data.split must be three non-negative fractions summing to 1, got {list(fractions)}")
    order = torch.randperm(len(items), generator=torch.Generator().manual_seed(seed)).tolist()
    n_train = int(round(fractions[0] * len(items)))
    n_val = int(round(fractions[1] * len(items)))
    bounds = [0, n_train, n_train + n_val, len(items)]
    parts = [[items[i] for i in order[a:b]] for a, b in zip(bounds, bounds[1:])]
    for name, part in zip(("train", "val", "test"), parts):
        if not part:
            raise DataError(f"data.split={list(fractions)} leaves the {name} split empty ({len(items)} items)")
    return parts


class NamesDataModule(pl.LightningDataModule):
    def __init__(
        self,
        *,
        path: str | None,
        split: Sequence[float],
        split_seed: int,
        block_size: int,
        batch_size: int,
        num_workers: int,
        lowercase: bool,
        tbptt_steps: int | None,
    ):
        super().__init__()
        self.path = Path(path).expanduser() if path else bundled_names()
        self.split, self.split_seed = list(split), split_seed
        self.block_size, self.batch_size, self.num_workers = block_size, batch_size, num_workers
        self.lowercase = lowercase
        self.tbptt_steps = tbptt_steps  # read by the task's config (truncated BPTT), not here
        self.vocab: Vocab | None = None
        self.splits: dict[str, PaddedPairs] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        items = read_lines(self.path, self.lowercase)
        try:
            parts = split_items(items, self.split, self.split_seed)
        except DataError as e:
            raise DataError(f"{self.path}: {e}") from None
        if self.vocab is None:  # a vocabulary restored from a checkpoint wins
            self.vocab = Vocab.from_chars(parts[0])
        v = self.vocab
        for name, part in zip(("train", "val", "test"), parts):
            seqs = [[v.bos_id, *v.encode(s), v.eos_id] for s in part]
            self.splits[name] = PaddedPairs(*pad_lm_pairs(seqs, v.pad_id))
        self.items = dict(zip(("train", "val", "test"), parts))

    # -------------------------------------------------------------- contract (docs/ARCHITECTURE.md)
    def model_kwargs(self) -> dict:
        return {"vocab_size": len(self.vocab), "max_len": max(d.x.shape[1] for d in self.splits.values())}

    def data_files(self) -> list[Path]:
        """The file a run reads, for its identity."""
        return [self.path]

    def stats(self) -> dict:
        return {
            "data_path": str(self.path),
            "vocab_size": len(self.vocab),
            **{f"{k}_items": len(v) for k, v in self.splits.items()},
            "unigram_val_loss": self.unigram_loss("val"),
        }

    def unigram_loss(self, split: str) -> float:
        """NLL (nats/char) of a unigram model fitted on train: the floor any real model must beat."""
        train, other = self.splits["train"], self.splits[split]
        counts = torch.bincount(train.y[train.y >= 0], minlength=len(self.vocab)).double() + 1.0
        logp = (counts / counts.sum()).log()
        return float(-logp[other.y[other.y >= 0]].mean())

    def state_dict(self) -> dict:
        return {"vocab": self.vocab.state_dict()} if self.vocab else {}

    def load_state_dict(self, state: dict) -> None:
        if "vocab" in state:
            self.vocab = Vocab.from_state(state["vocab"])

    # -------------------------------------------------------------- loaders
    def train_dataloader(self):
        return batch_loader(self.splits["train"], self.batch_size, True, self.num_workers)

    def val_dataloader(self):
        return batch_loader(self.splits["val"], self.batch_size * 4, False, self.num_workers)

    def test_dataloader(self):
        return batch_loader(self.splits["test"], self.batch_size * 4, False, self.num_workers)
