"""Sweeps end to end: summaries (failed jobs, seeds, rerun command), sweeplab-compare, kill-and-resume,
launchers (joblib + one GPU per worker, Ray). Each sweep is a real `sweeplab-train -m` in a subprocess, with
tiny runs (debug=limit). The Optuna sweeper's tests are in test_search_sweeper.py."""

from __future__ import annotations

import csv
import json
import os
import shlex
import shutil
import sys
from pathlib import Path

import pytest

from conftest import assert_image, cli, kill_when, launch

QUIET = ["debug=limit", "callbacks.progress_bar=null"]
ENV = {"OMP_NUM_THREADS": "1"}


def sweep(*args: str, cwd: Path, env: dict | None = None, timeout: float = 600):
    res = cli("-m", "sweeplab.train", "-m", *args, *QUIET, cwd=cwd, env={**ENV, **(env or {})}, timeout=timeout)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    return res


def metrics(job: Path) -> dict:
    return json.loads((job / "metrics.json").read_text())


def jobs(sweep_dir: Path) -> list[Path]:
    return sorted((p for p in sweep_dir.iterdir() if (p / ".hydra").is_dir()), key=lambda p: int(p.name.split("_")[0]))


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def failing_sweep(tmp_path_factory):
    """2 seeds × a data path that exists or not: 2 completed jobs, 2 failed ones. Run by the joblib
    launcher with one (pretend) GPU per worker, so the summary is built from files written by workers."""
    tmp = tmp_path_factory.mktemp("failing")
    sweep_dir = tmp / "sweep"
    res = sweep(
        "seed=1,2",
        f"data.path=null,{tmp / 'missing.txt'}",
        "hydra/launcher=gpus",
        "hydra.launcher.n_jobs=2",
        f"paths.log_dir={tmp}",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp,
        env={"SWEEPLAB_GPUS": "3,5"},
    )
    return sweep_dir, res.stdout + res.stderr


def test_summary_lists_jobs_aggregates_seeds_and_prints_the_rerun_command(failing_sweep):
    sweep_dir, output = failing_sweep
    rows = read_csv(sweep_dir / "summary.csv")
    assert len(rows) == 4
    assert list(rows[0])[:3] == ["job", "seed", "data.path"]  # the varied overrides, nothing else
    assert {r["job"] for r in rows} == {p.name for p in jobs(sweep_dir)}
    done = [r for r in rows if r["status"] == "completed"]
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(done) == 2 and len(failed) == 2
    assert rows[:2] == sorted(done, key=lambda r: float(r["best val/loss"]))  # best first, failures last
    for r in done:
        assert r["data.path"] == "null" and float(r["best val/loss"]) <= float(r["final val/loss"]) + 1e-9
        assert r["test/loss"] and int(r["epochs"]) == 2 and int(r["params"]) > 0 and float(r["duration_s"]) > 0
    for r in failed:
        assert "missing.txt" in r["data.path"] and r["best val/loss"] == ""
        assert r["error"].startswith("DataError: data file not found")

    md = (sweep_dir / "summary.md").read_text()
    assert "4 jobs (2 completed, 2 failed)" in md and "![validation curves](curves.png)" in md
    seeds = md.split("## Mean ± std over seeds")[1].split("##")[0]
    best = [float(r["best val/loss"]) for r in done]
    mean, std = sum(best) / 2, abs(best[0] - best[1]) / 2**0.5
    assert f"| null | 2 | {mean:.4g} ± {std:.2g} |" in seeds
    assert "| 0/2 | - |" in seeds  # the missing path: no completed seed
    assert_image(sweep_dir / "curves.png")

    # The rerun command: this sweep's own command aimed at its dir (completed jobs are then skipped).
    cmd = md.split("```bash\n")[1].split("\n```")[0]
    assert cmd in output  # also printed at the end of the sweep
    cd, _, launch = cmd.partition(" && ")
    assert shlex.split(cd) == ["cd", str(sweep_dir.parent)]  # where it ran: relative paths start there
    args = shlex.split(launch)
    assert args[:2] == ["sweeplab-train", "-m"]
    assert "hydra.sweep.dir=sweep" in args and "seed=1,2" in args  # relative to the dir it was launched in
    assert "hydra/launcher=gpus" in args and not any(a.startswith("hydra.mode") for a in args)


