"""sweeplab-daemon: a command forked from the warm process leaves what the same command leaves in a fresh one
(files, records, log lines, exit status), its signals reach the job, and a daemon whose code or import-time
environment is not the caller's runs nothing."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import wait_for
from sweeplab import daemon

BIN = Path(sys.executable).parent
NAMES = ["experiment=names_fast", "num_threads=1", "callbacks.progress_bar=null"]
LONG = ["trainer.max_epochs=50", "data.batch_size=64", "callbacks.progress_bar=null", "num_threads=1"]


def script(name: str) -> str:
    return str(BIN / name)


def start(d: Path) -> dict:
    d.mkdir(mode=0o700, exist_ok=True)
    d.chmod(0o700)
    env = {**os.environ, "SWEEPLAB_DAEMON_DIR": str(d), "PYTHONUNBUFFERED": "1"}
    env.pop("SWEEPLAB_DAEMON", None)
    res = subprocess.run([script("sweeplab-daemon"), "start"], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    return env


def status(env: dict) -> dict | None:
    res = subprocess.run([script("sweeplab-daemon"), "status"], env=env, capture_output=True, text=True, timeout=60)
    return json.loads(res.stdout) if res.returncode == 0 else None


def stop(env: dict) -> None:
    subprocess.run([script("sweeplab-daemon"), "stop"], env=env, capture_output=True, timeout=60)
    wait_for(lambda: status(env) is None, timeout=60, what="the daemon to stop")


def sweeplab(env: dict, *args: str, cwd: Path | None = None):
    cmd = [script("sweeplab-train"), *args]
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    env = start(tmp_path_factory.mktemp("daemon") / "d")
    yield env
    stop(env)


def served(env: dict) -> int:
    return status(env)["served"]


def log_lines(run: Path) -> list[str]:
    """train.log without what differs between two runs of one command: times, durations, the run dir."""
    text = (run / "train.log").read_text().replace(str(run), "RUN")
    return [re.sub(r" \| [\d.]+s$", "", ln.split("]", 1)[1]) for ln in text.splitlines() if ln.startswith("[")]


def comparable(m: dict) -> dict:
    drop = {"run_dir", "started", "finished", "duration_s", "attempts", "throughput", "timing"}
    return {k: v for k, v in m.items() if k not in drop}


def test_a_command_in_the_daemon_leaves_what_a_fresh_process_leaves(warm, tmp_path):
    before = served(warm)
    res = sweeplab(warm, *NAMES, f"hydra.run.dir={tmp_path / 'warm'}", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert served(warm) == before + 1  # it ran there
    assert "running in this process" not in res.stderr
    # a variable the daemon was started without: the same command runs in its own process, and says why
    fresh_env = {**warm, "LC_SWEEPLAB_TEST": "1"}
    fresh = sweeplab(fresh_env, *NAMES, f"hydra.run.dir={tmp_path / 'fresh'}", cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert served(warm) == before + 1
    assert "running in this process: LC_SWEEPLAB_TEST differs from the daemon's" in fresh.stderr

    a, b = tmp_path / "warm", tmp_path / "fresh"
    files = sorted(str(p.relative_to(a)) for p in a.rglob("*"))
    assert files == sorted(str(p.relative_to(b)) for p in b.rglob("*"))
    ma, mb = (json.loads((r / "metrics.json").read_text()) for r in (a, b))
    assert ma["status"] == "completed" and ma["attempts"][0]["pid"] != os.getpid()
    assert comparable(ma) == comparable(mb)  # the same numbers, to the last digit: the same computation
    assert log_lines(a) == log_lines(b)  # Lightning's lines reach train.log from the daemon too
    assert (a / "samples.txt").read_text() == (b / "samples.txt").read_text()
    assert res.stdout.count("epoch 0 step") == fresh.stdout.count("epoch 0 step") == 1  # on the caller's stdout


def test_a_packed_sweep_in_the_daemon_ends_when_its_jobs_do(warm, tmp_path):
    """The job process shuts down as the interpreter would: joblib's workers are told to go at once, instead of
    the job waiting out their 300 s idle timeout (which it did when only atexit handlers ran)."""
    before = served(warm)
    sweep = tmp_path / "sweep"
    args = ["-m", "hydra/launcher=packed", "seed=1,2", *NAMES, f"hydra.sweep.dir={sweep}"]
    res = subprocess.run(
        [script("sweeplab-train"), *args], env=warm, cwd=tmp_path, capture_output=True, text=True, timeout=200
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert served(warm) == before + 1
    records = [json.loads(p.read_text()) for p in sweep.glob("*/metrics.json")]
    assert sorted(r["status"] for r in records) == ["completed", "completed"]
    assert (sweep / "summary.md").is_file()


def test_bad_input_exits_as_it_would_without_the_daemon(warm, tmp_path):
    before = served(warm)
    res = sweeplab(warm, "data=names", "model=lstmm", cwd=tmp_path)
    assert res.returncode == 2
    assert served(warm) == before + 1
    (line,) = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert line.startswith("sweeplab-train: error: unknown model option 'lstmm'") and "lstm" in line
    assert not list(tmp_path.iterdir())  # nothing written where it ran
    bypass = sweeplab({**warm, "SWEEPLAB_DAEMON": "0"}, "data=names", "model=lstmm", cwd=tmp_path)
    assert bypass.returncode == 2 and bypass.stderr == res.stderr
    assert served(warm) == before + 1


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_signals_to_the_command_reach_the_job(warm, tmp_path, sig):
    """Ctrl-C is relayed to the job, which stops with its records; a command killed outright takes its job
    with it (stopped as by SIGTERM, so its records say so), instead of leaving it running unseen."""
    run = tmp_path / "run"
    with open(tmp_path / "out.log", "w") as out:
        proc = subprocess.Popen(
            [script("sweeplab-train"), *LONG, f"hydra.run.dir={run}"], env=warm, cwd=tmp_path, stdout=out, stderr=out
        )
    try:
        wait_for(lambda: (run / "metrics.csv").is_file(), proc, what="training to start", log=tmp_path / "out.log")
        time.sleep(0.5)
        proc.send_signal(sig)
        proc.wait(timeout=120)
    finally:
        proc.kill()

    def ended():
        m = json.loads((run / "metrics.json").read_text())
        return m if m["status"] != "running" else None

    wait_for(ended, timeout=120, what="the job to record how it ended", log=tmp_path / "out.log")
    m = ended()
    assert m["status"] == "interrupted" and m["steps"] > 0
    if sig == signal.SIGINT:
        assert proc.returncode == 128 + signal.SIGINT
        assert m["attempts"][-1]["error"] == "interrupted (SIGINT)"
        assert "Traceback" not in (tmp_path / "out.log").read_text()
    else:
        assert proc.returncode == -signal.SIGKILL
        assert m["attempts"][-1]["error"] == "interrupted (SIGTERM)"


def test_a_daemon_whose_code_changed_or_whose_environment_differs_runs_nothing(tmp_path, monkeypatch):
    """A module file the daemon imported changes on disk (or goes): it turns every command away, saying which
    file, and stops serving. A caller whose import-time variables differ is turned away and told which; a
    DDP launcher's worker (only its rank differs) quietly."""
    module = tmp_path / "mod.py"
    module.write_text("")
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    server = daemon.Daemon(tmp_path, idle_s=60)
    server.snapshot = {str(module): module.stat().st_mtime_ns}
    stopped = []
    monkeypatch.setattr(server, "close", lambda: stopped.append(True))
    request = {"prog": "sweeplab-train", "env": dict(server.env)}
    assert server.refusal(request, [0, 1, 2]) == (None, False)
    assert server.refusal({**request, "prog": "python"}, [0, 1, 2])[0] == "the daemon cannot run 'python'"

    why, quiet = server.refusal({**request, "env": {**server.env, "OMP_NUM_THREADS": "7"}}, [0, 1, 2])
    assert why.startswith("OMP_NUM_THREADS differs from the daemon's") and not quiet
    why, quiet = server.refusal({**request, "env": {**server.env, "LOCAL_RANK": "1"}}, [0, 1, 2])
    assert why.startswith("LOCAL_RANK") and quiet
    assert not stopped

    os.utime(module, ns=(time.time_ns(), module.stat().st_mtime_ns + 10**9))
    why, quiet = server.refusal(request, [0, 1, 2])
    assert why.startswith(f"{module} changed since the daemon started") and not quiet and stopped == [True]
    module.unlink()
    assert server.refusal(request, [0, 1, 2])[0].startswith(f"{module} changed since the daemon started")


