"""One GPU per job for parallel sweeps on one machine (the `hydra/launcher=gpus` preset).

SWEEPLAB_GPUS lists the device ids to share out ("0,1,3", or "all" for every GPU nvidia-smi lists).
Each worker process claims one free id with an exclusive lock and keeps it for its lifetime: joblib
reuses workers, and once torch has initialised CUDA in a process, changing CUDA_VISIBLE_DEVICES there no
longer has any effect — so the device follows the process, not the job number. The lock is an flock on a
file, so it is released by the kernel when a worker dies, killed or not. A worker finding every GPU taken
waits for one. Ray (`ray.remote.num_gpus`) and SLURM (`gpus_per_task`) assign devices themselves.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

log = logging.getLogger("sweeplab")
ENV = "SWEEPLAB_GPUS"
_held: tuple[str, int] | None = None  # (device id, lock fd) of this process


def device_ids(spec: str) -> list[str]:
    if spec.strip().lower() != "all":
        ids = [s.strip() for s in spec.split(",") if s.strip()]
        if not ids:
            raise ValueError(f"{ENV}={spec!r}: give device ids like 0,1,2 or 'all'")
        return ids
    # nvidia-smi, not torch.cuda.device_count(): that would initialise CUDA before the device is chosen.
    if not shutil.which("nvidia-smi"):
        raise ValueError(f"{ENV}=all but nvidia-smi is not on PATH; list the device ids, e.g. {ENV}=0,1")
    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"], capture_output=True, text=True, check=True
    ).stdout
    ids = [line.strip() for line in out.splitlines() if line.strip()]
    if not ids:
        raise ValueError(f"{ENV}=all but nvidia-smi lists no GPU")
    return ids


def claim_gpu(lock_dir: Path | None = None, poll_s: float = 2.0) -> str | None:
    """Claim one of SWEEPLAB_GPUS for this process and make it the only visible device; returns its id
    (None when SWEEPLAB_GPUS is unset)."""
    global _held
    spec = os.environ.get(ENV)
    if not spec:
        return None
    if _held is None:
        ids = device_ids(spec)
        lock_dir = Path(lock_dir or Path(tempfile.gettempdir()) / "sweeplab-gpu-locks")
        lock_dir.mkdir(parents=True, exist_ok=True)
        waited = False
        while _held is None:
            for dev in ids:
                fd = os.open(lock_dir / f"gpu{dev}.lock", os.O_RDWR | os.O_CREAT, 0o666)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                _held = (dev, fd)
                break
            else:
                if not waited:
                    log.info("all GPUs in %s=%s are taken; waiting for one", ENV, spec)
                    waited = True
                time.sleep(poll_s)
    os.environ["CUDA_VISIBLE_DEVICES"] = _held[0]
    return _held[0]
