"""Speed features that a test can hold without timing anything: the num_threads policy (its decision, the
work it counts, what a run and a packed sweep record), torch.compile in place, fused AdamW, and what a
names run imports before its first training step. The timings themselves are in benchmarks/."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from conftest import REPO, build, compose_job

QUIET = ["callbacks.progress_bar=null", "debug=limit", "task.num_samples=2"]


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------- the policy's decision
def test_threads_for_gives_more_threads_only_to_large_operators():
    from sweeplab.runs.threads import MIN_FLOPS_PER_OP, threads_for

    assert threads_for(1000 * MIN_FLOPS_PER_OP * 0.5, 1000, cores=4) == 1
    assert threads_for(1000 * MIN_FLOPS_PER_OP * 2, 1000, cores=4) == 4
    assert threads_for(1000 * MIN_FLOPS_PER_OP * 2, 1000, cores=1) == 1
    assert threads_for(0.0, 0, cores=4) == 1


def test_usable_cores_respects_omp_num_threads(monkeypatch):
    from sweeplab.runs.threads import usable_cores

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert usable_cores() == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert usable_cores() == len(os.sched_getaffinity(0))


def test_free_cores_leaves_the_cores_others_use(monkeypatch):
    from sweeplab.runs import threads

    monkeypatch.setattr(threads.os, "cpu_count", lambda: 8)
    assert threads.free_cores(4, others=0.2) == 4
    assert threads.free_cores(4, others=5.6) == 2
    assert threads.free_cores(4, others=9.0) == 1


def test_estimate_step_counts_the_real_steps_work_without_touching_the_network():
    """The meta-device count equals FlopCounterMode on the real forward and backward (a network of plain
    operators: CPU's fused LSTM kernel hides its matmuls from a real count, not from the meta one), and the
    network's weights, its gradients and torch's random state are left exactly as they were."""
    from torch.utils.flop_counter import FlopCounterMode

    from sweeplab.runs.threads import estimate_step

    dm = build("data", "data=names", "data.batch_size=16")
    dm.setup("fit")
    net = build("model", "model=mlp", "model.dropout=0.2", **dm.model_kwargs())  # dropout draws random numbers
    batch = next(iter(dm.train_dataloader()))
    weights = {k: v.clone() for k, v in net.state_dict().items()}
    rng = torch.get_rng_state()
    flops, calls = estimate_step(net, batch)
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(v, weights[k]) for k, v in net.state_dict().items())
    assert all(p.grad is None for p in net.parameters())
    real = FlopCounterMode(display=False)
    with real:
        net.nll(*batch)[0].sum().backward()
    assert flops == real.get_total_flops() > 0
    assert calls > 50  # every operator of forward and backward, not only the matmuls


def _first_batch(policy, net, batch):
    class Module:
        device = torch.device("cpu")

    Module.net = net
    policy.on_train_batch_start(None, Module(), batch, 0)


def test_policy_on_a_tiny_network_keeps_one_thread(restore_threads, monkeypatch):
    from sweeplab.runs import threads

    monkeypatch.setattr(threads, "usable_cores", lambda: 2)

    dm = build("data", "data=names")
    dm.setup("fit")
    net = build("model", "model=mlp", **dm.model_kwargs())
    policy = threads.ThreadPolicy("auto")
    assert torch.get_num_threads() == 1  # from the start of the run, before anything is known
    _first_batch(policy, net, next(iter(dm.train_dataloader())))
    assert policy.threads == 1 and "below" in policy.reason


def test_policy_gives_a_large_network_the_free_cores_and_gives_them_back(restore_threads, monkeypatch):
    from sweeplab.runs import threads

    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(threads, "MIN_FLOPS_PER_OP", 1.0)  # every network is "large"
    load = {"others": 0.0}
    monkeypatch.setattr(threads.CpuMonitor, "others", lambda self: load["others"])
    dm = build("data", "data=names")
    dm.setup("fit")
    net = build("model", "model=mlp", **dm.model_kwargs())
    batch = next(iter(dm.train_dataloader()))
    policy = threads.ThreadPolicy("auto")
    _first_batch(policy, net, batch)
    assert policy.threads == torch.get_num_threads() == 2
    load["others"] = 1.8  # another process takes the cores: at the next check the run drops to one thread
    policy._next_check = 0.0
    _first_batch(policy, net, batch)
    assert policy.threads == torch.get_num_threads() == 1


def test_fixed_num_threads_is_used_as_given(restore_threads):
    from sweeplab.runs.threads import ThreadPolicy

    policy = ThreadPolicy(3)
    _first_batch(policy, torch.nn.Linear(2, 2), (torch.zeros(1, 2), torch.zeros(1)))
    assert policy.threads == torch.get_num_threads() == 3


@pytest.mark.parametrize("value", ["0", "many", "1.5", "null"])
def test_bad_num_threads_is_one_line(value):
    from sweeplab.config.preflight import check_overrides
    from sweeplab.errors import ConfigError

    with pytest.raises(ConfigError, match=r"num_threads=.* give auto or a number of threads >= 1"):
        check_overrides([f"num_threads={value}"])


def test_run_records_its_threads_compiles_in_place_and_uses_fused_adamw(run_job, restore_threads, tmp_path):
    """A default run records the policy's choice; compile.enabled leaves the checkpoint's keys those of the
    plain network (so eval and generate restore it); the default AdamW is the fused one."""
    from sweeplab import api

    cfg = compose_job(["model=mlp"], tmp_path / "composed")
    assert cfg.num_threads == "auto" and cfg.optimizer.fused is True
    out, m = run_job("model=mlp", "compile.enabled=true", "compile.backend=eager", *QUIET)
    assert m["status"] == "completed" and m["num_threads"] == 1
    state = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert not any("_orig_mod" in k for k in state["state_dict"])
    plain = build("model", "model=mlp", vocab_size=28, max_len=16).state_dict()
    assert {k for k in state["state_dict"] if k.startswith("net.")} == {f"net.{k}" for k in plain}
    assert state["optimizer_states"][0]["param_groups"][0]["fused"] is True
    assert math.isfinite(api.evaluate(out)["test/loss"])


# ---------------------------------------------------------------- a packed sweep
def test_packed_sweep_runs_each_job_on_one_thread(tmp_path):
    """hydra/launcher=packed: a worker per core, and each job's policy sees the launcher's cap (no
    OMP_NUM_THREADS from the caller: the workers get it from joblib)."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    sweep_dir = tmp_path / "sweep"
    res = subprocess.run(
        [sys.executable, "-m", "sweeplab.train", "-m", "hydra/launcher=packed", "seed=1,2", *QUIET,
         f"hydra.sweep.dir={sweep_dir}", f"paths.log_dir={tmp_path}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    records = [json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/metrics.json"))]
    assert [r["status"] for r in records] == ["completed", "completed"]
    assert [r["num_threads"] for r in records] == [1, 1]
    assert len({r["attempts"][0]["pid"] for r in records}) == min(2, len(os.sched_getaffinity(0)))


