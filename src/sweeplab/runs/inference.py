"""Evaluate and sample from a trained run, from its checkpoint alone: what sweeplab-eval and
sweeplab-generate do, as functions the Python API calls too (no Hydra global state needed).

Their options are the keys of conf/eval.yaml and conf/generate.yaml, whose values are the defaults: a
keyword argument not given takes that file's value, so each default has one home. Bad options raise
ConfigError, unusable runs RestoreError, both one line naming the culprit.
"""

from __future__ import annotations

import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from sweeplab.config.apps import app_options
from sweeplab.errors import ConfigError, RestoreError
from sweeplab.io import write_json
from sweeplab.runs.restore import Restored, build_datamodule, build_task, find_checkpoint, restore


def _device(accelerator: str):
    import torch

    if accelerator == "gpu" and not torch.cuda.is_available():
        raise ConfigError("accelerator=gpu, but torch sees no CUDA GPU here; use accelerator=cpu or auto")
    return torch.device("cuda" if accelerator != "cpu" and torch.cuda.is_available() else "cpu")


def quiet_lightning() -> None:
    """For the command line: Lightning's start-up lines (GPU available..., TPU available...) and a
    deprecation inside torch's pytree that Lightning triggers say nothing about the metrics."""
    import logging

    import pytorch_lightning  # noqa: F401 - it sets its logger's level on import: set ours after

    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*", category=FutureWarning)


# ---------------------------------------------------------------- evaluation
def evaluate(run: str | Path, **options: Any) -> dict[str, float]:
    """Metrics of ``run`` (a run dir or a .ckpt) on one split of its data set, e.g.
    ``evaluate(run, split="val", data={"path": "other.txt"})``. Options: split, data (overrides of the
    run's data config), accelerator, devices."""
    import pytorch_lightning as pl

    opts = app_options("eval", {**options, "run": str(run)})
    _device(opts.accelerator)  # a one-line error for a GPU that is not there, before the data is built
    restored = restore(opts.run)
    dm = build_datamodule(restored, OmegaConf.to_container(opts.data))
    dm.prepare_data()
    dm.setup("test" if opts.split == "test" else "validate")
    trainer = pl.Trainer(
        accelerator=opts.accelerator,
        devices=opts.devices,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    test = trainer.test if opts.split == "test" else trainer.validate
    results = test(build_task(restored), datamodule=dm, verbose=False)
    return {k: float(v) for k, v in (results[0] if results else {}).items()}


def save_evaluation(run: str | Path, metrics: dict[str, float], **options: Any) -> Path:
    """Write ``<run dir>/eval_<split>.json`` (atomically): the metrics, the checkpoint they came from and
    the data overrides. Raises OSError when the file cannot be written."""
    opts = app_options("eval", {**options, "run": str(run)})
    run_dir = Path(opts.run)
    checkpoint = find_checkpoint(run_dir)
    path = run_dir / f"eval_{opts.split}.json"
    write_json(
        path,
        {
            "split": opts.split,
            "checkpoint": str(checkpoint.relative_to(run_dir) if checkpoint.is_relative_to(run_dir) else checkpoint),
            "data_overrides": OmegaConf.to_container(opts.data),
            "metrics": metrics,
            "evaluated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
    )
    return path


# ---------------------------------------------------------------- generation
def _vocab(restored: Restored):
    from sweeplab.data.vocab import Vocab

    state = restored.datamodule_state.get("vocab")
    # A code-search run has a vocabulary too, but no task that generates (its task config has no max_new_tokens).
    if state is None or "max_new_tokens" not in restored.cfg.task:
        raise RestoreError(
            f"{restored.checkpoint} is not a language model's checkpoint: its task is {restored.task_name()} "
            f"(data={restored.choices.get('data')}), with nothing to generate from"
        )
    return Vocab.from_state(state)


def generate(run: str | Path, **options: Any) -> list[str]:
    """Texts continuing ``prefix`` from ``run`` (a run dir or a .ckpt), each with its prefix, e.g.
    ``generate(run, num_samples=5, temperature=0.8, top_k=5)``. Options: num_samples, temperature, top_k,
    top_p, greedy, beam_size, prefix, max_new_tokens, seed, accelerator. Sampling gives num_samples texts,
    greedy decoding one, beam search its beam_size best. A prefix with characters (or tokens) outside the
    vocabulary warns once, naming them: the model reads them as <unk>."""
    import torch

    from sweeplab.tasks.generation import beam_search, sample

    opts = app_options("generate", {**options, "run": str(run)})
    device = _device(opts.accelerator)
    restored = restore(opts.run)
    vocab = _vocab(restored)
    tokens = vocab.tokens(opts.prefix)
    prefix_ids = vocab.lookup(tokens)
    unknown = sorted({t for t, i in zip(tokens, prefix_ids) if t not in vocab.stoi})
    if unknown:
        what = "characters" if vocab.kind == "chars" else "tokens"
        if vocab.unk_id is None:
            raise ConfigError(f"prefix {what} not in the model's vocabulary: {', '.join(map(repr, unknown))}")
        warnings.warn(
            f"prefix {what} not in the model's vocabulary, read as <unk>: {', '.join(map(repr, unknown))}",
            UserWarning,
            stacklevel=2,
        )
    ids = [vocab.bos_id, *prefix_ids]
    max_len = restored.meta["model_kwargs"].get("max_len")
    # Predicting token j of the continuation reads the prefix and the j-1 tokens before it: within max_len.
    room = max_len + 1 - len(ids) if max_len else None
    if room is not None and room < 1:
        raise ConfigError(
            f"prefix is {len(prefix_ids)} tokens long: the model reads at most {max_len} tokens, BOS included, "
            f"so it must be at most {max_len - 1}"
        )
    if opts.max_new_tokens is None:  # the run's own setting, cut to what the model can read
        max_new = min(restored.cfg.task.max_new_tokens, room or restored.cfg.task.max_new_tokens)
    elif room is not None and opts.max_new_tokens > room:
        raise ConfigError(
            f"max_new_tokens={opts.max_new_tokens} is out of range: the model reads at most {max_len} tokens "
            f"and BOS and the prefix take {len(ids)}, so it must be <= {room}"
        )
    else:
        max_new = opts.max_new_tokens
    net = restored.net.to(device)
    banned = [i for i in (vocab.pad_id, vocab.bos_id, vocab.unk_id) if i is not None and i != vocab.eos_id]
    if opts.beam_size is not None:
        found = beam_search(
            net, ids, vocab.eos_id, beam_size=opts.beam_size, max_new_tokens=max_new, max_len=max_len, banned=banned
        )
        outs = [o for o, _ in found]
    else:
        outs = sample(
            net,
            ids,
            vocab.eos_id,
            num_samples=1 if opts.greedy else opts.num_samples,
            max_new_tokens=max_new,
            temperature=1.0 if opts.temperature is None else opts.temperature,
            top_k=opts.top_k,
            top_p=opts.top_p,
            greedy=opts.greedy,
            max_len=max_len,
            generator=torch.Generator(device=device).manual_seed(opts.seed),
            banned=banned,
        )
    return [vocab.decode(prefix_ids + o) for o in outs]
