"""The seed's names loop (benchmarks/seed_loop.py, plain PyTorch, one thread) against sweeplab reaching at
least its test loss (``experiment=names_fast``, a whole run: checks, data, training, validation, test,
checkpoints, curves.png, samples.txt, metrics.json). Both timed as whole processes from launch to exit,
interleaved A B C A B C over ``--rounds``, beside a bare ``import torch, pytorch_lightning`` (the part of
a fresh process's time that no Lightning program avoids). C is the same ``sweeplab-train`` command handed to
a warm ``sweeplab-daemon`` (started once, before the rounds, its warm-up reported apart). One JSON line.

    python benchmarks/names_vs_seed.py [--rounds 3] [SWEEPLAB OVERRIDES ...]
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

HERE = Path(__file__).resolve().parent


def timed(cmd: list[str], env: dict) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return seconds, proc.stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    overrides = args.overrides or ["experiment=names_fast"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    seed_env = {**env, "OMP_NUM_THREADS": "1"}  # the seed loop at its fastest: torch's 2 threads are far slower
    run_env = {k: v for k, v in env.items() if k not in ("OMP_NUM_THREADS", "SWEEPLAB_DAEMON")}  # its own policy
    seed_s, seed_loss, run_s, run_loss, bare_s, warm_s, warm_loss = [], [], [], [], [], [], []
    script = str(Path(sys.executable).parent / "sweeplab-train")
    with tempfile.TemporaryDirectory(prefix="sweeplab_seed_") as tmp:
        warm_env = {**run_env, "SWEEPLAB_DAEMON_DIR": str(Path(tmp) / "daemon")}
        started, _ = timed([sys.executable, "-m", "sweeplab.daemon", "start"], warm_env)
        for i in range(args.rounds):
            s, out = timed([sys.executable, str(HERE / "seed_loop.py")], seed_env)
            seed_s.append(s)
            seed_loss.append(json.loads(out.strip().splitlines()[-1])["test_loss"])
            run_dir = Path(tmp) / f"run{i}"
            cmd = [sys.executable, "-m", "sweeplab.train", *overrides, "callbacks.progress_bar=null"]
            s, _ = timed([*cmd, f"hydra.run.dir={run_dir}"], run_env)
            run_s.append(s)
            run_loss.append(json.loads((run_dir / "metrics.json").read_text())["final"]["test/loss"])
            bare_s.append(timed([sys.executable, "-c", "import torch, pytorch_lightning"], run_env)[0])
            warm_dir = Path(tmp) / f"warm{i}"
            s, _ = timed([script, *overrides, "callbacks.progress_bar=null", f"hydra.run.dir={warm_dir}"], warm_env)
            warm_s.append(s)
            warm_loss.append(json.loads((warm_dir / "metrics.json").read_text())["final"]["test/loss"])
        served = json.loads(timed([sys.executable, "-m", "sweeplab.daemon", "status"], warm_env)[1])["served"]
        timed([sys.executable, "-m", "sweeplab.daemon", "stop"], warm_env)
    if served != args.rounds:
        raise SystemExit(f"the daemon ran {served} of the {args.rounds} warm commands")
    print(
        json.dumps(
            {
                "bench": "names_vs_seed",
                "overrides": overrides,
                "seed_loop": {"whole_process_s": spread(seed_s, 2), "test_loss": spread(seed_loss, 4)},
                "sweeplab": {"whole_process_s": spread(run_s, 2), "test_loss": spread(run_loss, 4)},
                "reaches_seed_loss": max(run_loss) <= min(seed_loss),
                "ratio": spread([b / a for a, b in zip(seed_s, run_s)], 3),
                "bare_import_torch_lightning_s": spread(bare_s, 2),
                "ratio_beyond_import": spread([(b - c) / a for a, b, c in zip(seed_s, run_s, bare_s)], 3),
                "with_daemon": {
                    "whole_process_s": spread(warm_s, 2),
                    "test_loss": spread(warm_loss, 4),
                    "ratio": spread([b / a for a, b in zip(seed_s, warm_s)], 3),
                    "daemon_start_s": round(started, 2),
                },
                **machine(),
            }
        )
    )


if __name__ == "__main__":
    main()
