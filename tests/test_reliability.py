"""Faults, done for real to real processes: signals, kills, reruns into used dirs, two launches at once, a full
disk, corrupt files, a diverging job. Each test says what survived and what the user saw."""

from __future__ import annotations

import csv
import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import SUBPROCESS_ENV as ENV
from conftest import cli, launch, wait_for

# A names MLP at batch 256: 101 steps an epoch, ~0.3 s each epoch on one thread.
FAST = [
    "data.batch_size=256",
    "trainer.log_every_n_steps=10",
    "callbacks.progress_bar=null",
    "callbacks.early_stopping=null",
]


def train_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "sweeplab.train", *args]


def record(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def digest(d: Path) -> dict[str, str]:
    """sha256 of every file under ``d`` (the lock file aside: it only names its last owner)."""
    return {
        str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(d.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def ckpt_epoch(path: Path) -> int:
    return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])


def assert_history_whole(run: Path, epochs: int, log_every: int = 10) -> None:
    """metrics.csv: every validation once, every training-loss logging step once, none missing, in order."""
    table = rows(run / "metrics.csv")
    assert [int(r["epoch"]) for r in table if r["val/loss"]] == list(range(epochs))
    steps = [int(r["step"]) for r in table if r["train/loss"]]
    total = record(run)["steps"]
    assert steps == [k * log_every - 1 for k in range(1, total // log_every + 1)], "a gap or a duplicate"


def one_error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert "Traceback" not in stderr, stderr[-2000:]
    errors = [ln for ln in lines if "error:" in ln]
    assert len(errors) == 1, stderr[-2000:]
    return errors[0]


# ---------------------------------------------------------------- signals and kills
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=["SIGKILL", "SIGTERM", "SIGINT"])
def test_signal_then_resume_continues_without_gap_or_duplicate(sig, tmp_path):
    run = tmp_path / "run"
    args = [*FAST, f"paths.log_dir={tmp_path}", f"hydra.run.dir={run}"]
    proc = launch(train_cmd(*args, "trainer.max_epochs=300"), tmp_path, tmp_path / "first.log")
    try:
        last = run / "checkpoints" / "last.ckpt"
        wait_for(lambda: last.is_file() and ckpt_epoch(last) >= 1, proc, what="a checkpoint after epoch 1")
        proc.send_signal(sig)
        proc.wait(timeout=120)
    finally:
        proc.kill()
    output = (tmp_path / "first.log").read_text()
    m = record(run)
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL and m["status"] == "running"  # nobody wrote the ending
    else:
        assert proc.returncode == 128 + sig, output[-2000:]
        assert m["status"] == "interrupted" and m["attempts"][-1]["error"] == f"interrupted ({sig.name})"
        assert "Traceback" not in output
        assert f"hydra.run.dir={run} ckpt_path=last" in output  # the line says how to resume
    stopped_at = torch.load(last, map_location="cpu", weights_only=True)
    epochs = int(stopped_at["epoch"]) + 2

    res = cli("-m", "sweeplab.train", *args, f"trainer.max_epochs={epochs}", "ckpt_path=last", cwd=tmp_path, env=ENV)
    assert res.returncode == 0, res.stderr[-3000:]
    m = record(run)
    assert m["status"] == "completed" and m["epochs"] == epochs
    assert [a["status"] for a in m["attempts"]] == ["running" if sig == signal.SIGKILL else "interrupted", "completed"]
    assert m["attempts"][-1]["resumed_from"] == "checkpoints/last.ckpt"
    assert [h["epoch"] for h in m["history"]] == list(range(epochs))
    assert m["steps"] == 101 * epochs  # the interrupted epoch was finished, not restarted or skipped
    assert_history_whole(run, epochs)
    assert (run / "metrics.attempt-1.csv").is_file()  # the first attempt's rows as they were


def test_sigterm_stops_a_sweep_and_a_rerun_resumes_it(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", "seed=1,2", *FAST, "trainer.max_epochs=12", f"paths.log_dir={tmp_path}", f"hydra.sweep.dir={sweep}"]
    proc = launch(train_cmd(*args), tmp_path, tmp_path / "first.log")
    try:
        wait_for(lambda: any(sweep.glob("0_*/checkpoints/last.ckpt")), proc, what="job 0's first checkpoint")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM
    (job0,) = sweep.glob("0_*")
    assert record(job0)["status"] == "interrupted"
    assert not list(sweep.glob("1_*/metrics.json")), "the sweep went on to the next job"
    assert (sweep / "summary.md").is_file()  # written on the way out
    assert f"hydra.sweep.dir={sweep}" in (tmp_path / "first.log").read_text()

    res = cli("-m", "sweeplab.train", *args, cwd=tmp_path, env=ENV)  # the same command again
    assert res.returncode == 0, res.stderr[-3000:]
    m = record(job0)
    assert m["status"] == "completed" and [a["status"] for a in m["attempts"]] == ["interrupted", "completed"]
    assert m["attempts"][-1]["resumed_from"] == "checkpoints/last.ckpt" and m["steps"] == 101 * 12
    assert_history_whole(job0, 12)
    (job1,) = sweep.glob("1_*")
    assert record(job1)["status"] == "completed"


# ---------------------------------------------------------------- run dirs that hold runs
def test_rerun_into_a_finished_run_dir_is_refused_and_overwrite_moves_it_aside(tmp_path):
    run = tmp_path / "run"
    args = [*FAST, "trainer.max_epochs=2", f"paths.log_dir={tmp_path}", f"hydra.run.dir={run}"]
    assert cli("-m", "sweeplab.train", *args, cwd=tmp_path, env=ENV).returncode == 0
    before = digest(run)
    csv_rows = len(rows(run / "metrics.csv"))

    res = cli("-m", "sweeplab.train", *args, "model.hidden_dim=50", cwd=tmp_path, env=ENV)
    assert res.returncode == 2
    line = one_error_line(res.stderr)
    assert f"{run} already holds a run (completed" in line
    assert "ckpt_path=last" in line and "overwrite=true" in line
    assert digest(run) == before and len(rows(run / "metrics.csv")) == csv_rows
    assert not list((run / "checkpoints").glob("last-v*.ckpt"))

    res = cli("-m", "sweeplab.train", *args, "model.hidden_dim=50", "ckpt_path=last", cwd=tmp_path, env=ENV)
    assert res.returncode == 2 and "model.hidden_dim: 200 -> 50" in one_error_line(res.stderr)
    assert digest(run) == before

    res = cli("-m", "sweeplab.train", *args, "model.hidden_dim=50", "overwrite=true", cwd=tmp_path, env=ENV)
    assert res.returncode == 0, res.stderr[-3000:]
    (moved,) = tmp_path.glob("run.old-*")
    assert digest(moved) == before  # byte for byte
    m = record(run)
    assert m["status"] == "completed" and m["rerun"] == {"reason": "overwrite=true", "previous": str(moved)}
    assert m["identity"]["config"]["model"]["hidden_dim"] == 50


def test_failed_resume_keeps_the_completed_record(tmp_path):
    run = tmp_path / "run"
    args = [*FAST, "trainer.max_epochs=2", f"paths.log_dir={tmp_path}", f"hydra.run.dir={run}"]
    assert cli("-m", "sweeplab.train", *args, cwd=tmp_path, env=ENV).returncode == 0
    done = record(run)
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:5000])  # as a crash mid-write would leave it

    res = cli("-m", "sweeplab.train", *args, "trainer.max_epochs=4", "ckpt_path=last", cwd=tmp_path, env=ENV)
    assert res.returncode == 2
    assert f"cannot read checkpoint {last}" in one_error_line(res.stderr)
    m = record(run)
    assert m["status"] == "completed"
    for key in ("best", "final", "history", "epochs", "steps", "objective"):
        assert m[key] == done[key], key
    assert [a["status"] for a in m["attempts"]] == ["completed", "failed"]
    assert "cannot read checkpoint" in m["attempts"][-1]["error"]


@pytest.mark.parametrize(
    "content", ['{"status": "completed", "best": {"val/lo', "[1, 2, 3]"], ids=["truncated", "list"]
)
def test_unreadable_record_is_never_taken_for_a_job_that_did_not_start(content, tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", "seed=1,2", *FAST, "trainer.max_epochs=1", f"paths.log_dir={tmp_path}", f"hydra.sweep.dir={sweep}"]
    assert cli("-m", "sweeplab.train", *args, cwd=tmp_path, env=ENV).returncode == 0
    (job0,) = sweep.glob("0_*")
    (job0 / "metrics.json").write_text(content)
    before = digest(job0)
    res = cli("-m", "sweeplab.train", *args, cwd=tmp_path, env=ENV)
    assert res.returncode == 0, res.stderr[-3000:]
    assert digest(job0) == before  # not retrained over, not rewritten
    assert "cannot tell what" in res.stdout + res.stderr

    res = cli(
        "-m", "sweeplab.train", *FAST, f"paths.log_dir={tmp_path}", f"hydra.run.dir='{job0}'", cwd=tmp_path, env=ENV
    )
    assert res.returncode == 2 and f"{job0 / 'metrics.json'} is" in one_error_line(res.stderr)


def test_sweep_rerun_reruns_only_the_job_whose_configuration_changed(tmp_path):
    a, b, c = (tmp_path / f"{n}.txt" for n in "abc")
    names = Path(__file__).resolve().parents[1] / "src" / "sweeplab" / "data" / "assets" / "names.txt"
    for f in (a, b, c):
        shutil.copy(names, f)
    c.write_text(c.read_text() + "zyzzyva\n")
    sweep = tmp_path / "sweep"
    common = ["-m", *FAST, "trainer.max_epochs=1", f"paths.log_dir={tmp_path}", f"hydra.sweep.dir={sweep}"]
    assert cli("-m", "sweeplab.train", *common, f"data.path={a},{b}", cwd=tmp_path, env=ENV).returncode == 0
    job0, job1 = sorted(p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    before0 = digest(job0)

    res = cli("-m", "sweeplab.train", *common, f"data.path={a},{c}", cwd=tmp_path, env=ENV)
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout + res.stderr
    assert f"skipping {job0}: already completed with the same configuration" in out
    assert digest(job0) == before0
    m = record(job1)
    assert m["status"] == "completed" and m["attempts"][0]["attempt"] == 1
    assert f"data.path: {b} -> {c}" in m["rerun"]["reason"]
    moved = Path(m["rerun"]["previous"])
    assert moved.parent == sweep and record(moved)["identity"]["config"]["data"]["path"] == str(b)


def test_two_launches_into_one_sweep_dir(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", "seed=1,2", *FAST, "trainer.max_epochs=6", f"paths.log_dir={tmp_path}", f"hydra.sweep.dir={sweep}"]
    first = launch(train_cmd(*args), tmp_path, tmp_path / "first.log")
    try:
        wait_for(lambda: any(sweep.glob("0_*/metrics.json")), first, what="the first launch's first job")
        second = cli("-m", "sweeplab.train", *args, cwd=tmp_path, env=ENV)
        first.wait(timeout=300)
    finally:
        first.kill()
    assert second.returncode == 2
    line = one_error_line(second.stderr)
    assert f"sweep dir {sweep} is in use by pid {first.pid}" in line
    assert first.returncode == 0
    for job in sorted(sweep.glob("[01]_*")):
        m = record(job)
        assert m["status"] == "completed" and len(m["attempts"]) == 1  # trained once, by the first launch
        assert_history_whole(job, 6)


def test_second_launch_into_a_running_run_dir_is_refused(tmp_path):
    run = tmp_path / "run"
    args = [*FAST, f"paths.log_dir={tmp_path}", f"hydra.run.dir={run}"]
    first = launch(train_cmd(*args, "trainer.max_epochs=300"), tmp_path, tmp_path / "first.log")
    try:
        wait_for(lambda: (run / "metrics.csv").is_file(), first, what="the first run to train")
        res = cli("-m", "sweeplab.train", *args, "trainer.max_epochs=300", "ckpt_path=last", cwd=tmp_path, env=ENV)
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=120)
    assert res.returncode == 2
    assert f"run dir {run} is in use by pid {first.pid}" in one_error_line(res.stderr)


# ---------------------------------------------------------------- the disk
def _mount_tmpfs(where: Path, size: str, readonly: bool = False) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if readonly else "")
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], capture_output=True).returncode == 0
    return ok


