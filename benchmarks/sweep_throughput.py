"""Sweep throughput: jobs per hour of a 12-job names sweep run one at a time (Hydra's basic launcher, one
process) against the same sweep packed across the cores (``hydra/launcher=packed``: a worker per core, one
thread per job). Each is a real ``sweeplab-train -m`` launch, timed from start to exit (sweep summary
included), interleaved A B A B over ``--rounds``. One JSON line.

The default grid is the README's 12-job names sweep (the default names MLP, ~16 s a job); ``--short`` times a
grid of ~2 s jobs, where the fixed cost of a launch (Python, Hydra, the torch + Lightning import) weighs most.

    python benchmarks/sweep_throughput.py [--rounds 2] [--short] [GRID OVERRIDES ...]
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

GRID = ["scheduler=constant,cosine,step", "model.dropout=0,0.2", "seed=1,2"]  # README "Sweeps"
SHORT_GRID = [
    "data=names",
    "model=mlp",
    "data.batch_size=256",
    "trainer.max_epochs=2",
    "model.hidden_dim=100,200,300",
    "optimizer.lr=3e-3,1e-2",
    "seed=1,2",
]
LAUNCHERS = {"sequential": [], "packed": ["hydra/launcher=packed"]}


def sweep(grid: list[str], extra: list[str], sweep_dir: Path, env: dict) -> tuple[float, int, int]:
    """(seconds, jobs, jobs completed) of one ``sweeplab-train -m`` launch."""
    cmd = [sys.executable, "-m", "sweeplab.train", "-m", *grid, *extra, f"hydra.sweep.dir={sweep_dir}"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    records = [json.loads(p.read_text()) for p in sweep_dir.glob("*/metrics.json")]
    return seconds, len(records), sum(r.get("status") == "completed" for r in records)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--short", action="store_true", help="the grid of ~2 s jobs instead of the README's")
    ap.add_argument("grid", nargs="*", help="the sweep's overrides (default: the README's 12-job names grid)")
    args = ap.parse_args()
    grid = args.grid or (SHORT_GRID if args.short else GRID)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    seconds = {name: [] for name in LAUNCHERS}
    jobs = 0
    with tempfile.TemporaryDirectory(prefix="sweeplab_throughput_") as tmp:
        for i in range(args.rounds):
            for name, extra in LAUNCHERS.items():
                s, n, done = sweep(grid, extra, Path(tmp) / f"{name}{i}", env)
                if done != n or n == 0:
                    raise SystemExit(f"{name}: only {done} of {n} jobs completed")
                seconds[name].append(s)
                jobs = n
    per_hour = {name: spread([jobs * 3600 / s for s in v], 0) for name, v in seconds.items()}
    ratios = [a / b for a, b in zip(seconds["sequential"], seconds["packed"])]
    print(
        json.dumps(
            {
                "bench": "sweep_throughput",
                "grid": grid,
                "jobs": jobs,
                "sweep_s": {name: spread(v, 1) for name, v in seconds.items()},
                "jobs_per_hour": per_hour,
                "speedup": spread(ratios, 2),
                **machine(),
            }
        )
    )


if __name__ == "__main__":
    main()
