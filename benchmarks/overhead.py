"""Framework overhead: ms per training step of a plain PyTorch loop vs the same network, data and optimizer
run through sweeplab's task + Lightning Trainer (with its default callbacks and CSV logging); and start-up.

    python benchmarks/overhead.py [--steps 600] [--threads 1]     # prints JSON
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


def plain_loop(dm, net, steps: int, warmup: int = 50) -> float:
    import torch

    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    it, t0 = 0, None
    while True:
        for x, y in dm.train_dataloader():
            if it == warmup:
                t0 = time.perf_counter()
            total, count = net.nll(x, y)
            loss = total / count
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            it += 1
            if it == warmup + steps:
                return (time.perf_counter() - t0) / steps * 1e3


def lightning_loop(dm, net, steps: int, warmup: int = 50, tmp: str = "/tmp/sweeplab_bench") -> float:
    import functools
    import shutil
    from pathlib import Path

    import pytorch_lightning as pl
    import torch
    from omegaconf import OmegaConf

    from sweeplab.runs.builders import build_callbacks, build_loggers
    from sweeplab.runs.callbacks import RunHistory
    from sweeplab.tasks.language_model import LanguageModelTask

    shutil.rmtree(tmp, ignore_errors=True)
    # the callbacks and logger every run has by default (conf/callbacks/default.yaml, conf/logger/csv.yaml)
    cfg = OmegaConf.create(
        {
            "callbacks": {
                "model_checkpoint": {
                    "_target_": "pytorch_lightning.callbacks.ModelCheckpoint",
                    "dirpath": f"{tmp}/checkpoints",
                    "monitor": "val/loss",
                    "save_last": True,
                },
                "lr_monitor": {
                    "_target_": "pytorch_lightning.callbacks.LearningRateMonitor",
                    "logging_interval": "step",
                },
            },
        }
    )
    times = {}

    class Clock(pl.Callback):
        def on_train_batch_start(self, trainer, *a):
            if trainer.global_step == warmup:
                times["t0"] = time.perf_counter()

        def on_train_batch_end(self, trainer, *a):
            if trainer.global_step == warmup + steps:
                times["t1"] = time.perf_counter()

    task = LanguageModelTask(net, optimizer=functools.partial(torch.optim.AdamW, lr=1e-3), num_samples=0)
    callbacks = [RunHistory("val/loss", check_every=50), *build_callbacks(cfg)]
    trainer = pl.Trainer(
        max_steps=warmup + steps,
        callbacks=[*callbacks, Clock()],
        logger=build_loggers(cfg, Path(tmp)),
        limit_val_batches=0,
        enable_progress_bar=False,
        enable_model_summary=False,
        gradient_clip_val=1.0,
        log_every_n_steps=50,
        accelerator="cpu",
    )
    trainer.fit(task, datamodule=dm)
    return (times["t1"] - times["t0"]) / steps * 1e3


def startup() -> dict:
    def timed(args):
        t0 = time.perf_counter()
        subprocess.run(args, capture_output=True)
        return round(time.perf_counter() - t0, 2)

    return {
        "import_pytorch_lightning_s": timed([sys.executable, "-c", "import pytorch_lightning"]),
        "reject_bad_override_s": timed([sys.executable, "-m", "sweeplab.train", "model.dropout=1.5"]),
        "compose_and_print_config_s": timed([sys.executable, "-m", "sweeplab.train", "--cfg", "job"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from sweeplab.data.names import NamesDataModule
    from sweeplab.models.lstm import LSTM
    from sweeplab.models.mlp import MLP

    rows = []
    for label, make, batch in [
        ("mlp", lambda kw: MLP(**kw), 32),
        ("mlp", lambda kw: MLP(**kw), 256),
        ("lstm-128", lambda kw: LSTM(**kw, embed_dim=64, hidden_dim=128, num_layers=1, dropout=0.0), 64),
    ]:
        dm = NamesDataModule(batch_size=batch)
        dm.setup()
        torch.manual_seed(0)
        plain = plain_loop(dm, make(dm.model_kwargs()), args.steps)
        torch.manual_seed(0)
        lit = lightning_loop(dm, make(dm.model_kwargs()), args.steps)
        rows.append(
            {
                "model": label,
                "batch_names": batch,
                "plain_ms_per_step": round(plain, 3),
                "sweeplab_ms_per_step": round(lit, 3),
                "ratio": round(lit / plain, 2),
            }
        )
    print(json.dumps({"threads": args.threads, "steps": args.steps, "rows": rows, "startup": startup()}, indent=2))


if __name__ == "__main__":
    main()