def test_gpus_launcher_gives_each_worker_its_own_device(failing_sweep):
    sweep_dir, _ = failing_sweep
    records = [metrics(j) for j in jobs(sweep_dir)]
    assert {r["cuda_visible_devices"] for r in records} <= {"3", "5"}
    by_pid = {}
    for r in records:
        by_pid.setdefault(r["attempts"][-1]["pid"], set()).add(r["cuda_visible_devices"])
    # Two workers, each keeping its own device for every job it runs. Both loky workers start together and
    # the first job trains for seconds, so the second worker always takes jobs too.
    assert sorted(map(sorted, by_pid.values())) == [["3"], ["5"]], by_pid


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory):
    """A 2-job sweep SIGKILLed while its second job trains (after that job wrote a checkpoint), then the
    same command again into the same sweep dir."""
    tmp = tmp_path_factory.mktemp("killed")
    sweep_dir = tmp / "sweep"
    args = [
        "trainer.max_epochs=2,60",
        "callbacks.early_stopping=null",
        f"paths.log_dir={tmp}",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    log = tmp / "first_launch.log"
    proc = launch([sys.executable, "-m", "sweeplab.train", "-m", *args, *QUIET], tmp, log)
    # the basic launcher runs the job in the sweep's own process: killing it kills the job
    kill_when(
        proc, lambda: any(sweep_dir.glob("1_*/checkpoints/last.ckpt")), "the second job wrote a checkpoint", log, 0.3
    )
    first, second = jobs(sweep_dir)
    before = {"first": metrics(first), "second": metrics(second), "csv": read_csv(second / "metrics.csv")}
    res = sweep(*args, cwd=tmp)
    return first, second, before, res.stdout + res.stderr


def test_rerun_after_kill_skips_finished_jobs_and_resumes_the_killed_one(killed_and_resumed):
    first, second, before, output = killed_and_resumed
    assert before["first"]["status"] == "completed"
    assert before["second"]["status"] == "running"  # SIGKILL: nobody wrote the ending
    assert metrics(first) == before["first"]  # not rerun
    assert f"skipping {first}: already completed" in output

    m = metrics(second)
    assert m["status"] == "completed" and m["epochs"] == 60
    assert m["attempts"][-1]["resumed_from"].endswith("checkpoints/last.ckpt")
    assert [h["epoch"] for h in m["history"]] == list(range(60))  # history restored from the checkpoint
    assert m["best"]["val/loss"] == min(h["val/loss"] for h in m["history"])

    rows = read_csv(second / "metrics.csv")
    val_epochs = [int(r["epoch"]) for r in rows if r["val/loss"]]
    assert val_epochs == list(range(60))  # continued: every epoch once, none restarted
    train_steps = [int(r["step"]) for r in rows if r["train/loss"]]
    assert train_steps == sorted(set(train_steps))
    kept = [r for r in before["csv"] if r["val/loss"]][:-1]  # (the last may postdate the checkpoint)
    now = [{k: r[k] for k in before["csv"][0]} for r in rows if r["val/loss"]][: len(kept)]
    assert kept and now == kept  # the rows from before the kill are kept as they were


def test_compare_two_sweeps(failing_sweep, killed_and_resumed, tmp_path, capsys, monkeypatch):
    from sweeplab.compare import main

    monkeypatch.setenv("COLUMNS", "250")  # rich wraps at 80 columns when not on a terminal

    sweep_a, _ = failing_sweep
    sweep_b = killed_and_resumed[0].parent
    main([str(sweep_a), str(sweep_b), "--format", "csv", "--out", str(tmp_path / "report")])
    rows = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    assert len(rows) == 6
    assert {r["job"].split("/")[0] for r in rows} == {sweep_a.parent.name, sweep_b.parent.name}
    assert {"seed", "data.path", "trainer.max_epochs"} <= set(rows[0])
    assert {r["trainer.max_epochs"] for r in rows} == {"2", "60"}  # sweep A's 2 (debug=limit) read from its config
    assert "6 jobs (4 completed, 2 failed)" in (tmp_path / "report" / "summary.md").read_text()
    assert_image(tmp_path / "report" / "curves.png")

    main(
        [
            str(sweep_a.parent / "*"),
            str(sweep_b),
            "--filter",
            "status=completed",
            "--sort=-trainer.max_epochs",
            "--format",
            "md",
        ]
    )
    md = capsys.readouterr().out
    table = [ln for ln in md.splitlines() if ln.startswith("| ")][1:5]
    assert len(table) == 4 and "| 60 |" in table[0] and "| 2 |" in table[-1]

    main([str(sweep_a), "--filter", "seed=2"])  # the rich table
    out = capsys.readouterr().out
    assert "2 jobs (1 completed, 1 failed)" in out and "sweeplab-train -m" in out

    with pytest.raises(SystemExit) as e:
        main([str(tmp_path / "nothing-here")])
    assert e.value.code == 2
    assert "no such run or sweep dir" in capsys.readouterr().err


def test_ray_launcher_two_job_sweep(tmp_path_factory):
    # Short base dir: Ray's unix socket paths live under RAY_TMPDIR and may not exceed 107 bytes.
    tmp = tmp_path_factory.mktemp("ray")
    assert len(str(tmp)) < 40, tmp
    sweep_dir = tmp / "sweep"
    sweep(
        "hydra/launcher=ray_local",
        "hydra.launcher.ray.init.num_cpus=2",
        "model.dropout=0,0.2",
        f"paths.log_dir={tmp}",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp,
        env={"RAY_AUTH_MODE": "disabled", "RAY_TMPDIR": str(tmp), "RAY_USAGE_STATS_ENABLED": "0"},
    )
    records = [metrics(j) for j in jobs(sweep_dir)]
    assert [r["status"] for r in records] == ["completed", "completed"]
    pids = {r["attempts"][-1]["pid"] for r in records}
    assert len(pids) == 2 and os.getpid() not in pids
    assert len(read_csv(sweep_dir / "summary.csv")) == 2
    assert (tmp / "ray").is_dir()  # Ray's session files stayed inside the test's dir
    shutil.rmtree(tmp / "ray", ignore_errors=True)


def test_launcher_presets_compose():
    from hydra import compose, initialize_config_module

    import sweeplab.config.resolvers  # noqa: F401

    with initialize_config_module(config_module="sweeplab.conf", version_base="1.3"):
        got = {
            name: compose("train", overrides=[f"hydra/launcher={name}"], return_hydra_config=True).hydra
            for name in ("parallel", "gpus", "ray_local", "slurm")
        }
    assert got["parallel"].launcher.n_jobs == 2 and got["parallel"].launcher._target_.endswith("JoblibLauncher")
    assert got["gpus"].launcher._target_.endswith("JoblibLauncher") and "SWEEPLAB_GPUS" in got["gpus"].job.env_set
    assert got["ray_local"].launcher._target_.endswith("RayLauncher")
    assert got["ray_local"].launcher.ray.init.include_dashboard is False
    slurm = got["slurm"].launcher
    assert slurm._target_.endswith("SlurmLauncher") and slurm.gpus_per_task == 1 and slurm.max_num_timeout == 3


def test_single_run_resumes_with_ckpt_path_last_and_its_metrics_continue(run_job):
    out, first = run_job("trainer.max_epochs=2", "callbacks.early_stopping=null", *QUIET, name="run")
    assert first["epochs"] == 2
    out, m = run_job("trainer.max_epochs=4", "callbacks.early_stopping=null", "ckpt_path=last", *QUIET, name="run")
    assert m["status"] == "completed" and m["epochs"] == 4 and m["attempts"][-1]["resumed_from"].endswith("last.ckpt")
    assert [h["epoch"] for h in m["history"]] == [0, 1, 2, 3]
    rows = read_csv(out / "metrics.csv")
    assert [int(r["epoch"]) for r in rows if r["val/loss"]] == [0, 1, 2, 3]
    assert [float(r["val/loss"]) for r in rows if r["val/loss"]][:2] == [h["val/loss"] for h in first["history"]]
    assert sum(1 for r in rows if r["test/loss"]) == 1  # the first run's test row went with the rows after last.ckpt


def test_compare_plots_the_metric_against_a_numeric_override(failing_sweep, tmp_path, capsys):
    from sweeplab.compare import main

    sweep_a, _ = failing_sweep
    main([str(sweep_a), "--x", "seed", "--out", str(tmp_path), "--format", "csv"])
    assert_image(tmp_path / "metric_vs_seed.png")
    with pytest.raises(SystemExit) as e:
        main([str(sweep_a), "--x", "model.nothing", "--out", str(tmp_path / "b")])
    assert e.value.code == 2 and "no run has a numeric value for 'model.nothing'" in capsys.readouterr().err
