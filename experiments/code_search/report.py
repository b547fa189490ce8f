"""Markdown table and everyday searches for the runs of run.sh: python report.py <dir holding the run dirs>."""

from __future__ import annotations

import json
import re
import sys
import warnings
from pathlib import Path

from sweeplab.api import search

ORDER = ["bm25", "nbow", "cnn_encoder", "birnn", "self_attention"]
# CodeSearchNet paper (Husain et al. 2019), Table 3, Python test MRR (1,000-pair batches, 412k train pairs).
PUBLISHED = {"nbow": 0.58, "cnn_encoder": 0.57, "birnn": 0.32, "self_attention": 0.69}
QUERIES = [
    "read a csv file",
    "sort a list by key",
    "parse a date string",
    "send an email",
    "compute the md5 hash of a file",
    "remove a directory tree",
    "url encode a query string",
    "find the longest common prefix",
]


def train_seconds(run: Path) -> float | None:
    """Seconds from the Trainer's start to the end of the last validation (the run's last epoch line)."""
    log = run / "train.log"
    times = re.findall(r"epoch \d+ step \d+ \|.*\| ([\d.]+)s$", log.read_text(), re.M) if log.is_file() else []
    return float(times[-1]) if times else None


def main(root: Path) -> None:
    runs = [(json.loads((d / "metrics.json").read_text()), d) for d in root.iterdir() if (d / "metrics.json").is_file()]
    runs = [(m, d) for m, d in runs if m["status"] == "completed"]  # a run still going, or failed, is left out
    runs.sort(key=lambda r: ORDER.index(r[0]["choices"]["model"]) if r[0]["choices"]["model"] in ORDER else 99)
    data = runs[0][0]["data"]
    source = str(data["source"]).replace(str(Path.home()), "~")  # committed results name no home dir
    per_split = lambda key: " / ".join(f"{data[f'{s}_{key}']:,}" for s in ("train", "valid", "test"))  # noqa: E731
    print(
        f"Corpus: {source}: {data.get('corpus_functions', '?'):,} functions; with a docstring (train / valid / "
        f"test): {per_split('with_docstring')}; (docstring, code) pairs "
        f"(docstring of at least 3 tokens): {per_split('pairs')}; "
        f"vocabulary {data['vocab_size']:,} subtokens; test UNK rate {data['test_query_unk_rate']:.1%} (queries), "
        f"{data['test_code_unk_rate']:.1%} (code).\n"
    )
    print(
        f"MRR: test {data['test_pairs']:,} queries, each ranked once against {data['test_distractors']:,} "
        f"distractors ({data['test_eval_batches']} batches of {data['test_eval_batch']:,}; the last is the split's "
        f"last {data['test_eval_batch']:,} pairs, only its queries not ranked yet scored); validation "
        f"{data['valid_pairs']:,} queries against {data['valid_distractors']:,} (one batch: fewer than 1,000 "
        "pairs).\n"
    )
    print(
        "| model | test MRR | test R@1 | R@5 | R@10 | val MRR | CodeSearchNet Python MRR (published) | parameters "
        "| epochs | lr | train + val (s) | whole run (s) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for m, d in runs:
        f, name = m["final"], m["choices"]["model"]
        lr = next((o.split("=", 1)[1] for o in m["overrides"] if o.startswith("optimizer.lr=")), "-")
        t = train_seconds(d)
        print(
            f"| {name} | {f['test/mrr']:.3f} | {f['test/recall@1']:.3f} | {f['test/recall@5']:.3f} | "
            f"{f['test/recall@10']:.3f} | {m['best']['val/mrr']:.3f} | {PUBLISHED.get(name, '-')} | "
            f"{m['params']:,} | {m['epochs']} | {lr if m['params'] else '-'} | "
            f"{f'{t:.0f}' if t is not None and m['params'] else '-'} | {m['duration_s']:.0f} |"
        )
    neural = [(m, d) for m, d in runs if m["params"]]
    best = max(neural, key=lambda r: r[0]["final"]["test/mrr"]) if neural else None
    shown = [r for r in runs if r[0]["choices"]["model"] == "bm25"] + ([best] if best else [])
    for m, d in shown:
        print(f"\n### `sweeplab-search` with {m['choices']['model']} (top 3)\n")
        for q in QUERIES:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                found = search(d, q, top_k=3, lines=0, accelerator="cpu")
            note = f" ({caught[0].message})" if caught else ""
            hits = "; ".join(f"`{f['func_name']}` ({f['path']}, {f['score']:.2f})" for f in found)
            print(f'- "{q}"{note}: {hits}')


if __name__ == "__main__":
    main(Path(sys.argv[1]))
