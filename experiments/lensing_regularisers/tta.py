"""Test-time augmentation on one trained model: its checkpoint's test metrics scored on the images as they
are, averaged over the four rotations, and over the eight symmetries of the square (no retraining).

    python tta.py RUN_DIR [RUN_DIR ...]     # prints a markdown table
"""

from __future__ import annotations

import sys
import time

import pytorch_lightning as pl
from omegaconf import open_dict

from sweeplab.runs.inference import quiet_lightning
from sweeplab.runs.restore import build_datamodule, build_task, restore

VIEWS = {"none": [], "rot90 (4 views)": ["rot90"], "rot90 + flip (8 views)": ["rot90", "flip"]}


def scores(run: str, views: list[str]) -> tuple[dict, float]:
    restored = restore(run)
    with open_dict(restored.cfg):
        restored.cfg.task.test_time_augment = views
    dm = build_datamodule(restored)
    dm.prepare_data()
    dm.setup("test")
    trainer = pl.Trainer(
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    t0 = time.perf_counter()
    res = trainer.test(build_task(restored), datamodule=dm, verbose=False)[0]
    return res, time.perf_counter() - t0


def main(runs: list[str]) -> None:
    quiet_lightning()
    print("| run | test-time views | test macro AUC | test acc | test macro-F1 | test loss | scoring s |")
    print("|---|---|---|---|---|---|---|")
    for run in runs:
        for name, views in VIEWS.items():
            r, seconds = scores(run, views)
            print(
                f"| {run.rstrip('/').rsplit('/', 1)[-1]} | {name} | {r['test/auc']:.4f} | {r['test/acc']:.4f} | "
                f"{r['test/f1']:.4f} | {r['test/loss']:.4f} | {seconds:.1f} |"
            )


if __name__ == "__main__":
    main(sys.argv[1:])
