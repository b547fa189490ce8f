"""The training lecture's "command center": a learning-rate range test (tune=lr_find) and a callback that
watches the updates, gradients and activations of every layer (callbacks=[default,diagnostics]).

- ``find_lr``: Lightning's Tuner.lr_find (the LR range test: Smith, 2017) on the run's task and data before
  training; the loss against the LR goes into lr_find.png, the suggestion (the steepest descent) into
  metrics.json, and into the optimizer with ``lr_find.apply=true``.
- ``Diagnostics``: every ``every_n_steps`` optimizer steps, per weight matrix the update/weight ratio
  ‖ΔW‖/‖W‖ of that step (the real update, whatever the optimizer; about 1e-3 is healthy), the gradient's norm,
  and per activation the share of saturated units (tanh/sigmoid within ``saturation`` of their bounds, ReLU-like
  units at or below 0, recurrent layers' outputs near ±1), logged as ``diag/<what>/<layer>`` to the run's
  loggers (metrics.csv) and plotted into diagnostics.png when the fit ends.
"""

from __future__ import annotations

import functools
import logging
import math
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch import nn

from sweeplab.io import save_figure

log = logging.getLogger("sweeplab")
LR_FIND_PNG, DIAGNOSTICS_PNG = "lr_find.png", "diagnostics.png"


# ---------------------------------------------------------------- tune=lr_find
def with_lr(factory: functools.partial, key: str, lr: float) -> functools.partial:
    return functools.partial(factory.func, *factory.args, **{**factory.keywords, key: lr})


def find_lr(trainer: pl.Trainer, task, dm, out: Path, opts) -> dict:
    """Run the range test with ``trainer`` (a throwaway one: its loop state is not the run's) and return the
    record's ``lr_find`` block. The task's weights and optimizer state are restored by Lightning afterwards."""
    from matplotlib.figure import Figure
    from pytorch_lightning.tuner import Tuner

    finder = Tuner(trainer).lr_find(
        task,
        datamodule=dm,
        min_lr=opts.min_lr,
        max_lr=opts.max_lr,
        num_training=opts.num_training,
        mode=opts.mode,
        early_stop_threshold=opts.early_stop_threshold,
        update_attr=False,
    )
    block = {"min_lr": opts.min_lr, "max_lr": opts.max_lr, "num_training": opts.num_training, "mode": opts.mode}
    if finder is None:  # fast_dev_run: Lightning skips the test
        return {**block, "suggested_lr": None, "applied": False, "steps": 0}
    suggested = finder.suggestion()
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    finder.plot(suggest=suggested is not None, ax=ax)
    ax.set_title(
        f"LR range test: suggested {suggested:.3g}" if suggested is not None else "LR range test: no suggestion"
    )
    ax.grid(alpha=0.3, which="both")
    save_figure(fig, out / LR_FIND_PNG)
    applied = bool(opts.apply and suggested is not None)
    if applied:
        task.optimizer_factory = with_lr(task.optimizer_factory, "lr", suggested)
        sched = task.scheduler_factory
        if isinstance(sched, functools.partial) and "max_lr" in sched.keywords:  # onecycle: its peak is the LR
            task.scheduler_factory = with_lr(sched, "max_lr", suggested)
    if suggested is None:
        log.warning("lr_find: no suggestion (the loss curve is too short or flat); lr_find.png shows it")
    else:
        log.info("lr_find: suggested lr %.3g%s", suggested, " (applied)" if applied else "")
    return {**block, "suggested_lr": suggested, "applied": applied, "steps": len(finder.results["lr"])}


# ---------------------------------------------------------------- the diagnostics callback
BOUNDED = (nn.Tanh, nn.Sigmoid, nn.Hardtanh)
RECTIFIED = (nn.ReLU, nn.GELU, nn.LeakyReLU, nn.ELU, nn.SiLU)


def saturated(module: nn.Module, out, margin: float) -> float | None:
    """Share of ``module``'s outputs that are saturated (no gradient to speak of), or None for a module that
    is not an activation."""
    if isinstance(out, tuple):  # recurrent layers: (outputs, state)
        out = out[0]
    if not isinstance(out, torch.Tensor) or not out.is_floating_point():
        return None
    out = out.detach()
    if isinstance(module, nn.Sigmoid):
        return float(((out < margin) | (out > 1 - margin)).float().mean())
    if isinstance(module, BOUNDED) or is_recurrent(module):
        return float((out.abs() > 1 - margin).float().mean())
    if isinstance(module, RECTIFIED):
        return float((out <= 0).float().mean())
    return None