@pytest.fixture
def fake_daemon(tmp_path, monkeypatch):
    """A socket where this environment's daemon would listen, which nobody serves: the test says what it does."""
    import socket

    d = tmp_path / "d"
    d.mkdir(mode=0o700)
    monkeypatch.setenv("SWEEPLAB_DAEMON_DIR", str(d))
    monkeypatch.delenv("SWEEPLAB_DAEMON", raising=False)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(daemon.socket_path(d)))
    sock.listen(1)
    yield sock
    sock.close()


def test_a_daemon_that_does_not_answer_is_an_error_not_a_second_run(fake_daemon, monkeypatch, capsys):
    """It may have started the job before it hung: running the command here as well could run it twice."""
    monkeypatch.setattr(daemon, "ANSWER_S", 0.5)  # the fake takes the connection, never a word back
    assert daemon.forward("sweeplab-train", ["sweeplab-train", "data=names"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("sweeplab-train: error: the daemon (") and "did not answer in 0.5 s" in err


def test_a_daemon_that_hangs_up_leaves_the_command_to_run_here_and_says_so(fake_daemon, capsys):
    import threading

    def hang_up():
        conn, _ = fake_daemon.accept()
        conn.close()

    t = threading.Thread(target=hang_up)
    t.start()
    try:
        assert daemon.forward("sweeplab-train", ["sweeplab-train", "data=names"]) is None
    finally:
        t.join(timeout=10)
    err = capsys.readouterr().err  # how the hang-up shows (EOF, a reset, a broken pipe) is the kernel's timing
    assert err.startswith("sweeplab-train: running in this process: the daemon (") and err.count("\n") == 1
    assert "without an answer" in err or "did not take the command" in err


def test_what_a_job_must_share_with_the_daemon():
    base = {"PATH": "/bin", "OMP_NUM_THREADS": "1", "HOME": "/root"}
    assert daemon.env_mismatch(base, {**base, "PATH": "/usr/bin", "PWD": "/x", "PYTHONUNBUFFERED": "1"}) == []
    assert daemon.env_mismatch(base, {**base, "OMP_NUM_THREADS": "2"}) == ["OMP_NUM_THREADS"]
    differ = daemon.env_mismatch(base, {**base, "HF_HUB_OFFLINE": "1", "LOCAL_RANK": "1"})
    assert differ == ["HF_HUB_OFFLINE", "LOCAL_RANK"]
    assert daemon.env_mismatch({**base, "MALLOC_ARENA_MAX": "2"}, base) == ["MALLOC_ARENA_MAX"]


def test_the_console_scripts_import_no_torch_before_the_daemon_is_asked():
    heavy = "{'torch', 'hydra', 'omegaconf', 'pytorch_lightning'}"
    code = f"import sys, sweeplab.cli; print(sorted({heavy} & set(sys.modules)))"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stdout.strip() == "[]", res.stderr
