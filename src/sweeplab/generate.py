"""sweeplab-generate: sample from a trained language model, using only what its checkpoint holds.

sweeplab-generate logs/train/runs/<run> num_samples=20 temperature=0.8 top_k=5 top_p=0.9
sweeplab-generate <run> prefix="def train (" beam_size=4
sweeplab-generate <run> greedy=true
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from sweeplab.config.schema import rng


@dataclass
class GenerateConf:
    num_samples: int = rng(20, ge=1)
    temperature: float = rng(1.0, gt=0)
    top_k: Optional[int] = rng(None, ge=1)
    top_p: Optional[float] = rng(None, gt=0, le=1)
    greedy: bool = False
    beam_size: Optional[int] = rng(None, ge=1)
    prefix: str = ""
    max_new_tokens: Optional[int] = rng(None, ge=1)
    seed: int = rng(0, ge=0)


def generate(target: str, opts: GenerateConf) -> list[str]:
    import torch

    from sweeplab.data.vocab import Vocab
    from sweeplab.runs.restore import RestoreError, build_network, find_checkpoint, load_checkpoint
    from sweeplab.tasks.generation import beam_search, sample

    ckpt = load_checkpoint(find_checkpoint(target))
    meta = ckpt["sweeplab"]
    if "vocab" not in meta:
        raise RestoreError(f"{target} is not a language model (its checkpoint has no vocabulary)")
    cfg, net = build_network(ckpt)
    vocab = Vocab.from_state(meta["vocab"])
    max_new = opts.max_new_tokens or cfg.task.get("max_new_tokens", 32)
    prefix_ids = vocab.encode(opts.prefix)
    ids = [vocab.bos_id] + prefix_ids
    banned = [i for i in (vocab.pad_id, vocab.bos_id, vocab.unk_id) if i is not None and i != vocab.eos_id]
    max_len = meta["model_kwargs"].get("max_len")
    if opts.beam_size:
        outs = [
            o
            for o, _ in beam_search(
                net, ids, vocab.eos_id, beam_size=opts.beam_size, max_new_tokens=max_new, max_len=max_len, banned=banned
            )
        ]
    else:
        gen = torch.Generator().manual_seed(opts.seed)
        outs = sample(
            net,
            ids,
            vocab.eos_id,
            num_samples=1 if opts.greedy else opts.num_samples,
            max_new_tokens=max_new,
            temperature=opts.temperature,
            top_k=opts.top_k,
            top_p=opts.top_p,
            greedy=opts.greedy,
            max_len=max_len,
            generator=gen,
            banned=banned,
        )
    return [vocab.decode(prefix_ids + o) for o in outs]


def main(argv: list[str] | None = None) -> None:
    from sweeplab.errors import ConfigError
    from sweeplab.runs.restore import target_cli

    def body(target: str, opts: GenerateConf, data_overrides: list[str]) -> None:
        if data_overrides:
            raise ConfigError(f"data options do not apply to generation: {data_overrides[0]}")
        for line in generate(target, opts):
            print(line)

    target_cli("sweeplab-generate", __doc__, argv, GenerateConf, body)


if __name__ == "__main__":
    main()