def is_recurrent(module: nn.Module) -> bool:
    """torch's recurrent modules and the hand-written layers (models/*.py), whose outputs are bounded by ±1
    with a tanh activation."""
    return isinstance(module, nn.RNNBase) or hasattr(module, "recurrent")


class Diagnostics(pl.Callback):
    def __init__(self, *, every_n_steps: int, saturation: float, dirpath: str):
        self.every, self.margin, self.dirpath = max(int(every_n_steps), 1), float(saturation), Path(dirpath)
        self.rows: list[dict] = []  # one per sampled step: {"step": s, "update_ratio/<layer>": ..., ...}
        self._row: dict | None = None
        self._before: dict[str, torch.Tensor] = {}
        self._hooks: list = []

    # -------------------------------------------------------------- sampling one step
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._row is not None or trainer.global_step % self.every:
            return
        self._row = {"step": trainer.global_step}
        net = getattr(pl_module, "net", pl_module)
        for name, module in net.named_modules():
            if isinstance(module, (*BOUNDED, *RECTIFIED)) or is_recurrent(module):
                self._hooks.append(module.register_forward_hook(self._activation_hook(name or "net")))

    def _activation_hook(self, name: str):
        def hook(module, inputs, out):
            share = saturated(module, out, self.margin)
            if share is not None and self._row is not None:
                self._row[f"saturation/{name}"] = share

        return hook

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if self._row is None:
            return
        for name, p in self._weights(pl_module):
            if p.grad is not None:
                self._row[f"grad_norm/{name}"] = float(p.grad.detach().norm())
            self._before[name] = p.detach().clone()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._row is None or not self._before:
            return  # gradient accumulation: the optimizer step comes with a later batch
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        for name, p in self._weights(pl_module):
            if name in self._before:
                w = self._before[name]
                self._row[f"update_ratio/{name}"] = float((p.detach() - w).norm() / w.norm().clamp(min=1e-12))
        row, self._row, self._before = self._row, None, {}
        self.rows.append(row)
        metrics = {f"diag/{k}": v for k, v in row.items() if k != "step"}
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=row["step"])

    @staticmethod
    def _weights(pl_module) -> list[tuple[str, nn.Parameter]]:
        net = getattr(pl_module, "net", pl_module)
        return [
            (n.replace(".parametrizations", "").replace(".original", ""), p)
            for n, p in net.named_parameters()
            if p.requires_grad and p.ndim >= 2
        ]

    def on_fit_end(self, trainer, pl_module) -> None:
        if self.rows and trainer.is_global_zero:
            save_figure(plot_diagnostics(self.rows), self.dirpath / DIAGNOSTICS_PNG)


def plot_diagnostics(rows: list[dict], max_lines: int = 12):
    """Three panels against the step: log10 update/weight ratio (with the 1e-3 rule of thumb), gradient norm,
    saturated share per activation. Past ``max_lines`` layers the legend names the largest only."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(16, 4.5))
    axes = fig.subplots(1, 3)
    panels = [
        ("update_ratio", "log10 ‖ΔW‖ / ‖W‖ per step", lambda v: math.log10(max(v, 1e-12))),
        ("grad_norm", "gradient norm ‖∂L/∂W‖", lambda v: v),
        ("saturation", "saturated share of units", lambda v: v),
    ]
    for ax, (kind, label, f) in zip(axes, panels):
        names = list(dict.fromkeys(k.split("/", 1)[1] for r in rows for k in r if k.startswith(kind + "/")))
        last = {n: next((r[f"{kind}/{n}"] for r in reversed(rows) if f"{kind}/{n}" in r), 0.0) for n in names}
        shown = set(sorted(names, key=lambda n: -abs(f(last[n])) if kind != "update_ratio" else -last[n])[:max_lines])
        for n in names:
            points = [(r["step"], f(r[f"{kind}/{n}"])) for r in rows if f"{kind}/{n}" in r]
            steps, values = zip(*points)
            ax.plot(
                steps,
                values,
                label=n if n in shown else None,
                lw=1,
                marker="o" if len(steps) < 20 else None,
                markersize=3,
            )
        if kind == "update_ratio":
            ax.axhline(-3, color="black", ls="--", lw=0.8, label="1e-3")
        if kind == "grad_norm" and names:
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if names:
            ax.legend(fontsize=6)
        else:
            ax.text(
                0.5,
                0.5,
                "no activation modules" if kind == "saturation" else "none",
                ha="center",
                transform=ax.transAxes,
            )
    fig.suptitle("per-layer training diagnostics")
    fig.tight_layout()
    return fig
