"""Framework overhead: ms per training step of a plain PyTorch loop (A) against the same network, data and
optimizer step run through sweeplab's task in a Lightning Trainer with the run's callbacks and CSV logging (B).

    python benchmarks/overhead.py [--rounds 5] [--threads 1] [--only names-mlp-b32,lensing-resnet]

The two loops run interleaved, A B A B ..., ``--rounds`` times each, every trial on a fresh network from the
same seed, timing the steps after a warm-up and within one epoch (no validation in either). Reported per
case: the median and min–max of A's and B's ms per step over the rounds, and of the per-round ratio B / A.
One JSON line.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from common import compose, machine, spread

# (overrides, warm-up steps, timed steps): the timed steps stay inside the first epoch.
CASES = {
    "names-mlp-b32": (["data=names", "model=mlp", "data.batch_size=32"], 30, 400),
    "names-mlp-b256": (["data=names", "model=mlp", "data.batch_size=256"], 10, 85),
    "names-lstm-b256": (["data=names", "model=lstm", "data.batch_size=256"], 5, 60),
    "lensing-densenet_cbam": (["data=lensing", "model=densenet_cbam"], 5, 50),
    "lensing-resnet": (["data=lensing", "model=resnet"], 5, 50),
}
# Only the training steps are timed: no validation pass, no early stopping or progress bar.
COMMON = ["trainer.limit_val_batches=0", "callbacks.early_stopping=null", "callbacks.progress_bar=null"]


def loss_of(net, batch, smoothing: float, fmt=None):
    """What the task computes per step, as a plain loop writes it (docs/ARCHITECTURE.md batches)."""
    import torch.nn.functional as F

    x, y = batch
    if hasattr(net, "nll"):
        total, count = net.nll(x, y)
        return total / count.clamp(min=1)
    if fmt is not None:
        x = x.contiguous(memory_format=fmt)
    return F.cross_entropy(net(x), y, label_smoothing=smoothing)


def plain_loop(cfg, dm, net, warmup: int, steps: int) -> float:
    import torch
    from hydra.utils import instantiate

    # The plain loop uses the layout the task gives an image network (task.channels_last), so A and B differ
    # only in the framework around the same kernels.
    fmt = torch.channels_last if cfg.task.get("channels_last") else torch.contiguous_format
    net.to(memory_format=fmt)
    opt = instantiate(cfg.optimizer, _convert_="all")(net.parameters())
    clip = cfg.trainer.gradient_clip_val
    net.train()
    t0 = 0.0
    for it, batch in enumerate(dm.train_dataloader(), start=1):
        if it == warmup + 1:
            t0 = time.perf_counter()
        loss = loss_of(net, batch, cfg.loss.label_smoothing, fmt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
        opt.step()
        if it == warmup + steps:
            return (time.perf_counter() - t0) / steps * 1e3
    raise SystemExit(f"an epoch has fewer than {warmup + steps} batches")


def sweeplab_loop(cfg, dm, net, warmup: int, steps: int, out: Path) -> float:
    import pytorch_lightning as pl
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from sweeplab.runs.builders import build_callbacks, build_loggers
    from sweeplab.runs.callbacks import RunHistory
    from sweeplab.runs.checkpoint_io import AtomicCheckpointIO
    from sweeplab.runs.threads import ThreadPolicy

    times = {}

    class Clock(pl.Callback):
        def on_train_batch_start(self, trainer, *a):
            if trainer.global_step == warmup:
                times["t0"] = time.perf_counter()

        def on_train_batch_end(self, trainer, *a):
            if trainer.global_step == warmup + steps:
                times["t1"] = time.perf_counter()

    # No scheduler: the plain loop has none either.
    task = instantiate(cfg.task, _partial_=True)(
        net=net,
        optimizer=instantiate(cfg.optimizer, _convert_="all"),
        scheduler=None,
        loss=OmegaConf.to_container(cfg.loss),
        meta={},
    )
    history = RunHistory(
        monitor=cfg.monitor,
        check_every=cfg.trainer.log_every_n_steps,
        classes=None,
        factor=cfg.divergence.factor,
        patience=cfg.divergence.patience,
        initial_tolerance=cfg.initial_loss.tolerance,
    )
    callbacks = [history, ThreadPolicy(cfg.num_threads), *build_callbacks(cfg), Clock()]
    trainer = instantiate(
        cfg.trainer,
        max_steps=warmup + steps,
        callbacks=callbacks,
        logger=build_loggers(cfg, out),
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=False,
        enable_checkpointing=True,
    )
    trainer.fit(task, datamodule=dm)
    return (times["t1"] - times["t0"]) / steps * 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", default="", help="comma-separated case names: " + ", ".join(CASES))
    args = ap.parse_args()
    import logging

    import pytorch_lightning as pl
    import torch
    from hydra.utils import instantiate

    from sweeplab.runs.memory import tune_allocator

    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    tune_allocator()  # as every run does; here for both loops, which share this process
    rows = []
    for name, (overrides, warmup, steps) in CASES.items():
        if args.only and name not in args.only.split(","):
            continue
        out = Path(tempfile.mkdtemp(prefix="sweeplab_overhead_"))
        cfg = compose([*overrides, *COMMON, "trainer.accelerator=cpu", f"num_threads={args.threads}"], out)
        torch.set_num_threads(args.threads)
        dm = instantiate(cfg.data)
        dm.prepare_data()
        dm.setup("fit")
        plain, framework = [], []
        for _ in range(args.rounds):
            for loop, times in ((plain_loop, plain), (sweeplab_loop, framework)):
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir(parents=True)
                pl.seed_everything(cfg.seed, verbose=False)
                net = instantiate(cfg.model, **dm.model_kwargs())
                extra = (out,) if loop is sweeplab_loop else ()
                times.append(loop(cfg, dm, net, warmup, steps, *extra))
        shutil.rmtree(out, ignore_errors=True)
        rows.append(
            {
                "case": name,
                "params": sum(p.numel() for p in net.parameters()),
                "steps": steps,
                "plain_ms": spread(plain),
                "sweeplab_ms": spread(framework),
                "ratio": spread([b / a for a, b in zip(plain, framework)]),
            }
        )
    print(json.dumps({"bench": "overhead", "threads": args.threads, "rounds": args.rounds, "rows": rows, **machine()}))


if __name__ == "__main__":
    main()
