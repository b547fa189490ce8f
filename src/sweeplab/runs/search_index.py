"""Code search over a trained run's corpus: the index of every function (the code encoder's vectors, or
BM25's term statistics), cached beside the run and keyed by the checkpoint and the data config, and the
search itself. ``sweeplab-search`` (search.py) and ``api.search`` call :func:`search`."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sweeplab.config import apps

PROG = "sweeplab-search"
INDEX_VERSION = 1  # bump when the cached files change
KEPT_LINES = 30  # lines of each function's code kept in the index (the most `lines` shows)
ENCODE_BATCH = 256
SEARCH_TASK = "CodeSearchTask"


# ---------------------------------------------------------------- indexes
class DenseIndex:
    """The code encoder's unit vectors of every function [N, D]; a query's scores are its encoder's."""

    FILE = "vectors.npy"

    def __init__(self, vectors):
        self.vectors = vectors

    @classmethod
    def build(cls, net, corpus, device) -> DenseIndex:
        import torch

        order = torch.argsort(corpus.code.lengths, descending=True)  # similar lengths together: less padding
        parts = []
        with torch.inference_mode():
            for start in range(0, len(order), ENCODE_BATCH):
                rows = order[start : start + ENCODE_BATCH]
                parts.append(net.encode_code(corpus.code.batch(rows).to(device)).float().cpu())
        vectors = torch.empty(len(order), parts[0].shape[1])
        vectors[order] = torch.cat(parts)
        return cls(vectors)

    def scores(self, net, ids: list[int], device):
        import torch

        with torch.inference_mode():
            q = net.encode_query(torch.tensor([ids], device=device)).float().cpu()
            return net.score(q, self.vectors)[0]

    def save(self, path: Path) -> None:
        import numpy as np

        np.save(path / self.FILE, self.vectors.numpy(), allow_pickle=False)

    @classmethod
    def load(cls, path: Path) -> DenseIndex:
        import numpy as np
        import torch

        return cls(torch.from_numpy(np.load(path / cls.FILE, allow_pickle=False)))


class BM25Index:
    """bm25s's index of every function's code tokens (saved with its own files, no pickles)."""

    DIR = "bm25"

    def __init__(self, retriever):
        self.retriever = retriever

    @classmethod
    def build(cls, net, corpus, device) -> BM25Index:
        lengths, flat = corpus.code.lengths.tolist(), corpus.code.flat.tolist()
        docs, start = [], 0
        for n in lengths:
            docs.append(flat[start : start + n])
            start += n
        return cls(net.index(docs))

    def scores(self, net, ids: list[int], device):
        return net.scores(self.retriever, [ids])[0]

    def save(self, path: Path) -> None:
        self.retriever.save(str(path / self.DIR), show_progress=False)

    @classmethod
    def load(cls, path: Path) -> BM25Index:
        from sweeplab.models.bm25 import bm25s

        return cls(bm25s().BM25.load(str(path / cls.DIR), show_progress=False))


def index_class(net):
    from sweeplab.models.bm25 import BM25

    return BM25Index if isinstance(net, BM25) else DenseIndex


# ---------------------------------------------------------------- the cache beside the run
def index_dir(run: Path, checkpoint: Path) -> Path:
    """``<run dir>/search_index/<checkpoint name>``; for a checkpoint outside a run dir, beside it."""
    if run.is_dir():
        root = run
    elif checkpoint.parent.name == "checkpoints":
        root = checkpoint.parent.parent
    else:
        root = checkpoint.parent
    return root / "search_index" / checkpoint.stem


