"""The Lightning part of a job: data → network → task → Trainer → fit → test → the run's files.

``record.current`` (the attempt's results: best, final, history, ...) is filled as the run goes, so a failure
keeps what was learned before it.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from sweeplab.errors import ConfigError
from sweeplab.io import save_figure, write_json, write_text
from sweeplab.runs.context import RunContext
from sweeplab.runs.record import RunRecord

log = logging.getLogger("sweeplab")


def build_datamodule(cfg: DictConfig):
    return instantiate(cfg.data)


def fit_and_test(cfg: DictConfig, ctx: RunContext, dm, record: RunRecord, ckpt: str | None) -> None:
    from sweeplab.runs.builders import build_callbacks, build_loggers
    from sweeplab.runs.callbacks import RunHistory
    from sweeplab.runs.identity import flatten
    from sweeplab.runs.memory import tune_allocator
    from sweeplab.runs.plots import plot_curves
    from sweeplab.runs.pruning import search_callbacks
    from sweeplab.runs.resume import ResumeState, continue_csv_logs
    from sweeplab.runs.signals import GracefulStop
    from sweeplab.runs.threads import ThreadPolicy

    out = Path(ctx.run_dir)
    result = record.current
    stop = GracefulStop(out / "checkpoints" / "last.ckpt").install()
    try:
        tune_allocator()  # large tensors stay on the heap instead of an mmap per activation per step
        threads = ThreadPolicy(cfg.num_threads)  # one thread from here on; more at the first batch if they pay
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
        dm.prepare_data()
        dm.setup("fit")
        model_kwargs = dm.model_kwargs()
        check_memory(cfg, ctx, model_kwargs)
        net = instantiate(cfg.model, **model_kwargs)
        if cfg.compile.enabled:
            compile_network(net, cfg.compile)
        meta = {
            "config": OmegaConf.to_container(cfg, resolve=True),
            "model_kwargs": model_kwargs,
            "choices": dict(ctx.choices),
            # the vocabulary / class names are in the checkpoint once: Lightning saves dm.state_dict() under this
            "datamodule": type(dm).__qualname__,
        }
        # Objects go in after instantiation, so Hydra does not turn them (or meta) into configs.
        task = instantiate(cfg.task, _partial_=True)(
            net=net,
            optimizer=instantiate(cfg.optimizer, _convert_="all"),
            scheduler=instantiate(cfg.scheduler, _convert_="all"),
            loss=OmegaConf.to_container(cfg.loss),
            meta=meta,
        )
        params = sum(p.numel() for p in net.parameters() if p.requires_grad)
        history = RunHistory(
            monitor=cfg.monitor,
            check_every=cfg.trainer.log_every_n_steps,
            classes=model_kwargs.get("vocab_size") or model_kwargs.get("num_classes"),
            factor=cfg.divergence.factor,
            patience=cfg.divergence.patience,
            initial_tolerance=cfg.initial_loss.tolerance,
        )
        # The weight penalty (regularizer group) is a callback: it adds its gradient for any task.
        penalty = instantiate(cfg.regularizer) if task.trainable and cfg.get("regularizer") else None
        penalties = [penalty] if penalty is not None and penalty.active else []
        configured = build_callbacks(cfg, trainable=task.trainable)
        loggers = build_loggers(cfg, out)
        resumed_csv = out / "metrics.csv" if ckpt and (out / "metrics.csv").is_file() else None
        if resumed_csv:  # before anything touches the CSV logger, which would start metrics.csv over
            continue_csv_logs(loggers)  # resuming this run: metrics.csv goes on instead of starting over
        hparams = flatten(record.data.get("identity", {}).get("config", {}))
        for lg in loggers:  # trackers (MLflow, W&B, TensorBoard) show what each run was
            lg.log_hyperparams({k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in hparams.items()})
        if ckpt:
            # A checkpoint saved on a signal is mid-epoch: Lightning finishes that epoch with as many batches as
            # were left, drawn from a fresh shuffle, and warns so; ResumeState logs where the run goes on.
            warnings.filterwarnings("ignore", message=r".*resuming from a checkpoint that ended before the epoch")
        pruning = search_callbacks(ctx.hydra, cfg.monitor)  # a trial of an Optuna search with a pruner
        callbacks = [history, stop, ResumeState(history, resumed_csv), threads, *pruning, *penalties, *configured]
        trainer = make_trainer(cfg, task, callbacks, loggers)
        if cfg.get("tune") == "lr_find" and task.trainable and not ckpt:  # a resumed run keeps its LR
            from sweeplab.runs.diagnostics import find_lr

            probe = make_trainer(cfg, task, penalties, False, default_root_dir=str(out), enable_model_summary=False)
            result["lr_find"] = find_lr(probe, task, dm, out, cfg.lr_find)
            pl.seed_everything(cfg.seed, workers=True, verbose=False)  # the run starts as it would without it
        main = trainer.is_global_zero  # with several processes (trainer=ddp), rank 0 writes the run's files
        state = dm.state_dict()
        if "vocab" in state and main:  # the checkpoints hold it too; this copy is for people and other tools
            write_json(out / "vocab.json", state["vocab"])
        facts = dm.stats() if hasattr(dm, "stats") else {}
        log.info("data: %s", ", ".join(f"{k}={v}" for k, v in facts.items()))
        log.info("model: %s with %s trainable parameters", type(net).__name__, f"{params:,}")
        result.update(params=params, data=facts)
        try:
            trainer.fit(task, datamodule=dm, ckpt_path=ckpt)
        finally:
            result.update(summarise(trainer, history, cfg, out), num_threads=threads.threads)
            if main:
                plot_curves(out / "metrics.csv", out / "curves.png", title=ctx.label())
        stop.check()  # a signal during the last validation: stop before testing
        if cfg.test:  # on the best checkpoint when there is one (fast_dev_run writes none)
            best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
            tested = trainer.test(task, datamodule=dm, ckpt_path=best or None, verbose=False)
            result["final"].update({k: float(v) for k, v in (tested[0] if tested else {}).items()})
        if main:
            write_artifacts(task, dm, out, result)
    finally:
        stop.uninstall()
        torch.set_grad_enabled(True)


def make_trainer(cfg: DictConfig, task, callbacks: list, loggers, **overrides) -> pl.Trainer:
    """The configured Trainer around ``callbacks`` and ``loggers``, writing checkpoints atomically."""
    from sweeplab.runs.checkpoint_io import AtomicCheckpointIO

    # Lightning clips only what it optimises itself: count-based models have nothing to clip, and a task that
    # steps its optimizer itself (truncated BPTT) clips in its own hook, with the configured values.
    manual = not task.automatic_optimization
    if manual and task.trainable:
        task.manual_clip = (cfg.trainer.gradient_clip_val, cfg.trainer.gradient_clip_algorithm)
    return instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=loggers,
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=any(isinstance(c, pl.callbacks.ProgressBar) for c in callbacks),
        # without a ModelCheckpoint in callbacks (callbacks=none) Lightning would add its own
        enable_checkpointing=any(isinstance(c, pl.callbacks.ModelCheckpoint) for c in callbacks),
        **({"gradient_clip_val": None} if manual else {}),
        **overrides,
    )


def compile_network(net: torch.nn.Module, opts: DictConfig) -> None:
    """torch.compile ``net`` in place (nn.Module.compile: its state_dict keys, and so the checkpoints, stay
    those of the plain network), and its ``nll``, the language models' path for training and evaluation."""
    kwargs = {"backend": opts.backend, "dynamic": opts.dynamic, "fullgraph": opts.fullgraph}
    if opts.backend == "inductor":  # modes are inductor's
        kwargs["mode"] = opts.mode
    net.compile(**kwargs)
    if hasattr(net, "nll"):
        net.nll = torch.compile(net.nll, **kwargs)


