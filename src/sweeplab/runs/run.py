"""One job end to end: validate → data → network → task → fit → test → files.

Whatever happens, the run dir ends with a metrics.json saying how the run ended (completed, failed,
interrupted, diverged). In a multirun a failing job records its failure and returns the worst objective,
so the sweep goes on and its summary runs; a single run exits non-zero with a one-line error.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from sweeplab.config.validate import validate
from sweeplab.constants import METRICS_FILE
from sweeplab.errors import ConfigError
from sweeplab.io import save_figure, write_json, write_text
from sweeplab.runs.gpus import claim_gpu
from sweeplab.runs.record import read_metrics

log = logging.getLogger("sweeplab")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def worst(mode: str) -> float:
    return math.inf if mode == "min" else -math.inf


def run_job(cfg: DictConfig) -> float:
    """The Hydra task function's body; returns the best monitored value (the search objective)."""
    hc = HydraConfig.get()
    out = Path(hc.runtime.output_dir)
    multirun = hc.mode == RunMode.MULTIRUN
    choices = {k: v for k, v in hc.runtime.choices.items() if not k.startswith("hydra") and v is not None}
    record = {
        "status": "running",
        "run_dir": str(out),
        "overrides": list(hc.overrides.task),
        "choices": choices,
        "monitor": cfg.monitor,
        "mode": cfg.monitor_mode,
        "started": now(),
        "pid": os.getpid(),
    }
    previous = read_metrics(out)
    if multirun and previous and previous.get("status") == "completed":
        log.info("skipping %s: already completed", out)  # rerunning a sweep into the same dir resumes it
        return float(previous.get("objective", worst(cfg.monitor_mode)))
    if (
        multirun
        and not cfg.ckpt_path
        and previous
        and previous.get("status") in ("running", "interrupted")
        and (out / "checkpoints" / "last.ckpt").is_file()
    ):
        cfg.ckpt_path = "last"  # killed ("running" left behind) or interrupted in an earlier launch: go on
    t0 = time.perf_counter()
    try:
        validate(cfg, choices)
        if (gpu := claim_gpu()) is not None:  # before torch touches CUDA (hydra/launcher=gpus)
            record["cuda_visible_devices"] = gpu
        write_json(out / METRICS_FILE, record)
        train(cfg, out, record)
        record["status"] = "completed"
    except BaseException as e:
        record.update(_ending(e))
        write_text(out / "error.txt", "".join(traceback.format_exception(e)))
        if isinstance(e, ConfigError) and not multirun:
            raise SystemExit(f"sweeplab-train: error: {e}") from None
    finally:
        record["duration_s"] = round(time.perf_counter() - t0, 3)
        record["finished"] = now()
        record.setdefault("objective", worst(cfg.monitor_mode))
        write_json(out / METRICS_FILE, record)
    status = record["status"]
    if status == "interrupted":
        signal.signal(signal.SIGINT, signal.default_int_handler)
        raise KeyboardInterrupt  # Ctrl-C stops the whole sweep, after this job's files are written
    if status != "completed":
        msg = f"run {status}: {record.get('error')} (run dir: {out})"
        if not multirun:
            print(f"sweeplab-train: error: {msg}", file=sys.stderr)
            raise SystemExit(1)
        log.error(msg)
    return float(record["objective"])


def _ending(e: BaseException) -> dict:
    from sweeplab.runs.callbacks import Diverged

    if isinstance(e, Diverged):
        return {"status": "diverged", "error": str(e)}
    if isinstance(e, KeyboardInterrupt):
        return {"status": "interrupted", "error": "interrupted (Ctrl-C)"}
    from hydra.errors import InstantiationException

    while isinstance(e, InstantiationException) and e.__cause__ is not None:
        e = e.__cause__  # Hydra wraps the real error: report that one
    lines = [ln for ln in str(e).strip().splitlines() if ln.strip()]
    return {"status": "failed", "error": f"{type(e).__name__}: {lines[0] if lines else ''}".rstrip(": ")}


