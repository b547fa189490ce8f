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
    top_p, greedy, beam_size, length_penalty, prefix, max_new_tokens, seed, accelerator. Sampling gives
    num_samples texts, greedy decoding one, beam search its beam_size best. A prefix with characters (or
    tokens) outside the vocabulary warns once, naming them: the model reads them as <unk>."""
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
            net,
            ids,
            vocab.eos_id,
            beam_size=opts.beam_size,
            max_new_tokens=max_new,
            length_penalty=opts.length_penalty,
            max_len=max_len,
            banned=banned,
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


# ---------------------------------------------------------------- ensembles
# Data keys that change how batches are cut, not which items each split holds.
LOADER_KEYS = ("batch_size", "batch_tokens", "num_workers")


def _data_config(r: Restored) -> dict:
    return {k: v for k, v in OmegaConf.to_container(r.cfg.data).items() if k not in LOADER_KEYS}


def _same_data(restored: list[Restored]) -> None:
    """Members of an ensemble must read the same splits with the same vocabulary (or classes): the first one's
    test split is then no other's training data."""
    first = restored[0]
    for other in restored[1:]:
        for what, a, b in (
            ("task", first.task_name(), other.task_name()),
            ("data config", _data_config(first), _data_config(other)),
            ("vocabulary", first.datamodule_state.get("vocab"), other.datamodule_state.get("vocab")),
            ("data facts", first.meta.get("model_kwargs"), other.meta.get("model_kwargs")),
        ):
            if a != b:
                keys = [k for k in {**a, **b} if a.get(k) != b.get(k)] if what == "data config" else []
                which = f" (data.{keys[0]}: {a.get(keys[0])!r} vs {b.get(keys[0])!r})" if keys else ""
                raise RestoreError(
                    f"cannot ensemble {first.checkpoint} and {other.checkpoint}: their {what} differs{which}; "
                    "the members must be trained on the same splits of the same data set"
                )


def evaluate_ensemble(runs: list[str | Path], split: str = "test", accelerator: str = "auto") -> dict:
    """The members' and the ensemble's metrics on ``split`` of their shared data set, in one pass over it.
    The ensemble averages the members' probabilities: per token for a language model (its loss is
    -log of the mean probability of each target), per image for a classifier (accuracy, macro-F1 and AUC of
    the mean). Returns ``{"members": [metrics, ...], "ensemble": metrics}`` (keys like ``test/loss``)."""

    from sweeplab.constants import IGNORE_INDEX

    if split not in ("test", "val"):
        raise ConfigError(f"split={split!r} is not allowed: choose one of test, val")
    device = _device(accelerator)
    restored = [restore(r) for r in runs]
    _same_data(restored)
    dm = build_datamodule(restored[0])
    dm.prepare_data()
    dm.setup("test" if split == "test" else "validate")
    loader = dm.test_dataloader() if split == "test" else dm.val_dataloader()
    nets = [r.net.to(device).eval() for r in restored]
    k = len(nets)
    language_model = "vocab" in restored[0].datamodule_state
    if language_model:
        return _ensemble_lm(nets, loader, device, split, IGNORE_INDEX)
    return _ensemble_classifier(nets, loader, device, split, list(getattr(dm, "class_names", []) or []), k)


def _target_logprobs(net, x, y):
    from sweeplab.models.base import gather_targets

    return net.target_logprobs(x, y) if hasattr(net, "target_logprobs") else gather_targets(net(x), y)


def _lm_metrics(split: str, nll: float) -> dict[str, float]:
    import math

    return {f"{split}/loss": nll, f"{split}/ppl": math.exp(nll), f"{split}/bpc": nll / math.log(2)}


def _ensemble_lm(nets, loader, device, split: str, ignore: int) -> dict:

    import torch

    with torch.no_grad():
        return _ensemble_lm_pass(nets, loader, device, split, ignore)


def _ensemble_lm_pass(nets, loader, device, split: str, ignore: int) -> dict:
    import math

    import torch

    member = torch.zeros(len(nets), dtype=torch.float64)
    ensemble, count = 0.0, 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        keep = y != ignore
        lp = torch.stack([_target_logprobs(net, x, y).float() for net in nets])  # [k, B, T]
        mean_lp = torch.logsumexp(lp, 0) - math.log(len(nets))  # log of the mean probability
        member -= (lp * keep).sum((1, 2)).double().cpu()
        ensemble -= float((mean_lp * keep).sum())
        count += int(keep.sum())
    count = max(count, 1)
    return {
        "members": [_lm_metrics(split, float(m) / count) for m in member],
        "ensemble": _lm_metrics(split, ensemble / count),
    }


def _ensemble_classifier(nets, loader, device, split: str, class_names: list[str], k: int) -> dict:
    import torch

    with torch.no_grad():
        return _ensemble_classifier_pass(nets, loader, device, split, class_names, k)


def _ensemble_classifier_pass(nets, loader, device, split: str, class_names: list[str], k: int) -> dict:
    import torch

    from sweeplab.tasks.classifier import compute_metrics, eval_metrics

    collections = None
    nll = torch.zeros(k + 1, dtype=torch.float64)
    count = 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        probs = torch.stack([net(x).float().softmax(-1) for net in nets])  # [k, B, C]
        probs = torch.cat([probs, probs.mean(0, keepdim=True)])  # the ensemble last
        if collections is None:
            names = class_names or [str(c) for c in range(probs.shape[-1])]
            collections = [eval_metrics(probs.shape[-1]).to(device) for _ in range(k + 1)]
        for metrics, p in zip(collections, probs):
            metrics.update(p, y)
        picked = probs.gather(-1, y[None, :, None].expand(k + 1, -1, 1)).squeeze(-1)
        nll -= picked.clamp(min=1e-12).log().sum(1).double().cpu()
        count += len(y)
    out = []
    for i, metrics in enumerate(collections or []):
        res = compute_metrics(metrics, names)
        out.append(
            {f"{split}/loss": float(nll[i]) / max(count, 1), **{f"{split}/{m}": res[m] for m in ("acc", "f1", "auc")}}
        )
    return {"members": out[:-1], "ensemble": out[-1] if out else {}}