def write_artifacts(task, dm, out: Path, result: dict) -> None:
    """The files the task returns (samples, plots) and its extra record fields, written by the run layer."""
    import matplotlib.pyplot as plt

    for name, content in task.artifacts(dm).items():
        if isinstance(content, str):
            write_text(out / name, content)
        else:
            save_figure(content, out / name)
            plt.close(content)
    result.update(task.record_fields())


def summarise(trainer, history, cfg: DictConfig, out: Path) -> dict:
    best = history.best(cfg.monitor_mode)
    final = {k: float(v) for k, v in trainer.callback_metrics.items() if getattr(v, "numel", lambda: 1)() == 1}
    ckpt = trainer.checkpoint_callback
    res = {
        "epochs": trainer.fit_loop.epoch_progress.current.completed,
        "steps": trainer.global_step,
        "final": final,
        "history": history.history,
    }
    if history.initial:
        res["initial_loss"] = history.initial
    if best:
        res["best"] = {
            **best,
            "checkpoint": os.path.relpath(ckpt.best_model_path, out) if ckpt and ckpt.best_model_path else None,
        }
        res["objective"] = best[cfg.monitor]
    return res


# ---------------------------------------------------------------- fits in memory?
def available_memory(accelerator: str) -> tuple[int, str]:
    """(bytes free, where): the GPU's when training runs on one, else the machine's available RAM."""
    if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        free, _ = torch.cuda.mem_get_info()
        return int(free), "GPU memory"
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        return int(info["MemAvailable"].split()[0]) * 1024, "RAM"
    except (OSError, KeyError, ValueError):
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"), "RAM"


def check_memory(cfg: DictConfig, ctx: RunContext, model_kwargs: dict) -> None:
    """Refuse a network that cannot fit before anything is allocated: build it on the meta device (no memory)
    and count its parameters; training holds each about four times (weights, gradients, two Adam moments)."""
    with torch.device("meta"):
        probe = instantiate(cfg.model, **model_kwargs)
    n = sum(p.numel() for p in probe.parameters())
    trainable = sum(p.numel() for p in probe.parameters() if p.requires_grad)
    need = 4 * (n + 3 * trainable) + sum(b.numel() * b.element_size() for b in probe.buffers())
    free, where = available_memory(str(cfg.trainer.accelerator))
    if need > free:
        raise ConfigError(
            f"model={ctx.choices.get('model', '?')} with these settings has {n:,} parameters and needs about "
            f"{need / 2**30:.1f} GiB to train, more than the {free / 2**30:.1f} GiB of {where} available; "
            f"make it smaller (e.g. model.hidden_dim, model.num_layers, data.block_size)"
        )
