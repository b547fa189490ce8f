"""Token-level language modelling of Python functions in the CodeSearchNet format.

Sources, by priority: ``hub`` (the Hugging Face copy, online), ``path`` (a directory in CodeSearchNet's
layout ``python/final/jsonl/{train,valid,test}/python_<split>_<n>.jsonl.gz``, a glob, or files; .jsonl or
.jsonl.gz), else a corpus in the same format built once from the interpreter's standard library
(stdlib_corpus.py). Files go through ``datasets.load_dataset("json")`` and its cache; the model sees each
function's ``code_tokens`` as BOS, tokens, EOS, cut to ``max_seq_len`` predicted positions. The
vocabulary is the ``vocab_size`` most frequent train tokens (specials included). Batches hold up to
``batch_tokens`` tokens of similar-length functions (batching.TokenBudgetSampler).

A file's split comes from its path (a ``train``/``valid``/``test`` directory or ``_train_`` in the name,
as in CodeSearchNet), else from each row's ``partition`` field.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import json
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch

from sweeplab.data.batching import PackedPairs, TokenBudgetSampler, batch_loader
from sweeplab.data.vocab import Vocab
from sweeplab.errors import DataError

log = logging.getLogger("sweeplab")

SPLITS = ("train", "valid", "test")
STAGE_SPLIT = {"train": "train", "val": "valid", "test": "test"}  # Lightning's names -> CodeSearchNet's
PARTITION_NAMES = {"train": "train", "valid": "valid", "validation": "valid", "test": "test"}
# The hub copy (datasets' code_search_net) names CodeSearchNet's fields differently.
HUB_COLUMNS = {
    "func_code_tokens": "code_tokens",
    "func_documentation_tokens": "docstring_tokens",
    "repository_name": "repo",
    "func_path_in_repository": "path",
    "split_name": "partition",
    "whole_func_string": "original_string",
    "func_code_string": "code",
    "func_documentation_string": "docstring",
    "func_code_url": "url",
}
MIN_VOCAB = 4  # PAD, UNK, EOS, BOS
TOKEN_LISTS = ("code_tokens",)  # the fields the language model needs: lists of strings in every row


# ---------------------------------------------------------------- finding and checking files
def is_data_file(p: Path) -> bool:
    return p.is_file() and (p.name.endswith(".jsonl") or p.name.endswith(".jsonl.gz"))


def resolve_files(path: str | Sequence[str]) -> list[Path]:
    """``data.path`` (a directory, a glob, a file, or a list of these) -> sorted data files."""
    items = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if not items:
        raise DataError("data.path is an empty list")
    files: list[Path] = []
    for item in items:
        item = os.path.expanduser(str(item))
        if glob.has_magic(item):
            matched = [Path(m) for m in sorted(glob.glob(item, recursive=True))]
            found = [m for m in matched if is_data_file(m)]
            found += [f for m in matched if m.is_dir() for f in sorted(m.rglob("*.jsonl*")) if is_data_file(f)]
            if not found:
                raise DataError(f"data.path={item}: the glob matches no .jsonl or .jsonl.gz file")
            files += found
        elif os.path.isdir(item):
            found = sorted(f for f in Path(item).rglob("*.jsonl*") if is_data_file(f))
            if not found:
                raise DataError(f"data.path={item}: the directory holds no .jsonl or .jsonl.gz file")
            files += found
        elif os.path.isfile(item):
            files.append(Path(item))
        else:
            raise DataError(f"data.path={item}: no such file or directory")
    return sorted(set(files))


def split_from_path(p: Path) -> str | None:
    """CodeSearchNet keeps the partition in the layout: .../train/python_train_0.jsonl.gz."""
    for part in reversed(p.parts[:-1]):
        if part in PARTITION_NAMES:
            return PARTITION_NAMES[part]
    m = re.search(r"(?:^|_)(train|valid|validation|test)(?:_|\.)", p.name)
    return PARTITION_NAMES[m.group(1)] if m else None


def _open_text(p: Path):
    return gzip.open(p, "rt", encoding="utf-8") if p.name.endswith(".gz") else open(p, encoding="utf-8")


def has_rows(path: Path) -> bool:
    """Whether the file has a non-blank line (reads up to the first one)."""
    try:
        with _open_text(path) as f:
            return any(line.strip() for line in f)
    except (OSError, EOFError, UnicodeDecodeError):
        return True  # unreadable: the loader reports it with the file's name


def _row_problem(row, lists: Sequence[str]) -> str | None:
    if not isinstance(row, dict):
        return "not a JSON object"
    for name in lists:
        if name not in row or row[name] is None:
            return f"no '{name}' field"
        if not isinstance(row[name], list) or not all(isinstance(t, str) for t in row[name]):
            return f"'{name}' is not a list of strings"
    return None


def bad_lines(path: Path, limit: int | None = None, lists: Sequence[str] = TOKEN_LISTS) -> list[tuple[int, str]]:
    """(line number, what is wrong) for each line the loader cannot use: not JSON, not an object, or no
    list of strings under one of ``lists``. Blank lines are fine (skipped, as datasets does)."""
    out: list[tuple[int, str]] = []
    try:
        with _open_text(path) as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError as e:
                    out.append((n, f"not JSON ({str(e).split(':')[0]})"))
                else:
                    problem = _row_problem(row, lists)
                    if problem:
                        out.append((n, problem))
                if limit and len(out) >= limit:
                    break
    except (OSError, EOFError, UnicodeDecodeError) as e:  # a truncated .gz, or bytes that are not UTF-8
        out.append((0, f"unreadable ({type(e).__name__}: {e})"))
    return out


def _cleaned_copy(src: Path, bad: set[int], cache: Path) -> Path:
    """The file without its bad lines, cached by the source's content hash (written once, atomically)."""
    digest = hashlib.sha1()
    with open(src, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    dst = cache / digest.hexdigest()[:16] / src.name.replace(".jsonl.gz", ".jsonl")
    if dst.is_file():
        return dst
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    with _open_text(src) as fin, open(tmp, "w", encoding="utf-8") as fout:
        for n, line in enumerate(fin, 1):
            if n not in bad and line.strip():
                fout.write(line)
    os.replace(tmp, dst)
    return dst


# ---------------------------------------------------------------- vocabulary and sequences (vectorised)
def _combine(chunks: list):
    import pyarrow as pa

    arr = pa.chunked_array(chunks).combine_chunks() if chunks else pa.array([], type=pa.list_(pa.string()))
    return (
        arr.cast(pa.list_(pa.string()))
        if pa.types.is_large_list(arr.type) or pa.types.is_large_string(arr.type.value_type)
        else arr
    )


def pa_strings(items: list[str]):
    import pyarrow as pa

    return pa.array(items, type=pa.string())


def build_vocab(train_tokens, size: int) -> Vocab:
    """``Vocab.from_tokens`` (top ``size`` tokens, ties alphabetical, the same specials) with the counting
    done by Arrow instead of a Python Counter."""
    import pyarrow.compute as pc

    specials = Vocab.from_tokens([], size)  # also checks size >= the number of specials
    counts = pc.value_counts(train_tokens.flatten())
    tokens, n = counts.field("values").to_pylist(), counts.field("counts").to_numpy()
    order = sorted(range(len(tokens)), key=lambda i: (-int(n[i]), tokens[i]))[: size - len(specials)]
    return Vocab(
        itos=specials.itos + [tokens[i] for i in order],
        kind=specials.kind,
        bos_id=specials.bos_id,
        eos_id=specials.eos_id,
        pad_id=specials.pad_id,
        unk_id=specials.unk_id,
    )


def frame(ids: np.ndarray, lengths: np.ndarray, bos: int, eos: int, max_seq_len: int):
    """Token ids of all functions end to end + each one's length -> each as BOS ids EOS, cut to
    max_seq_len + 1 tokens (so x and y have at most max_seq_len positions): (flat ids, sizes)."""
    keep = max_seq_len + 1
    content = np.minimum(lengths, keep - 1)
    sizes = 1 + content + (lengths + 2 <= keep)
    out_start = np.cumsum(sizes) - sizes
    in_start = np.cumsum(lengths) - lengths
    flat = np.full(int(sizes.sum()), eos, dtype=np.int32)
    flat[out_start] = bos
    within = np.arange(int(content.sum())) - np.repeat(np.cumsum(content) - content, content)
    flat[np.repeat(out_start + 1, content) + within] = ids[np.repeat(in_start, content) + within]
    return flat, sizes.astype(np.int64)


# ---------------------------------------------------------------- reading rows by split
class CodeSearchNetRows:
    """Reading CodeSearchNet-format rows by split, for the datamodules of this format (this language model;
    code search in code_search.py). Mixed into a datamodule that sets ``path``, ``hub``, ``language``,
    ``data_dir``, ``cache_dir``, ``skip_bad_rows`` and ``facts`` (data facts for metrics.json)."""

    path: str | Sequence[str] | None
    hub: str | None
    language: str
    data_dir: Path
    cache_dir: str | None
    skip_bad_rows: bool
    facts: dict

    def source(self) -> tuple[str, list[Path] | None]:
        """(description, data files); files are None for the hub."""
        if self.hub:
            return f"hub:{self.hub}/{self.language}", None
        if self.path:
            return str(self.path), resolve_files(self.path)
        from sweeplab.data.stdlib_corpus import ensure_corpus

        root, manifest = ensure_corpus(self.data_dir)
        self.facts.update(
            corpus_functions=manifest["functions"],
            corpus_tokens=manifest["tokens"],
            corpus_files=manifest["files"],
            corpus_python=manifest["python"],
        )
        return f"stdlib corpus {root}", resolve_files(str(root / self.language / "final" / "jsonl"))

    def data_files(self) -> list[Path]:
        """The files a run reads, for its identity (no loading). The stdlib corpus and the hub copy are named by
        the config alone (and the interpreter that built the corpus, in its manifest)."""
        return resolve_files(self.path) if self.path and not self.hub else []

    def load_columns(self, lists: Sequence[str] = TOKEN_LISTS, columns: Sequence[str] = ()) -> dict[str, dict]:
        """By split, ``{name: pyarrow array}``: each of ``lists`` as list<string> (required in every row) and
        each of ``columns`` as strings ("" where a file has no such field). No Python lists: counting and
        encoding run in Arrow, which keeps the full 400k-function CodeSearchNet fast."""
        import pyarrow.compute as pc

        what, files = self.source()
        self.facts["source"] = what
        if files is None:
            return self._load_hub(lists, columns)
        groups: dict[str, list[Path]] = {}
        for f in files:
            groups.setdefault(split_from_path(f) or "mixed", []).append(f)
        # Empty files hold no rows (datasets fails on a split made of them only): leave them out.
        nonempty = {k: [f for f in v if has_rows(f)] for k, v in groups.items()}
        for s in SPLITS:
            if s in groups and not nonempty[s] and "mixed" not in groups:
                raise DataError(f"the {s} partition is empty ({', '.join(map(str, groups[s]))})")
        groups = {k: v for k, v in nonempty.items() if v}
        if not groups:
            raise DataError(f"{what}: every data file is empty")
        tables = self._load_json(groups, lists)
        parts: dict[str, list] = {s: [] for s in SPLITS}
        for name, table in tables.items():
            if name != "mixed":
                parts[name].append(table)
                continue
            if "partition" not in table.column_names:
                raise DataError(
                    f"{groups['mixed'][0]}: the split is neither in the path (train/valid/test) "
                    f"nor in a 'partition' field"
                )
            partition = table.column("partition")
            for label, split in PARTITION_NAMES.items():
                chosen = table.filter(pc.equal(partition, label))
                if len(chosen):
                    parts[split].append(chosen)
        out = {}
        for s in SPLITS:
            if not sum(len(t) for t in parts[s]):
                where = ", ".join(str(f) for f in groups.get(s, []) or groups.get("mixed", [])) or what
                raise DataError(f"the {s} partition is empty ({where})")
            out[s] = _select(parts[s], lists, columns)
        return out

    def _load_json(self, groups: dict[str, list[Path]], lists: Sequence[str]):
        """pyarrow tables by split through datasets' json loader (cached); bad lines are located by a plain
        scan only when the fast path fails, then reported or (skip_bad_rows) dropped from cleaned copies."""
        import datasets

        datasets.disable_progress_bars()
        data_files = {k: [str(f) for f in v] for k, v in groups.items()}
        dd, err = None, None
        try:
            dd = datasets.load_dataset("json", data_files=data_files, cache_dir=self.cache_dir)
            ok = all(_lists_ok(d, lists) for d in dd.values())
        except Exception as e:
            ok, err = False, e
        if ok:
            self.facts["bad_rows"] = 0
            return {k: d.data.table if hasattr(d.data, "table") else d.data for k, d in dd.items()}
        found = {f: bad_lines(f, lists=lists) for fs in groups.values() for f in fs}
        found = {f: b for f, b in found.items() if b}
        if not found:
            cause = str((err.__cause__ or err) if err else f"no list of strings under {lists[0]}").strip()
            files = ", ".join(str(f) for fs in groups.values() for f in fs)
            raise DataError(f"{files}: cannot load: {cause.splitlines()[0] if cause else type(err).__name__}")
        n_bad = sum(len(b) for b in found.values())
        f, b = next(iter(found.items()))
        where = f"{f}:{b[0][0]}" if b[0][0] else str(f)
        if not self.skip_bad_rows:
            raise DataError(
                f"{where}: {b[0][1]} ({n_bad} bad line{'s' * (n_bad > 1)} in {len(found)} "
                f"file{'s' * (len(found) > 1)}; data.skip_bad_rows=true skips them)"
            )
        if any(line == 0 for bb in found.values() for line, _ in bb):
            raise DataError(f"{where}: {b[0][1]}")
        log.warning("skipping %d bad line(s) in %d file(s), first %s: %s", n_bad, len(found), where, b[0][1])
        cleaned = self.data_dir / "cleaned"
        groups = {
            k: [_cleaned_copy(f, {n for n, _ in found[f]}, cleaned) if f in found else f for f in v]
            for k, v in groups.items()
        }
        dd = datasets.load_dataset(
            "json", data_files={k: [str(f) for f in v] for k, v in groups.items()}, cache_dir=self.cache_dir
        )
        self.facts["bad_rows"] = n_bad
        return {k: d.data.table if hasattr(d.data, "table") else d.data for k, d in dd.items()}

    def _load_hub(self, lists: Sequence[str], columns: Sequence[str]) -> dict[str, dict]:
        import datasets

        datasets.disable_progress_bars()
        try:
            dd = datasets.load_dataset(self.hub, self.language, cache_dir=self.cache_dir)
        except Exception as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise DataError(f"data.hub={self.hub}: cannot load ({msg})") from None
        out = {}
        for name, d in dd.items():
            d = d.rename_columns({k: v for k, v in HUB_COLUMNS.items() if k in d.column_names})
            for field in lists:
                if field not in d.column_names:
                    raise DataError(f"data.hub={self.hub}: the {name} split has no {field}")
            table = d.data.table if hasattr(d.data, "table") else d.data
            out[PARTITION_NAMES.get(name, name)] = _select([table], lists, columns)
        for s in SPLITS:
            if s not in out or not len(out[s][lists[0]]):
                raise DataError(f"data.hub={self.hub}: the {s} partition is empty")
        return out


def _lists_ok(d, lists: Sequence[str]) -> bool:
    import pyarrow as pa

    for name in lists:
        if name not in d.column_names:
            return False
        col = d.data.column(name)
        if not (
            (pa.types.is_list(col.type) or pa.types.is_large_list(col.type))
            and pa.types.is_string(col.type.value_type)
            and col.null_count == 0
        ):
            return False
    return True


def _select(tables: list, lists: Sequence[str], columns: Sequence[str]) -> dict:
    """One split's tables -> {name: one array}: the token lists as list<string>, the other columns as strings."""
    import pyarrow as pa
    import pyarrow.compute as pc

    out = {name: _combine([c for t in tables for c in t.column(name).chunks]) for name in lists}
    for name in columns:
        parts = [
            pc.fill_null(t.column(name).cast(pa.string()), "")
            if name in t.column_names
            else pa.array([""] * len(t), type=pa.string())
            for t in tables
        ]
        out[name] = pa.chunked_array([c for p in parts for c in getattr(p, "chunks", [p])]).combine_chunks()
    return out


# ---------------------------------------------------------------- the datamodule
class CodeSearchNetDataModule(CodeSearchNetRows, pl.LightningDataModule):
    def __init__(
        self,
        *,
        path: str | Sequence[str] | None,
        hub: str | None,
        language: str,
        data_dir: str,
        cache_dir: str | None,
        vocab_size: int,
        max_seq_len: int,
        batch_tokens: int,
        skip_bad_rows: bool,
        block_size: int,
        adaptive_cutoffs: Sequence[int] | None,
        num_workers: int,
        tbptt_steps: int | None,
    ):
        super().__init__()
        if vocab_size < MIN_VOCAB:
            raise DataError(
                f"data.vocab_size={vocab_size} is too small: it must be at least {MIN_VOCAB} (PAD, UNK, EOS, BOS)"
            )
        if batch_tokens < max_seq_len:
            raise DataError(
                f"data.batch_tokens={batch_tokens} cannot hold one sequence of data.max_seq_len="
                f"{max_seq_len} tokens: raise batch_tokens or lower max_seq_len"
            )
        self.path, self.hub, self.language = path, hub, language
        self.data_dir = Path(os.path.expanduser(data_dir))
        self.cache_dir = os.path.expanduser(cache_dir) if cache_dir else None
        self.vocab_size, self.max_seq_len, self.batch_tokens = vocab_size, max_seq_len, batch_tokens
        self.skip_bad_rows, self.num_workers = skip_bad_rows, num_workers
        # Read by the models' and task's configs, not here: model.block_size (fixed-context models, as for
        # names), model.adaptive_cutoffs (the output layer's clusters, in vocabulary ranks), task.tbptt_steps.
        self.block_size, self.adaptive_cutoffs = block_size, adaptive_cutoffs
        self.tbptt_steps = tbptt_steps  # read by the task's config (truncated BPTT chunks), not here
        self.vocab: Vocab | None = None
        self.splits: dict[str, PackedPairs] = {}
        self.facts: dict = {}

    def load_token_lists(self) -> dict:
        """``code_tokens`` of every function by split, as pyarrow list<string> arrays."""
        return {s: cols["code_tokens"] for s, cols in self.load_columns(TOKEN_LISTS).items()}

    # -------------------------------------------------------------- setup
    def setup(self, stage: str | None = None) -> None:
        if not self.splits:
            self._build()

    def _build(self) -> None:
        import pyarrow.compute as pc

        token_lists = self.load_token_lists()
        if self.vocab is None:  # a vocabulary restored from a checkpoint wins
            self.vocab = build_vocab(token_lists["train"], self.vocab_size)
        v = self.vocab
        itos = pa_strings(v.itos)
        facts = self.facts
        for split, lists in token_lists.items():
            lengths = pc.list_value_length(lists).to_numpy(zero_copy_only=False).astype(np.int64)
            ids = pc.index_in(lists.flatten(), value_set=itos)  # null where the token is not in the vocab
            n_unk = ids.null_count
            ids = pc.fill_null(ids, v.unk_id).to_numpy(zero_copy_only=False).astype(np.int32)
            flat, sizes = frame(ids, lengths, v.bos_id, v.eos_id, self.max_seq_len)
            self.splits[split] = PackedPairs(torch.from_numpy(flat), torch.from_numpy(sizes), v.pad_id)
            facts[f"{split}_functions"] = len(lengths)
            facts[f"{split}_tokens"] = int(lengths.sum())
            facts[f"{split}_truncated"] = round(float((lengths + 1 > self.max_seq_len).mean()), 5)
            facts[f"{split}_unk_rate"] = round(n_unk / max(int(lengths.sum()), 1), 5)
        sampler = self._sampler("train", shuffle=True)
        facts["train_batches"] = len(sampler)
        facts["padding_fraction"] = round(sampler.padding_fraction(), 5)
        facts["vocab_size"] = len(v)
        facts["unigram_val_loss"] = self.unigram_loss("valid")
        log.info(
            "codesearchnet: %s functions (train/valid/test %s/%s/%s), %s train tokens, vocab %s, "
            "train UNK rate %.2f%%, padding %.2f%% in %s train batches of <= %s tokens",
            f"{sum(facts[f'{s}_functions'] for s in SPLITS):,}",
            *(f"{facts[f'{s}_functions']:,}" for s in SPLITS),
            f"{facts['train_tokens']:,}",
            f"{len(v):,}",
            100 * facts["train_unk_rate"],
            100 * facts["padding_fraction"],
            facts["train_batches"],
            self.batch_tokens,
        )

    # -------------------------------------------------------------- contract (docs/ARCHITECTURE.md)
    def model_kwargs(self) -> dict:
        return {"vocab_size": len(self.vocab), "max_len": max(int(d.lengths.max()) for d in self.splits.values())}

    def stats(self) -> dict:
        return dict(self.facts)

    def unigram_loss(self, split: str) -> float:
        """NLL (nats/token) of an add-one unigram fitted on train: the floor any real model must beat."""
        train, other = self.splits["train"], self.splits[split]
        counts = torch.bincount(self._targets(train), minlength=len(self.vocab)).double() + 1.0
        logp = (counts / counts.sum()).log()
        return round(float(-logp[self._targets(other)].mean()), 5)

    @staticmethod
    def _targets(d: PackedPairs) -> torch.Tensor:
        """Every predicted token of a split: all stored tokens but each sequence's BOS."""
        mask = torch.ones(len(d.flat), dtype=torch.bool)
        mask[d.offsets] = False
        return d.flat[mask].long()

    def state_dict(self) -> dict:
        return {"vocab": self.vocab.state_dict()} if self.vocab else {}

    def load_state_dict(self, state: dict) -> None:
        if "vocab" in state:
            self.vocab = Vocab.from_state(state["vocab"])

    # -------------------------------------------------------------- loaders
    def _sampler(self, split: str, shuffle: bool) -> TokenBudgetSampler:
        # Seeded from torch's seed (set from cfg.seed by the run): the same batches for the same seed.
        return TokenBudgetSampler(
            self.splits[split].lengths, self.batch_tokens, shuffle=shuffle, seed=torch.initial_seed() % 2**31
        )

    def _loader(self, split: str, shuffle: bool):
        data = self.splits[split]
        return batch_loader(data, 0, shuffle, self.num_workers, batch_sampler=self._sampler(split, shuffle))

    def train_dataloader(self):
        # Lightning turns shuffling off for trainer.overfit_batches by swapping the loader's sampler, which a
        # batch_sampler that shuffles itself does not have: the same batches every epoch, as on other data.
        return self._loader("train", not (self.trainer and self.trainer.overfit_batches))

    def val_dataloader(self):
        return self._loader("valid", False)

    def test_dataloader(self):
        return self._loader("test", False)
