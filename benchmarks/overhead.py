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


def compose(overrides: list[str], out: str):
    """The job config sweeplab-train would run with ``overrides``, its run dir set to ``out``."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    with initialize_config_module(config_module="sweeplab.conf", version_base="1.3"):
        cfg = hydra_compose("train", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = out
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def plain_loop(cfg, dm, net, steps: int, warmup: int = 50) -> float:
    import torch
    from hydra.utils import instantiate

    opt = instantiate(cfg.optimizer, _convert_="all")(net.parameters())
    clip = cfg.trainer.gradient_clip_val
    it, t0 = 0, None
    while True:
        for x, y in dm.train_dataloader():
            if it == warmup:
                t0 = time.perf_counter()
            total, count = net.nll(x, y)
            loss = total / count
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
            opt.step()
            it += 1
            if it == warmup + steps:
                return (time.perf_counter() - t0) / steps * 1e3


def lightning_loop(cfg, dm, net, steps: int, warmup: int = 50) -> float:
    from pathlib import Path

    import pytorch_lightning as pl
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from sweeplab.runs.builders import build_callbacks, build_loggers
    from sweeplab.runs.callbacks import RunHistory

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
    )
    callbacks = [history, *build_callbacks(cfg)]
    trainer = instantiate(
        cfg.trainer,
        max_steps=warmup + steps,
        callbacks=[*callbacks, Clock()],
        logger=build_loggers(cfg, Path(cfg.paths.output_dir)),
        enable_progress_bar=False,
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
    import shutil

    import torch
    from hydra.utils import instantiate

    torch.set_num_threads(args.threads)
    out = "/tmp/sweeplab_bench"
    # The shipped config, as sweeplab-train composes it: no validation pass (limit_val_batches=0), no
    # early stopping or progress bar, so that only the training steps are timed.
    common = ["trainer.limit_val_batches=0", "callbacks.early_stopping=null", "callbacks.progress_bar=null"]
    rows = []
    for label, overrides in [
        ("mlp", ["model=mlp", "data.batch_size=32"]),
        ("mlp", ["model=mlp", "data.batch_size=256"]),
        ("lstm-128", ["model=lstm", "model.num_layers=1", "model.dropout=0.0", "data.batch_size=64"]),
    ]:
        shutil.rmtree(out, ignore_errors=True)
        cfg = compose([*overrides, *common, "trainer.accelerator=cpu"], out)
        dm = instantiate(cfg.data)
        dm.setup()
        times = []
        for loop in (plain_loop, lightning_loop):
            torch.manual_seed(0)
            times.append(loop(cfg, dm, instantiate(cfg.model, **dm.model_kwargs()), args.steps))
        plain, lit = times
        rows.append(
            {
                "model": label,
                "batch_names": cfg.data.batch_size,
                "plain_ms_per_step": round(plain, 3),
                "sweeplab_ms_per_step": round(lit, 3),
                "ratio": round(lit / plain, 2),
            }
        )
    print(json.dumps({"threads": args.threads, "steps": args.steps, "rows": rows, "startup": startup()}, indent=2))


if __name__ == "__main__":
    main()
