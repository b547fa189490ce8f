"""Start-up: seconds from launching ``sweeplab-train`` to its first training step, and where they go.

    python benchmarks/startup.py [--repeats 5] [OVERRIDES ...]     # default: data=names model=mlp

Each repeat runs, interleaved, (A) ``python -c "import torch, pytorch_lightning"`` (the cost no Lightning
program avoids) and (B) the real entry point ``sweeplab.train.main`` in a fresh process that stops at its
first training batch. (B) imports torch and Lightning first, so that their cost is its own phase; a run
imports them anyway (just after composing its config), so the total is that of ``sweeplab-train``. One JSON
line: median and min–max of every phase, and the heavy packages loaded beyond what Lightning loads itself.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine, spread

HEAVY = ("matplotlib.pyplot", "pandas", "datasets", "caustics", "tensorboard", "rich", "scipy", "PIL", "sympy")
PHASES = (
    "python",  # interpreter start
    "import_torch",
    "import_lightning",  # beyond torch
    "preflight",  # hydra import, compose + check of the command line
    "compose",  # Hydra's own compose, up to the task function
    "run_setup",  # validate, lock, identity (data file hashes), run dir files, up to fit_and_test
    "data_and_model",  # datamodule setup, network, task, callbacks, Trainer
    "first_batch",  # Trainer.fit up to the first training batch
)


def child(out: str, t0: float, overrides: list[str]) -> None:
    marks = {"python": time.time()}
    import torch

    marks["import_torch"] = time.time()
    import pytorch_lightning as pl

    marks["import_lightning"] = time.time()
    before = set(sys.modules)

    import sweeplab.config.preflight as preflight
    import sweeplab.runs.fit as fit
    import sweeplab.runs.run as run
    import sweeplab.train as train

    def wrap(module, name, mark):
        inner = getattr(module, name)

        def timed(*a, **k):
            if mark.startswith("end:"):
                result = inner(*a, **k)
                marks.setdefault(mark[4:], time.time())
                return result
            marks.setdefault(mark, time.time())
            return inner(*a, **k)

        setattr(module, name, timed)

    wrap(preflight, "preflight_or_exit", "end:preflight")
    wrap(run, "run_job", "compose")
    wrap(fit, "fit_and_test", "run_setup")
    wrap(pl.Trainer, "fit", "data_and_model")

    class FirstBatch(pl.Callback):
        pass

    def first_batch(self, *a):
        marks["first_batch"] = time.time()
        new = set(sys.modules) - before
        result = {
            "seconds": {p: marks[p] - (marks[PHASES[i - 1]] if i else t0) for i, p in enumerate(PHASES)},
            "loaded_by_sweeplab": sorted(m for m in HEAVY if m in new),
            "loaded_by_lightning": sorted(m for m in HEAVY if m in before),
            "threads": torch.get_num_threads(),
        }
        Path(out).write_text(json.dumps(result))
        os._exit(0)

    from sweeplab.runs.callbacks import RunHistory

    RunHistory.on_train_batch_start = first_batch
    sys.argv = ["sweeplab-train", *overrides]
    train.main()
    raise SystemExit(f"no training step was reached (overrides: {' '.join(overrides)})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--child", nargs=2, metavar=("OUT", "T0"), help=argparse.SUPPRESS)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    if args.child:
        child(args.child[0], float(args.child[1]), args.overrides)
        return
    overrides = args.overrides or ["data=names", "model=mlp"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    bare, total, phases, loaded = [], [], {p: [] for p in PHASES}, {}
    with tempfile.TemporaryDirectory(prefix="sweeplab_startup_") as tmp:
        for i in range(args.repeats):
            t0 = time.time()
            subprocess.run([sys.executable, "-c", "import torch, pytorch_lightning"], check=True, env=env)
            bare.append(time.time() - t0)
            out, run_dir = Path(tmp) / f"{i}.json", Path(tmp) / f"run{i}"
            cmd = [sys.executable, __file__, "--child", str(out), "", *overrides, "callbacks.progress_bar=null"]
            cmd.append(f"hydra.run.dir={run_dir}")
            t0 = time.time()
            cmd[4] = repr(t0)
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if not out.is_file():
                raise SystemExit(f"the run did not reach a training step:\n{proc.stderr[-3000:]}")
            res = json.loads(out.read_text())
            for p, s in res["seconds"].items():
                phases[p].append(s)
            total.append(sum(res["seconds"].values()))
            loaded = {k: res[k] for k in ("loaded_by_sweeplab", "loaded_by_lightning", "threads")}
    import_s = [a + b + c for a, b, c in zip(phases["python"], phases["import_torch"], phases["import_lightning"])]
    beyond = [t - i for t, i in zip(total, import_s)]
    print(
        json.dumps(
            {
                "bench": "startup",
                "overrides": overrides,
                "to_first_step_s": spread(total, 2),
                "beyond_torch_and_lightning_s": spread(beyond, 2),
                "bare_import_torch_lightning_s": spread(bare, 2),
                "phases_s": {p: spread(v, 2)["median"] for p, v in phases.items()},
                **loaded,
                **machine(),
            }
        )
    )


if __name__ == "__main__":
    main()
