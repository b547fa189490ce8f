"""The README's first command, ``sweeplab-train data=names model=mlp``, as a whole process: with its default
``num_threads=auto`` against ``num_threads=1`` (and, with ``--torch-default``, torch's own one thread per
core, ``num_threads=<cores>``), interleaved over ``--rounds``, in the environment it is given (no
OMP_NUM_THREADS). Run it on a busy machine to see the policy hold there. One JSON line.

    python benchmarks/first_command.py [--rounds 2] [--torch-default]
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--torch-default", action="store_true")
    args = ap.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    settings = {"auto": [], "1": []}
    if args.torch_default:
        settings[str(os.cpu_count())] = []
    loads = []
    with tempfile.TemporaryDirectory(prefix="sweeplab_first_") as tmp:
        for i in range(args.rounds):
            for threads, times in settings.items():
                run_dir = Path(tmp) / f"{threads}_{i}"
                cmd = [sys.executable, "-m", "sweeplab.train", "data=names", "model=mlp", f"num_threads={threads}"]
                cmd += ["callbacks.progress_bar=null", f"hydra.run.dir={run_dir}"]
                loads.append(os.getloadavg()[0])
                t0 = time.perf_counter()
                subprocess.run(cmd, env=env, check=True, capture_output=True)
                times.append(time.perf_counter() - t0)
    ratios = [a / b for a, b in zip(settings["auto"], settings["1"])]
    print(
        json.dumps(
            {
                "bench": "first_command",
                "whole_run_s": {f"num_threads={k}": spread(v, 1) for k, v in settings.items()},
                "auto_over_one_thread": spread(ratios, 3),
                "load1_at_starts": spread(loads, 1),
                **machine(),
            }
        )
    )


if __name__ == "__main__":
    main()
