"""(docstring, function) pairs in the CodeSearchNet format, for code search: a query is a function's
``docstring_tokens`` (the summary line), its answer the function's ``code_tokens``.

The rows come from the CodeSearchNet loader (codesearchnet.py: real jsonl files, the hub copy, or the corpus
built from the standard library offline). A function is a pair when its docstring has at least
``min_query_tokens`` tokens and its code at least one; the others are counted per split and left out (a split
left with no pair is an error). With ``subtokens`` every token is split into lowercased words at ``_``,
case changes and digits (``readCSVFile`` → read csv file; a string literal into its words), punctuation
kept whole, so the query's words meet the code's identifiers. One vocabulary of the ``vocab_size`` most
frequent train subtokens (queries and code together) serves both sides; sequences are cut to
``max_query_len`` / ``max_code_len``.

Batches (docs/ARCHITECTURE.md, kind ``pairs``): train ``(query [B, Tq], code [B, Tc])`` of ``batch_size``
random pairs, padded with id 0, the other pairs of the batch being each query's negatives. Validation and
test come in fixed batches of ``eval_batch_size`` pairs (1,000: each query against 999 distractors, as the
CodeSearchNet benchmark) in one order drawn once from ``eval_order_seed``: ``(query, code, skip)``, where the
first ``skip`` rows are distractors only. A split whose size is not a multiple of the batch ends with its
last ``eval_batch_size`` pairs, of which only the queries not ranked yet are scored, so every query is
ranked once, always against the same number of distractors; a split with fewer pairs than that is one batch
of all of them (each query against the n - 1 others), and the log and metrics.json say so.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from sweeplab.data.batching import batch_loader, whole_batch
from sweeplab.data.codesearchnet import MIN_VOCAB, SPLITS, STAGE_SPLIT, CodeSearchNetRows
from sweeplab.data.stdlib_corpus import docstring_tokens
from sweeplab.data.vocab import Vocab
from sweeplab.errors import DataError

log = logging.getLogger("sweeplab")

PAD = 0  # the vocabulary's <pad>: the encoders read id 0 as padding
LISTS = ("docstring_tokens", "code_tokens")
SHOWN = ("func_name", "path", "url", "code")  # what a search result shows
# Words of a token: runs of capitals before a capitalised word (CSV in CSVFile), capitalised or lowercase
# words, digits. A token with none of these (an operator, a bracket) stays whole.
WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


def subtokens(token: str) -> list[str]:
    """``read_CSVFile2`` → ``['read', 'csv', 'file', '2']``; ``(`` → ``['(']``."""
    words = WORD.findall(token)
    return [w.lower() for w in words] if words else [token]


# ---------------------------------------------------------------- encoding (vectorised over Arrow arrays)
def _within(counts: np.ndarray) -> np.ndarray:
    """0..n-1 for each n in ``counts``, end to end."""
    total = int(counts.sum())
    return np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)


@dataclass
class TokenColumn:
    """One list<string> column as distinct tokens + which one each position holds: every token's subtokens
    are worked out once, not once per occurrence."""

    distinct: list[str]
    index: np.ndarray  # [positions] into distinct
    row_lengths: np.ndarray  # [rows] tokens per row

    @classmethod
    def of(cls, lists) -> TokenColumn:
        import pyarrow.compute as pc

        encoded = pc.dictionary_encode(lists.flatten())
        lengths = pc.list_value_length(lists).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        return cls(
            encoded.dictionary.to_pylist(),
            encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64),
            lengths,
        )


class Tokenizer:
    """Tokens → the sequences the encoders read (subtokens or the tokens themselves), memoised."""

    def __init__(self, split_subtokens: bool):
        self.split_subtokens = split_subtokens
        self._memo: dict[str, list[str]] = {}

    def pieces(self, token: str) -> list[str]:
        if not self.split_subtokens:
            return [token]
        found = self._memo.get(token)
        if found is None:
            found = self._memo[token] = subtokens(token)
        return found

    def count(self, column: TokenColumn, counts: Counter) -> None:
        """Add the column's piece counts to ``counts``."""
        per_token = np.bincount(column.index, minlength=len(column.distinct))
        for token, n in zip(column.distinct, per_token.tolist()):
            if n:
                for piece in self.pieces(token):
                    counts[piece] += n

    def encode(self, column: TokenColumn, vocab: Vocab, max_len: int) -> tuple[np.ndarray, np.ndarray, dict]:
        """(ids of every row end to end, each row's length), rows cut to ``max_len``, and facts: the share of
        rows cut and of ids that are <unk>."""
        unk = vocab.unk_id
        ids_of = [[vocab.stoi.get(p, unk) for p in self.pieces(t)] for t in column.distinct]
        n_of = np.array([len(x) for x in ids_of], dtype=np.int64)
        flat_of = np.array([i for x in ids_of for i in x], dtype=np.int32)
        start_of = np.cumsum(n_of) - n_of
        n = n_of[column.index]  # pieces at each position
        ids = flat_of[np.repeat(start_of[column.index], n) + _within(n)]
        ends = np.cumsum(column.row_lengths)
        done = np.concatenate([[0], np.cumsum(n)])
        lengths = done[ends] - done[ends - column.row_lengths]
        kept = np.minimum(lengths, max_len)
        ids = ids[np.repeat(np.cumsum(lengths) - lengths, kept) + _within(kept)]
        facts = {
            "truncated": round(float((lengths > max_len).mean()) if len(lengths) else 0.0, 5),
            "unk_rate": round(float((ids == unk).mean()) if len(ids) else 0.0, 5),
        }
        return ids, kept, facts

    def query(self, text: str) -> list[str]:
        """A query typed by a user, tokenized as the docstrings were (CodeSearchNet's docstring tokenizer)."""
        return [p for t in docstring_tokens(text) for p in self.pieces(t)]


def build_pair_vocab(tokenizer: Tokenizer, columns: Sequence[TokenColumn], size: int) -> Vocab:
    """The ``size`` most frequent pieces of ``columns`` (ties alphabetical) after the specials of every
    token vocabulary (Vocab.from_tokens: PAD, UNK, EOS, BOS)."""
    counts: Counter = Counter()
    for column in columns:
        tokenizer.count(column, counts)
    specials = Vocab.from_tokens([], size)
    pieces = sorted(counts, key=lambda p: (-counts[p], p))[: size - len(specials)]
    return Vocab(
        itos=specials.itos + pieces,
        kind=specials.kind,
        bos_id=specials.bos_id,
        eos_id=specials.eos_id,
        pad_id=specials.pad_id,
        unk_id=specials.unk_id,
    )


# ---------------------------------------------------------------- datasets
class PackedSeqs:
    """Token id sequences end to end (int32) with their offsets and lengths; rows → one padded batch."""

    def __init__(self, flat: np.ndarray | torch.Tensor, lengths: np.ndarray | torch.Tensor):
        self.flat = torch.as_tensor(flat, dtype=torch.int32)
        self.lengths = torch.as_tensor(lengths, dtype=torch.long)
        self.offsets = torch.cumsum(self.lengths, 0) - self.lengths

    def __len__(self) -> int:
        return len(self.lengths)

    def batch(self, rows: torch.Tensor) -> torch.Tensor:
        lengths = self.lengths[rows]
        pos = torch.arange(max(int(lengths.max()), 1) if len(rows) else 1)
        inside = pos[None, :] < lengths[:, None]
        idx = (self.offsets[rows, None] + pos[None, :]).clamp(max=max(len(self.flat) - 1, 0))
        return torch.where(inside, self.flat[idx].long(), PAD)


class Pairs(Dataset):
    """Row i is (query i, code i); a list of rows is one padded (query, code) batch."""

    def __init__(self, query: PackedSeqs, code: PackedSeqs):
        self.query, self.code = query, code

    def __len__(self) -> int:
        return len(self.query)

    def __getitem__(self, rows):
        rows = torch.as_tensor(rows, dtype=torch.long)
        return self.query.batch(rows), self.code.batch(rows)

    __getitems__ = __getitem__


def eval_batches(n: int, size: int) -> list[tuple[int, int]]:
    """(first row, rows that are distractors only) of each fixed batch of a split of ``n`` pairs."""
    size = min(size, n)
    out = [(start, 0) for start in range(0, n - size + 1, size)]
    if n % size:
        out.append((n - size, size - n % size))  # the split's last `size` pairs, the ones not ranked yet scored
    return out


class FixedBatches(Dataset):
    """Item i is evaluation batch i: (query [S, Tq], code [S, Tc], skip) over the pairs in ``order``;
    ``names`` and ``queries`` are each pair's function name and docstring (for examples)."""

    def __init__(self, pairs: Pairs, size: int, order: torch.Tensor, names=(), queries=()):
        self.pairs, self.order, self.names, self.queries = pairs, order, list(names), list(queries)
        self.size = min(size, len(order))
        self.starts = eval_batches(len(order), size)

    def __len__(self) -> int:
        return len(self.starts)

    def rows(self, i: int) -> torch.Tensor:
        start, _ = self.starts[i]
        return self.order[start : start + self.size]

    def __getitem__(self, i: int):
        q, c = self.pairs[self.rows(i)]
        return q, c, torch.tensor(self.starts[i][1])


class Shard(DistributedSampler):
    """Batches i, i + W, i + 2W, ... for rank i of W: every batch on exactly one device, none repeated (a
    plain DistributedSampler pads with repeats, which would count some queries twice). A DistributedSampler,
    so that Lightning does not wrap it in another one."""

    def __init__(self, n: int, rank: int, world: int):
        super().__init__(range(n), num_replicas=world, rank=rank, shuffle=False)

    def __iter__(self):
        return iter(range(self.rank, len(self.dataset), self.num_replicas))

    def __len__(self) -> int:
        return len(range(self.rank, len(self.dataset), self.num_replicas))


@dataclass
class Corpus:
    """Every function with code of every split (with or without a docstring), for a search index."""

    code: PackedSeqs
    shown: dict[str, list[str]]  # SHOWN fields, one entry per function
    split: list[str]

    def __len__(self) -> int:
        return len(self.code)


# ---------------------------------------------------------------- the datamodule
class CodeSearchDataModule(CodeSearchNetRows, pl.LightningDataModule):
    def __init__(
        self,
        *,
        path: str | Sequence[str] | None,
        hub: str | None,
        language: str,
        data_dir: str,
        cache_dir: str | None,
        skip_bad_rows: bool,
        vocab_size: int,
        subtokens: bool,
        min_query_tokens: int,
        max_query_len: int,
        max_code_len: int,
        batch_size: int,
        eval_batch_size: int,
        eval_order_seed: int,
        num_workers: int,
    ):
        super().__init__()
        if vocab_size < MIN_VOCAB:
            raise DataError(
                f"data.vocab_size={vocab_size} is too small: it must be at least {MIN_VOCAB} (PAD, UNK, EOS, BOS)"
            )
        self.path, self.hub, self.language = path, hub, language
        self.data_dir = Path(os.path.expanduser(data_dir))
        self.cache_dir = os.path.expanduser(cache_dir) if cache_dir else None
        self.skip_bad_rows, self.vocab_size = skip_bad_rows, vocab_size
        self.tokenizer = Tokenizer(subtokens)
        self.min_query_tokens, self.max_query_len, self.max_code_len = min_query_tokens, max_query_len, max_code_len
        self.batch_size, self.eval_batch_size, self.eval_order_seed = batch_size, eval_batch_size, eval_order_seed
        self.num_workers = num_workers
        self.vocab: Vocab | None = None
        self.splits: dict[str, Pairs] = {}
        self.orders: dict[str, torch.Tensor] = {}
        self.queries: dict[str, list[str]] = {}  # valid/test: each pair's docstring and function name,
        self.names: dict[str, list[str]] = {}  # for the examples a run writes
        self.facts: dict = {}

    # -------------------------------------------------------------- building
    def setup(self, stage: str | None = None) -> None:
        if not self.splits:
            self._build()

    def _pairs(self, split: str, cols: dict) -> np.ndarray:
        """Rows of the split that are pairs; counts the others."""
        import pyarrow.compute as pc

        q_len = pc.list_value_length(cols["docstring_tokens"]).to_numpy(zero_copy_only=False)
        c_len = pc.list_value_length(cols["code_tokens"]).to_numpy(zero_copy_only=False)
        short_query, no_code = q_len < self.min_query_tokens, c_len == 0
        keep = ~short_query & ~no_code
        self.facts.update(
            {
                f"{split}_functions": len(q_len),
                f"{split}_with_docstring": int((q_len > 0).sum()),
                f"{split}_pairs": int(keep.sum()),
                f"{split}_short_docstring": int(short_query.sum()),
                f"{split}_no_code": int((no_code & ~short_query).sum()),
            }
        )
        if not keep.any():
            raise DataError(
                f"the {split} split has no (docstring, code) pair: of its {len(q_len):,} functions, "
                f"{int(short_query.sum()):,} have a docstring of fewer than data.min_query_tokens="
                f"{self.min_query_tokens} tokens and {int(no_code.sum()):,} no code tokens ({self.facts['source']})"
            )
        return np.flatnonzero(keep)

    def _build(self) -> None:
        import pyarrow as pa

        tables = self.load_columns(LISTS, ("func_name",))
        columns = {}
        for split in SPLITS:
            cols = tables[split]
            keep = pa.array(self._pairs(split, cols))
            columns[split] = {name: cols[name].take(keep) for name in (*LISTS, "func_name")}
        tokens = {s: {name: TokenColumn.of(columns[s][name]) for name in LISTS} for s in SPLITS}
        if self.vocab is None:  # a vocabulary restored from a checkpoint wins
            self.vocab = build_pair_vocab(self.tokenizer, list(tokens["train"].values()), self.vocab_size)
        facts = self.facts
        for split in SPLITS:
            q, q_len, q_facts = self.tokenizer.encode(tokens[split]["docstring_tokens"], self.vocab, self.max_query_len)
            c, c_len, c_facts = self.tokenizer.encode(tokens[split]["code_tokens"], self.vocab, self.max_code_len)
            self.splits[split] = Pairs(PackedSeqs(q, q_len), PackedSeqs(c, c_len))
            for side, f in (("query", q_facts), ("code", c_facts)):
                facts.update({f"{split}_{side}_{k}": v for k, v in f.items()})
            if split != "train":
                n = len(q_len)
                g = torch.Generator().manual_seed(self.eval_order_seed)
                self.orders[split] = torch.randperm(n, generator=g)
                self.queries[split] = [" ".join(t) for t in columns[split]["docstring_tokens"].to_pylist()]
                self.names[split] = columns[split]["func_name"].to_pylist()
                size = min(self.eval_batch_size, n)
                facts.update(
                    {
                        f"{split}_eval_batch": size,
                        f"{split}_eval_batches": len(eval_batches(n, size)),
                        f"{split}_distractors": size - 1,
                    }
                )
                self._say_how_ranked(split, n)
        facts["vocab_size"] = len(self.vocab)
        facts["train_batches"] = -(-facts["train_pairs"] // self.batch_size)
        log.info(
            "code_search: %s (docstring, code) pairs (train/valid/test %s) from %s functions, vocab %s%s",
            f"{sum(facts[f'{s}_pairs'] for s in SPLITS):,}",
            " / ".join(f"{facts[f'{s}_pairs']:,}" for s in SPLITS),
            f"{sum(facts[f'{s}_functions'] for s in SPLITS):,}",
            f"{len(self.vocab):,}",
            ", subtokens" if self.tokenizer.split_subtokens else "",
        )

    def _say_how_ranked(self, split: str, n: int) -> None:
        size = self.eval_batch_size
        if n < size:
            log.warning(
                "code_search: the %s split has %s pairs, fewer than data.eval_batch_size=%s: its MRR ranks each "
                "query among the %s other functions (one batch), an easier task than against %s distractors",
                split,
                f"{n:,}",
                f"{size:,}",
                f"{n - 1:,}",
                f"{size - 1:,}",
            )
        elif n % size:
            log.info(
                "code_search: %s MRR over %d batches of %s pairs (%s distractors per query); the last batch is the "
                "split's last %s pairs, of which the %s not ranked yet are scored",
                split,
                len(eval_batches(n, size)),
                f"{size:,}",
                f"{size - 1:,}",
                f"{size:,}",
                f"{n % size:,}",
            )

    # -------------------------------------------------------------- contract (docs/ARCHITECTURE.md)
    def model_kwargs(self) -> dict:
        longest = max(int(seqs.lengths.max()) for d in self.splits.values() for seqs in (d.query, d.code))
        return {"vocab_size": len(self.vocab), "max_len": longest}

    def stats(self) -> dict:
        return dict(self.facts)

    def state_dict(self) -> dict:
        return {"vocab": self.vocab.state_dict()} if self.vocab else {}

    def load_state_dict(self, state: dict) -> None:
        if "vocab" in state:
            self.vocab = Vocab.from_state(state["vocab"])

    # -------------------------------------------------------------- search
    def encode_query(self, text: str) -> list[int]:
        """A user's query as the ids the query encoder reads ([] when none of it is a token)."""
        ids = self.vocab.lookup(self.tokenizer.query(text))
        return ids[: self.max_query_len]

    def corpus(self) -> Corpus:
        """Every function with code tokens, of every split, as the code encoder reads it (no setup needed)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        tables = self.load_columns(("code_tokens",), SHOWN)
        shown: dict[str, list[str]] = {k: [] for k in SHOWN}
        flats, lengths, splits = [], [], []
        for split in SPLITS:
            cols = tables[split]
            keep = pa.array(np.flatnonzero(pc.list_value_length(cols["code_tokens"]).to_numpy(zero_copy_only=False)))
            ids, n, _ = self.tokenizer.encode(
                TokenColumn.of(cols["code_tokens"].take(keep)), self.vocab, self.max_code_len
            )
            flats.append(ids)
            lengths.append(n)
            splits += [split] * len(n)
            for k in SHOWN:
                shown[k] += cols[k].take(keep).to_pylist()
        return Corpus(PackedSeqs(np.concatenate(flats), np.concatenate(lengths)), shown, splits)

    # -------------------------------------------------------------- loaders
    def train_dataloader(self):
        return batch_loader(self.splits["train"], self.batch_size, True, self.num_workers)

    def _eval_loader(self, split: str) -> DataLoader:
        data = self.eval_dataset(split)
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        return DataLoader(
            data,
            batch_size=None,  # each item is a whole batch
            sampler=Shard(len(data), rank, world),
            collate_fn=whole_batch,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def eval_dataset(self, split: str) -> FixedBatches:
        """The fixed evaluation batches of ``split`` (valid/test, or Lightning's val)."""
        split = STAGE_SPLIT.get(split, split)
        return FixedBatches(
            self.splits[split], self.eval_batch_size, self.orders[split], self.names[split], self.queries[split]
        )

    def val_dataloader(self):
        return self._eval_loader("valid")

    def test_dataloader(self):
        return self._eval_loader("test")