def test_full_disk_ends_in_one_line_and_leaves_no_half_written_file(tmp_path, record_property):
    mnt = tmp_path / "small"
    if _mount_tmpfs(mnt, "3m"):
        record_property("full_disk", "tmpfs")
        print("full disk: a 3 MiB tmpfs")
        try:
            run = mnt / "run"
            # Leave room for the start of the run (its record, the space reserve, a little of metrics.csv),
            # not for a checkpoint (~160 kB) on top.
            free = lambda: shutil.disk_usage(mnt).free  # noqa: E731
            with open(mnt / "filler", "wb") as f:
                f.write(b"\0" * (free() - 420_000))
            res = cli(
                "-m",
                "sweeplab.train",
                *FAST,
                "trainer.max_epochs=3",
                f"paths.log_dir={tmp_path}",
                f"hydra.run.dir={run}",
                cwd=tmp_path,
                env=ENV,
            )
            _check_full_disk_run(run, res.returncode, res.stderr)
        finally:
            subprocess.run(["umount", str(mnt)], check=False)
    else:
        record_property("full_disk", "injected ENOSPC")
        print("full disk: ENOSPC injected into the checkpoint writer (no tmpfs could be mounted)")
        from sweeplab import api
        from sweeplab.runs import checkpoint_io

        real = checkpoint_io.atomic_write

        def full(path, write):
            def partial(f):
                f.write(b"x" * 1000)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

            real(path, partial)

        run = tmp_path / "run"
        checkpoint_io.atomic_write = full
        try:
            res = api.train([*FAST, "trainer.max_epochs=3"], run_dir=run)
        finally:
            checkpoint_io.atomic_write = real
        _check_full_disk_run(run, res.exit_code, f"sweeplab-train: error: run failed: {res.error}")


