"""Shared helpers: run sweeplab-train jobs in-process (fast) or as the real CLI (subprocess)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # datasets would try the hub for 20+ s before failing offline
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]


def compose_job(overrides: list[str], out_dir: Path):
    """The job config Hydra would hand to the task function, with the run dir set to ``out_dir``."""
    from sweeplab.api import compose

    out_dir.mkdir(parents=True, exist_ok=True)
    return compose(overrides, run_dir=out_dir, check=False).cfg


def build(group: str, *overrides: str, **kwargs):
    """Instantiate ``cfg.<group>`` of the shipped config composed with ``overrides`` (``kwargs`` are what the
    run adds: data facts for a model): tests build objects the way a run does, with the YAMLs' values."""
    import tempfile

    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    cfg = compose_job(list(overrides), Path(tempfile.mkdtemp(prefix="sweeplab_build_")))
    try:
        return instantiate(cfg[group], **kwargs)
    except InstantiationException as e:
        raise (e.__cause__ or e) from None  # the constructor's own error, as a Python caller would see it


def run_job_inprocess(overrides: list[str], out_dir: Path) -> dict:
    """Run one job like `sweeplab-train <overrides>` would, through the Python API; returns its metrics.json
    and raises SystemExit with the CLI's exit code when the run did not complete."""
    from sweeplab.api import train

    try:
        res = train(["callbacks.progress_bar=null", *overrides], run_dir=out_dir)
    finally:
        import torch

        torch.set_grad_enabled(True)
    if not res.ok:
        raise SystemExit(res.exit_code)
    return json.loads((out_dir / "metrics.json").read_text())


def cli(*args: str, cwd: Path | None = None, timeout: float = 600, env: dict | None = None):
    """Run an entry point module as the user would; returns the CompletedProcess."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env
    )


SUBPROCESS_ENV = {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def launch(args: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    """Start ``args`` in the background, its output (stdout and stderr) going to ``log``."""
    with open(log, "w") as out:
        return subprocess.Popen(
            args, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **SUBPROCESS_ENV}
        )


def wait_for(
    predicate, proc: subprocess.Popen | None = None, timeout: float = 240, what: str = "", log: Path | None = None
) -> None:
    """Poll ``predicate`` until it holds; fail when ``proc`` ends first or after ``timeout`` seconds (with the
    end of ``log`` in the message)."""
    deadline = time.time() + timeout
    while not predicate():
        tail = f":\n{log.read_text()[-3000:]}" if log is not None and log.is_file() else ""
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process ended (rc {proc.returncode}) before {what}{tail}")
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}{tail}")
        time.sleep(0.05)


def kill_when(proc: subprocess.Popen, predicate, what: str, log: Path, settle: float = 0.0) -> None:
    """SIGKILL ``proc`` once ``predicate`` holds (and ``settle`` seconds later); killed whatever happens."""
    try:
        wait_for(predicate, proc, timeout=300, what=what, log=log)
        time.sleep(settle)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)


@pytest.fixture
def run_job(tmp_path):
    counter = iter(range(10_000))

    def _run(*overrides: str, name: str | None = None) -> tuple[Path, dict]:
        out = tmp_path / (name or f"run{next(counter)}")
        return out, run_job_inprocess(list(overrides), out)

    return _run


@pytest.fixture(scope="session")
def trained_names_run(tmp_path_factory):
    """One short real names run shared by the generation / eval / files tests."""
    out = tmp_path_factory.mktemp("names_run") / "run"
    metrics = run_job_inprocess(
        [
            "model=mlp",
            "trainer.max_epochs=2",
            "data.batch_size=256",
            "trainer.log_every_n_steps=10",
            "task.num_samples=20",
        ],
        out,
    )
    return out, metrics


def assert_image(path: Path, min_size: tuple[int, int] = (200, 150)) -> None:
    """``path`` is a PNG that opens, is at least ``min_size`` (width, height) pixels, and is not blank."""
    import matplotlib.image as mpimg
    import numpy as np

    img = mpimg.imread(str(path))
    h, w = img.shape[:2]
    assert w >= min_size[0] and h >= min_size[1], f"{path}: {w}x{h} pixels"
    pixels = img[..., :3].reshape(-1, 3) if img.ndim == 3 else img.reshape(-1, 1)
    assert len(np.unique(pixels, axis=0)) > 8, f"{path} is blank"
