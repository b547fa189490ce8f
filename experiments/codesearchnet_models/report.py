"""Markdown table and samples for the runs of run.sh: python report.py <dir holding the run dirs>."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from sweeplab.runs.inference import generate

PREFIX = "def train ("
ORDER = ["kn_ngram", "cnn", "lstm", "transformer"]


def epoch_seconds(run: Path) -> float | None:
    """Seconds from the Trainer's start to the end of epoch 0's validation (the run's log line)."""
    log = run / "train.log"
    times = re.findall(r"epoch 0 step \d+ \|.*\| ([\d.]+)s$", log.read_text(), re.M) if log.is_file() else []
    return float(times[-1]) if times else None


def main(root: Path) -> None:
    runs = [(json.loads((d / "metrics.json").read_text()), d) for d in root.iterdir() if (d / "metrics.json").is_file()]
    runs.sort(key=lambda r: ORDER.index(r[0]["choices"]["model"]) if r[0]["choices"]["model"] in ORDER else 99)
    data = runs[0][0]["data"]
    source = str(data["source"]).replace(str(Path.home()), "~")  # committed results name no home dir
    print(
        f"Corpus: {source}: {data.get('corpus_functions', '?'):,} functions, "
        f"{data.get('corpus_tokens', '?'):,} tokens; train/valid/test {data['train_functions']:,} / "
        f"{data['valid_functions']:,} / {data['test_functions']:,} functions; vocabulary {data['vocab_size']:,}; "
        f"test UNK rate {data['test_unk_rate']:.1%}; padding {data['padding_fraction']:.2%} in "
        f"{data['train_batches']} train batches; add-one unigram val ppl "
        f"{2.718281828 ** data['unigram_val_loss']:.1f}.\n"
    )
    print("| model | lr | test ppl | val ppl | test loss (nats) | parameters | epoch 1 train+val (s) | whole run (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for m, d in runs:
        f = m["final"]
        lr = next((o.split("=", 1)[1] for o in m["overrides"] if o.startswith("optimizer.lr=")), "1e-3")
        e = epoch_seconds(d)
        print(
            f"| {m['choices']['model']} | {lr if m['params'] else '-'} | {f.get('test/ppl', float('nan')):.2f} | "
            f"{f.get('val/ppl', float('nan')):.2f} | {f.get('test/loss', float('nan')):.3f} | {m['params']:,} | "
            f"{e if e is not None else '?'} | {m['duration_s']:.0f} |"
        )
    for m, d in runs:
        print(f"\n### {m['choices']['model']}\n")
        for title, opts in (
            ("greedy", {"greedy": True, "prefix": PREFIX, "max_new_tokens": 48}),
            ("beam search, 4 beams", {"beam_size": 4, "prefix": PREFIX, "max_new_tokens": 48}),
            (
                "sampled, temperature 0.8, top-p 0.9",
                {"num_samples": 3, "temperature": 0.8, "top_p": 0.9, "prefix": PREFIX, "max_new_tokens": 48, "seed": 0},
            ),
        ):
            print(f"{title}:\n```python")
            print("\n\n".join(generate(d, **opts)))
            print("```")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