# ---------------------------------------------------------------- start-up
def test_names_run_imports_nothing_heavy_before_its_first_step(tmp_path):
    """benchmarks/startup.py's child runs the real entry point to its first training batch: beyond what
    Lightning itself loads, sweeplab loads none of pandas, datasets, caustics, tensorboard."""
    out = tmp_path / "startup.json"
    res = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "startup.py"), "--child", str(out), "0", "data=names",
         "model=mlp", "callbacks.progress_bar=null", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=REPO / "benchmarks", capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.is_file(), res.stderr[-3000:]
    got = json.loads(out.read_text())
    assert not {"pandas", "datasets", "caustics", "tensorboard"} & set(got["loaded_by_sweeplab"])
    assert got["threads"] == 1 and set(got["seconds"]) >= {"import_lightning", "first_batch"}


# ---------------------------------------------------------------- the allocator
ALLOC_PROBE = """
import json, resource, sys, torch
from sweeplab.models.resnet import ResNet
from sweeplab.runs.memory import tune_allocator
torch.set_num_threads(1)
tuned = tune_allocator() if sys.argv[1] == "tune" else False
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
net = ResNet(in_channels=1, num_classes=3, image_size=64, width=16, depth=1, dropout=0.0, stages=4,
             stem_stride=1, stochastic_depth=0.0, downsample="stride")
x = torch.randn(32, 1, 64, 64)
for _ in range(2):  # the first steps grow the heap either way
    net(x).sum().backward()
before = faults()
for _ in range(6):
    net(x).sum().backward()
print(json.dumps({"tuned": tuned, "faults": faults() - before}))
"""


def _alloc_probe(mode: str, **env) -> dict:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}, **env}
    res = subprocess.run([sys.executable, "-c", ALLOC_PROBE, mode], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_tuned_allocator_keeps_large_tensors_off_fresh_mappings():
    """The lensing ResNet's steps at batch 32: glibc maps many of their activations afresh at every step and
    the kernel zero-fills them page by page (10-26k page faults a step measured); tuned, the freed blocks
    are reused from the heap once it has grown. A user's own MALLOC_* setting is left alone."""
    plain, tuned = _alloc_probe("default"), _alloc_probe("tune")
    assert tuned["tuned"] is True
    assert plain["faults"] > 20_000 and tuned["faults"] < plain["faults"] / 10, (plain, tuned)
    assert _alloc_probe("tune", MALLOC_TOP_PAD_="131072")["tuned"] is False
