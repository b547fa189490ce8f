"""Several processes for one run, and the GPU path. trainer=ddp_cpu (2 processes, DDP over gloo) makes the
same run as one process with the same global batch: the same files, written once, by rank 0, and the same
metrics up to the shuffling. The GPU tests run only where CUDA is (benchmarks/gpu.sh measures the GPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import cli, compose_job

# One epoch of the names MLP: 4 names x 64 per step in one process, 2 x 2 x 64 in two.
COMMON = ["data=names", "model=mlp", "trainer.max_epochs=1", "trainer.log_every_n_steps=20", "task.num_samples=5"]
COMMON += ["callbacks.progress_bar=null", "num_threads=1"]
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def train(tmp: Path, name: str, *overrides: str) -> tuple[Path, dict]:
    out = tmp / name
    env = {"OMP_NUM_THREADS": "1"}
    res = cli("-m", "sweeplab.train", *COMMON, *overrides, f"hydra.run.dir={out}", cwd=tmp, env=env)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    return out, json.loads((out / "metrics.json").read_text())


def files(run: Path) -> set[str]:
    return {str(p.relative_to(run)) for p in run.rglob("*") if p.is_file()}


def test_ddp_cpu_two_processes_make_the_same_run_as_one(tmp_path):
    one_dir, one = train(tmp_path, "one", "trainer=cpu", "data.batch_size=256")
    two_dir, two = train(tmp_path, "two", "trainer=ddp_cpu", "data.batch_size=128")
    assert files(one_dir) == files(two_dir)  # nothing extra from rank 1: no second log, record or plot
    assert one["status"] == two["status"] == "completed"
    assert len(two["attempts"]) == 1 and two["steps"] == one["steps"] and two["epochs"] == one["epochs"]
    assert set(two["final"]) == set(one["final"]) and set(two["best"]) == set(one["best"])
    assert len(two["history"]) == len(one["history"]) == 1
    assert two["final"]["test/loss"] == pytest.approx(one["final"]["test/loss"], abs=0.05)
    header = (one_dir / "metrics.csv").read_text().splitlines()[0]
    assert (two_dir / "metrics.csv").read_text().splitlines()[0] == header
    assert len((two_dir / "samples.txt").read_text().splitlines()) == 5


def test_ddp_is_refused_inside_a_sweep(tmp_path):
    from sweeplab.api import compose
    from sweeplab.config.validate import validate
    from sweeplab.errors import ConfigError

    job = compose(["trainer=ddp_cpu", "hydra.mode=MULTIRUN"], run_dir=tmp_path, check=False)
    with pytest.raises(ConfigError, match=r"trainer.strategy=ddp with trainer.devices=2 cannot run inside a sweep"):
        validate(job.cfg, job.choices)
    one_device = compose(["trainer=ddp_cpu", "trainer.devices=1", "hydra.mode=MULTIRUN"], run_dir=tmp_path, check=False)
    validate(one_device.cfg, one_device.choices)


def test_worker_rank_reads_the_launchers_variables(monkeypatch):
    from sweeplab.runs.distributed import RANK_VARIABLES, worker_rank

    for name in RANK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert worker_rank() == 0
    monkeypatch.setenv("LOCAL_RANK", "0")  # rank 0 keeps LOCAL_RANK=0 once Lightning has set it
    monkeypatch.setenv("SLURM_PROCID", "0")
    assert worker_rank() == 0
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert worker_rank() == 1


def test_gpu_trainer_presets_compose(tmp_path):
    gpu = compose_job(["trainer=gpu"], tmp_path).trainer
    ddp = compose_job(["trainer=ddp"], tmp_path).trainer
    assert (gpu.accelerator, gpu.devices, gpu.precision) == ("gpu", 1, "bf16-mixed")
    assert (ddp.strategy, ddp.devices, ddp.precision, ddp.sync_batchnorm) == ("ddp", "auto", "bf16-mixed", True)


@needs_cuda
def test_gpu_bf16_run_with_compile(run_job):
    out, m = run_job("trainer=gpu", "model=transformer", "compile.enabled=true", "debug=limit", "task.num_samples=2")
    assert m["status"] == "completed" and m["final"]["test/loss"] < 3.4  # below the uniform 28-way loss
    assert (out / "samples.txt").is_file()


@needs_cuda
def test_gpu_lensing_bf16_run(run_job):
    _, m = run_job("trainer=gpu", "data=lensing", "model=resnet", "debug=limit", "data.train_per_class=40")
    assert m["status"] == "completed" and 0 <= m["final"]["test/acc"] <= 1