def index_key(checkpoint: Path, data_cfg: DictConfig, kind: str) -> str:
    stat = checkpoint.stat()
    identity = {
        "version": INDEX_VERSION,
        "kind": kind,
        "checkpoint": [str(checkpoint.resolve()), stat.st_size, stat.st_mtime_ns],
        "data": OmegaConf.to_container(data_cfg, resolve=True),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def _shown(corpus) -> list[dict]:
    out = []
    for i in range(len(corpus)):
        row = {k: corpus.shown[k][i] for k in corpus.shown}
        row["code"] = "\n".join(row["code"].splitlines()[:KEPT_LINES])
        row["split"] = corpus.split[i]
        out.append(row)
    return out


def load_or_build(restored, dm, data_cfg: DictConfig, where: Path, rebuild: bool, device):
    """(index, functions): from the cache when its key matches, else built from the corpus and cached
    (written to a temporary folder, then renamed into place). An unwritable run dir: built, not cached."""
    from sweeplab.io import read_json, write_json

    kind = index_class(restored.net)
    key = index_key(restored.checkpoint, data_cfg, kind.__name__)
    meta = read_json(where / "meta.json") if (where / "meta.json").is_file() else None
    if not rebuild and isinstance(meta, dict) and meta.get("key") == key:
        return kind.load(where), json.loads((where / "functions.json").read_text(encoding="utf-8"))
    corpus = dm.corpus()
    print(f"{PROG}: indexing {len(corpus):,} functions (once; cached in {where})", file=sys.stderr, flush=True)
    index = kind.build(restored.net.to(device), corpus, device)
    functions = _shown(corpus)
    tmp = where.with_name(f".{where.name}.{os.getpid()}.tmp")
    try:
        tmp.mkdir(parents=True, exist_ok=True)
        index.save(tmp)
        (tmp / "functions.json").write_text(json.dumps(functions, ensure_ascii=False), encoding="utf-8")
        write_json(tmp / "meta.json", {"key": key, "functions": len(functions), "checkpoint": str(restored.checkpoint)})
        shutil.rmtree(where, ignore_errors=True)
        os.replace(tmp, where)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        warnings.warn(f"cannot cache the index in {where}: {e.strerror or e}; it is rebuilt next time", stacklevel=2)
    return index, functions


# ---------------------------------------------------------------- searching
def search(run: str | Path, query: str, **options: Any) -> list[dict]:
    """The ``top_k`` functions of the run's corpus that best match ``query``, best first: dicts with rank,
    score, func_name, path, url, split and code (its first lines). Options: top_k, lines, data (overrides of
    the run's data config), rebuild, accelerator. Raises ConfigError / RestoreError (one line) for a bad
    option, an empty query, a query with no known word, or a run of another task."""
    from sweeplab.errors import ConfigError, RestoreError
    from sweeplab.runs.inference import _device
    from sweeplab.runs.restore import build_datamodule, restore

    opts = apps.app_options("search", {**options, "run": str(run), "query": query})
    if not opts.query.strip():
        raise ConfigError(f'no query given: {PROG} <run dir or .ckpt> "<what to look for>" [key=value ...]')
    device = _device(opts.accelerator)
    restored = restore(opts.run)
    if restored.task_name() != SEARCH_TASK:
        raise RestoreError(
            f"{restored.checkpoint} is not a code-search checkpoint: its task is {restored.task_name()} "
            f"(data={restored.choices.get('data')}); {PROG} needs a run of data=code_search"
        )
    overrides = OmegaConf.to_container(opts.data)
    dm = build_datamodule(restored, overrides)
    ids = dm.encode_query(opts.query)
    tokens = dm.tokenizer.query(opts.query)
    known = [i for i in ids if i != dm.vocab.unk_id]
    if not known:
        raise ConfigError(
            f"query {opts.query!r} has no word the model knows"
            + (f" ({', '.join(map(repr, tokens[:8]))} are not in its vocabulary)" if tokens else "")
        )
    unknown = sorted({t for t in tokens if t not in dm.vocab.stoi})
    if unknown:
        warnings.warn(f"query words not in the model's vocabulary, ignored: {', '.join(unknown)}", stacklevel=2)
    data_cfg = OmegaConf.merge(restored.cfg.data, OmegaConf.create(overrides))
    index, functions = load_or_build(
        restored, dm, data_cfg, index_dir(Path(opts.run), restored.checkpoint), opts.rebuild, device
    )
    scores = index.scores(restored.net, ids, device)
    top = scores.topk(min(opts.top_k, len(functions)))
    out = []
    for rank, (score, i) in enumerate(zip(top.values.tolist(), top.indices.tolist()), 1):
        f = functions[i]
        code = "\n".join(f["code"].splitlines()[: opts.lines])
        out.append({"rank": rank, "score": score, **{k: v for k, v in f.items() if k != "code"}, "code": code})
    return out