def train(cfg: DictConfig, out: Path, result: dict) -> None:
    """Build everything from the config, fit, test and write the run's files, filling ``result``
    (the metrics.json record) as it goes so that a failure keeps what was learned before it."""
    import pytorch_lightning as pl
    import torch
    from hydra.utils import instantiate

    from sweeplab.runs.builders import build_callbacks, build_loggers
    from sweeplab.runs.callbacks import RunHistory
    from sweeplab.runs.plots import plot_curves
    from sweeplab.runs.resume import ResumeState, continue_csv_logs

    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup("fit")
    model_kwargs = dm.model_kwargs()
    net = instantiate(cfg.model, **model_kwargs)
    meta = {
        "config": OmegaConf.to_container(cfg, resolve=True),
        "model_kwargs": model_kwargs,
        "choices": dict(HydraConfig.get().runtime.choices),
        **dm.state_dict(),
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
    history = RunHistory(cfg.monitor, check_every=cfg.trainer.log_every_n_steps)
    callbacks = [history, *build_callbacks(cfg, trainable=task.trainable)]
    loggers, ckpt = build_loggers(cfg, out), resolve_ckpt(cfg.ckpt_path, out)
    if ckpt:
        result["resumed_from"] = ckpt
    resumed_csv = out / "metrics.csv" if ckpt and (out / "metrics.csv").is_file() else None
    if resumed_csv:
        continue_csv_logs(loggers)  # resuming this run: metrics.csv goes on instead of starting over
    callbacks.append(ResumeState(history, resumed_csv))
    trainer = instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=loggers,
        enable_progress_bar=any(isinstance(c, pl.callbacks.ProgressBar) for c in callbacks),
        # without a ModelCheckpoint in callbacks (callbacks=none) Lightning would add its own
        enable_checkpointing=any(isinstance(c, pl.callbacks.ModelCheckpoint) for c in callbacks),
        # nothing to clip for count-based models (Lightning refuses it without an optimizer)
        **({} if task.trainable else {"gradient_clip_val": None}),
    )
    facts = dm.stats() if hasattr(dm, "stats") else {}
    log.info("data: %s", ", ".join(f"{k}={v}" for k, v in facts.items()))
    log.info("model: %s with %s trainable parameters", type(net).__name__, f"{params:,}")
    result.update(params=params, data=facts)
    try:
        trainer.fit(task, datamodule=dm, ckpt_path=ckpt)
    except SystemExit:
        # Lightning turns Ctrl-C into on_exception(KeyboardInterrupt) + sys.exit(1).
        if history.interrupted:
            raise KeyboardInterrupt from None
        raise
    finally:
        result.update(summarise(trainer, history, cfg, out))
        plot_curves(out / "metrics.csv", out / "curves.png", title=choices_label())
    if trainer.interrupted:
        raise KeyboardInterrupt
    if cfg.test:  # on the best checkpoint when there is one (fast_dev_run writes none)
        ckpt = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        tested = trainer.test(task, datamodule=dm, ckpt_path=ckpt or None, verbose=False)
        result["final"].update({k: float(v) for k, v in (tested[0] if tested else {}).items()})
    for name, item in task.artifacts(dm).items():  # the task's files: text, or matplotlib Figures
        if isinstance(item, str):
            write_text(out / name, item)
        else:
            import matplotlib.pyplot as plt

            save_figure(item, out / name)
            plt.close(item)  # frees a pyplot figure; nothing to do for a pyplot-free Figure
    result.update(task.record_fields())
    torch.set_grad_enabled(True)


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
    if best:
        res["best"] = {
            **best,
            "checkpoint": os.path.relpath(ckpt.best_model_path, out) if ckpt and ckpt.best_model_path else None,
        }
        res["objective"] = best[cfg.monitor]
    return res


def resolve_ckpt(ckpt_path: str | None, out: Path) -> str | None:
    if not ckpt_path:
        return None
    if ckpt_path == "last":
        last = out / "checkpoints" / "last.ckpt"
        if not last.is_file():
            raise FileNotFoundError(
                f"ckpt_path=last: no checkpoint at {last}; point hydra.run.dir at the run "
                f"to resume, or give ckpt_path=<file or run dir>"
            )
        return str(last)
    p = Path(ckpt_path).expanduser()
    if p.is_dir():
        p = p / "checkpoints" / "last.ckpt"
    if not p.is_file():
        raise FileNotFoundError(f"ckpt_path={ckpt_path}: no such checkpoint")
    return str(p)


def choices_label() -> str:
    ch = HydraConfig.get().runtime.choices
    return f"data={ch.get('data')} model={ch.get('model')}"