def _check_full_disk_run(run: Path, returncode: int, stderr: str) -> None:
    assert returncode == 1
    line = one_error_line(stderr)
    assert "No space left on device" in line and str(run) in line, line
    m = record(run)  # the ending was written: the space reserve made room for it
    assert m["status"] == "failed" and "No space left on device" in m["error"]
    assert not list(run.rglob("*.tmp")), "a temp file was left behind"
    for ckpt in run.rglob("*.ckpt"):  # any checkpoint there is whole
        torch.load(ckpt, map_location="cpu", weights_only=True)


def test_output_dir_that_is_a_file_or_read_only(tmp_path):
    blocker = tmp_path / "taken"
    blocker.write_text("not a dir")
    res = cli(
        "-m",
        "sweeplab.train",
        *FAST,
        f"paths.log_dir={tmp_path}",
        f"hydra.run.dir={blocker}/run",
        cwd=tmp_path,
        env=ENV,
    )
    assert res.returncode != 0 and str(blocker) in one_error_line(res.stderr)
    assert blocker.read_text() == "not a dir"

    ro = tmp_path / "ro"
    if _mount_tmpfs(ro, "1m", readonly=True):
        try:
            res = cli(
                "-m",
                "sweeplab.train",
                *FAST,
                f"paths.log_dir={tmp_path}",
                f"hydra.run.dir={ro}/run",
                cwd=tmp_path,
                env=ENV,
            )
            assert res.returncode != 0 and str(ro) in one_error_line(res.stderr)
        finally:
            subprocess.run(["umount", str(ro)], check=False)


# ---------------------------------------------------------------- divergence
def test_a_diverging_job_in_a_sweep_is_recorded_as_diverged(tmp_path):
    sweep = tmp_path / "sweep"
    res = cli(
        "-m",
        "sweeplab.train",
        "-m",
        "optimizer=sgd",
        "optimizer.lr=0.05,1e6,0.1",
        *FAST,
        "trainer.max_epochs=2",
        f"paths.log_dir={tmp_path}",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        env=ENV,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    by_lr = {record(j)["identity"]["config"]["optimizer"]["lr"]: record(j) for j in sweep.glob("[0-9]_*")}
    assert by_lr[1e6]["status"] == "diverged", by_lr[1e6].get("error")
    assert "has stayed above" in by_lr[1e6]["error"]  # finite, but far above where it started
    assert by_lr[0.05]["status"] == by_lr[0.1]["status"] == "completed"
    summary = rows(sweep / "summary.csv")
    assert [r["status"] for r in summary][-1] == "diverged"  # ranked last
