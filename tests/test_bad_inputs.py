"""Bad input across sweeplab-train, -eval, -generate and -compare, through the real command lines: each ends with
the expected exit code, exactly one line on stderr that names the key, value or file, no traceback, and no run
dir left looking complete (nothing at all when the problem is found before the run starts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

PROGS = {
    "train": "sweeplab.train",
    "eval": "sweeplab.eval",
    "generate": "sweeplab.generate",
    "compare": "sweeplab.compare",
}


@dataclass
class Case:
    prog: str
    args: tuple[str, ...]
    says: str  # a part of the one error line (with {run}, {tmp} filled in)
    code: int = 2
    stage: str = "pre"  # pre: refused before any run dir exists; run: a run dir may hold a failed record

    @property
    def id(self) -> str:
        return f"{self.prog} " + " ".join(self.args)


T = "train"
CASES = [
    # ---- keys, options, types, ranges (sweeplab-train, before torch is imported)
    Case(T, ("model.hiden_dim=64",), "unknown key 'model.hiden_dim' (did you mean 'model.hidden_dim'?)"),
    Case(T, ("+model.hiden_dim=64",), "model.hiden_dim"),
    Case(T, ("+lr=0.1",), "did you mean 'optimizer.lr'"),
    Case(T, ("schedular=cosine",), "did you mean 'scheduler'"),
    Case(T, ("model=lstmm",), "unknown model option 'lstmm' (did you mean 'lstm'?)"),
    Case(T, ("optimizer=adamm",), "unknown optimizer option 'adamm'"),
    Case(T, ("logger=csvv",), "unknown logger option 'csvv'"),
    Case(T, ("data=name",), "unknown data option 'name'"),
    Case(T, ("model.dropout=1.5",), "model.dropout=1.5 is out of range"),
    Case(T, ("model.dropout=-0.1",), "model.dropout=-0.1 is out of range"),
    Case(T, ("optimizer.lr=-1",), "optimizer.lr=-1"),
    Case(T, ("optimizer.lr=abc",), "optimizer.lr"),
    Case(T, ("optimizer=sgd", "optimizer.momentum=1.5"), "optimizer.momentum=1.5"),
    Case(T, ("data.batch_size=0",), "data.batch_size=0"),
    Case(T, ("data.block_size=0",), "data.block_size=0"),
    Case(T, ("trainer.max_epochs=abc",), "trainer.max_epochs"),
    Case(T, ("trainer.max_epochs=0",), "trainer.max_epochs=0"),
    Case(T, ("trainer.max_epochs=-1",), "trainer.max_epochs=-1"),
    Case(T, ("trainer.max_steps=0",), "trainer.max_steps=0"),
    Case(T, ("trainer.precision=fp8",), "trainer.precision"),
    Case(T, ("trainer.gradient_clip_val=-1",), "trainer.gradient_clip_val=-1"),
    Case(T, ("trainer.accumulate_grad_batches=0",), "trainer.accumulate_grad_batches=0"),
    Case(T, ("seed=-1",), "seed=-1"),
    Case(T, ("num_threads=0",), "num_threads=0"),
    Case(T, ("monitor_mode=maximum",), "monitor_mode"),
    Case(T, ("overwrite=maybe",), "overwrite"),
    Case(T, ("test=maybe",), "test"),
    Case(T, ("divergence.factor=0.5",), "divergence.factor=0.5"),
    Case(T, ("divergence.patience=0",), "divergence.patience=0"),
    Case(T, ("callbacks.early_stopping.patience=-1",), "callbacks.early_stopping.patience=-1"),
    Case(T, ("callbacks.progress_bar.style=fancy",), "callbacks.progress_bar.style"),
    Case(T, ("callbacks.model_checkpoint.save_top_k=-5",), "callbacks.model_checkpoint.save_top_k=-5"),
    Case(T, ("-m", "model.dropout=0,1.5"), "model.dropout=1.5 is out of range"),
    Case(T, ("-m", "model=mlp,ngram", "model.hidden_dim=8"), "model.hidden_dim"),
    Case(T, ("-m", "hparams_search=names_optuna", "model=ngram"), "hydra.sweeper.params"),
    Case(T, ("model.dropout=",), "model.dropout"),
    Case(T, ("model.dropout=0.1)",), "cannot parse overrides"),
    # ---- settings that cannot go together, or a run that cannot be
    Case(T, ("trainer.max_epochs=-1", "trainer.max_steps=-1"), "trainer.max_steps"),
    Case(T, ("scheduler.warmup_steps=5000", "trainer.max_steps=1000", "trainer.max_epochs=-1"), "warmup"),
    Case(T, ("scheduler=cosine", "scheduler.warmup_epochs=20", "trainer.max_epochs=10"), "warmup"),
    Case(T, ("scheduler=step", "scheduler.milestones=[1.5]"), "scheduler.milestones"),
    Case(T, ("scheduler=step", "scheduler.milestones=[0]"), "scheduler.milestones"),
    Case(T, ("model=transformer", "model.num_heads=3"), "model.num_heads=3 does not divide model.embed_dim=64"),
    Case(T, ("data=codesearchnet", "model=lstm", "loss=label_smoothing"), "adaptive softmax"),
    Case(T, ("data=codesearchnet", "model=lstm", "model.tie_weights=true"), "adaptive softmax"),
    Case(T, ("model=densenet_cbam",), "densenet_cbam"),
    Case(T, ("data=lensing", "model=lstm"), "lstm"),
    Case(T, ("task=classifier",), "task=classifier"),
    Case(T, ("data=lensing", "model=resnet", "task=language_model"), "task=language_model"),
    Case(T, ("data=lensing", "model=resnet", "data.difficulty=extreme"), "data.difficulty", 2, "run"),
    Case(T, ("data=codesearchnet", "model=lstm", "data.vocab_size=2"), "data.vocab_size=2"),
    Case(T, ("hydra.run.dir=",), "hydra.run.dir is empty"),
    Case(T, ("hydra/launcher=slurm", "-m", "seed=1,2"), "SLURM is not available here"),
    Case(T, ("--cfg",), "--cfg"),
    Case(T, ("-m", "seed=1,2", "--cfg", "job"), "give only one of --multirun and --cfg"),
    Case(T, ("hydra.run.dir={tmp}/a_file/run",), "{tmp}/a_file is a file, not a directory"),
    Case(T, ("data.block_size=100000", "model.hidden_dim=100000"), "100,002,900,308 parameters", 2, "run"),
    Case(T, ("data.path={tmp}/missing.txt",), "data file not found: {tmp}/missing.txt", 2, "run"),
    Case(T, ("data.path={tmp}/a_file",), "{tmp}/a_file", 2, "run"),
    Case(T, ("ckpt_path={tmp}/missing.ckpt",), "ckpt_path={tmp}/missing.ckpt: no such checkpoint", 2, "run"),
    # ---- run dirs that hold a run (the shared finished run: these must leave it untouched)
    Case(T, ("hydra.run.dir={run}",), "{run} already holds a run (completed"),
    Case(T, ("hydra.run.dir={run}", "ckpt_path=last", "model.hidden_dim=50"), "its configuration differs"),
    Case(T, ("hydra.run.dir={tmp}/corrupt",), "{tmp}/corrupt/metrics.json is not valid JSON"),
    # ---- sweeplab-eval
    Case("eval", ("{tmp}/no_such_run",), "{tmp}/no_such_run"),
    Case("eval", ("{tmp}/a_file",), "{tmp}/a_file"),
    Case("eval", ("{tmp}/empty_dir",), "{tmp}/empty_dir"),
    Case("eval", ("{run}", "split=train"), "split"),
    Case("eval", ("{run}", "splt=val"), "did you mean 'split'"),
    Case("eval", ("{run}", "accelerator=tpu"), "accelerator"),
    Case("eval", ("{run}", "data.pth=x"), "data.pth"),
    Case("eval", ("{run}", "data.path={tmp}/missing.txt"), "{tmp}/missing.txt"),
    Case("eval", ("{run}", "devices=0"), "devices=0"),
    # ---- sweeplab-generate
    Case("generate", ("{run}", "greedy=true", "beam_size=3"), "greedy"),
    Case("generate", ("{run}", "greedy=true", "temperature=0.5"), "greedy"),
    Case("generate", ("{run}", "beam_size=2", "top_k=3"), "beam_size"),
    Case("generate", ("{run}", "temperature=0"), "temperature=0"),
    Case("generate", ("{run}", "top_p=1.5"), "top_p=1.5"),
    Case("generate", ("{run}", "top_k=0"), "top_k=0"),
    Case("generate", ("{run}", "num_samples=0"), "num_samples=0"),
    Case("generate", ("{run}", "max_new_tokens=100000"), "max_new_tokens=100000"),
    Case("generate", ("{run}", "temprature=0.5"), "did you mean 'temperature'"),
    Case("generate", ("{tmp}/a_file",), "{tmp}/a_file"),
    # ---- sweeplab-compare
    Case("compare", ("{tmp}/no_such_sweep",), "{tmp}/no_such_sweep"),
    Case("compare", ("{run}", "--metric", "val/los"), "val/los"),
    Case("compare", ("{run}", "--sort", "nope"), "nope"),
    Case("compare", ("{run}", "--filter", "seed"), "--filter"),
    Case("compare", ("{run}", "--filter", "model.nope=3"), "model.nope"),
    Case("compare", ("{run}", "--x", "model.nope", "--out", "{tmp}/report"), "model.nope"),
    Case("compare", ("{run}", "--mode", "sideways"), "sideways"),
    Case("compare", ("{run}", "--format", "xml"), "xml"),
]


@pytest.fixture(scope="module")
def playground(tmp_path_factory, trained_names_run):
    """The files the cases point at: a finished run, a file where a dir should be, an empty dir, a run dir with a
    corrupt record."""
    tmp = tmp_path_factory.mktemp("bad")
    (tmp / "a_file").write_text("just text\n")
    (tmp / "empty_dir").mkdir()
    (tmp / "corrupt").mkdir()
    (tmp / "corrupt" / "metrics.json").write_text('{"status": "compl')
    return tmp, trained_names_run[0]


def _fill(s: str, tmp: Path, run: Path) -> str:
    return s.replace("{tmp}", str(tmp)).replace("{run}", str(run))


def _snapshot(d: Path) -> dict:
    return {str(p): p.stat().st_mtime_ns for p in d.rglob("*") if p.is_file() and p.name != ".lock"}


def _run(case: Case, tmp: Path, run: Path) -> tuple[Case, subprocess.CompletedProcess, Path]:
    cwd = tmp / f"case{CASES.index(case)}"
    cwd.mkdir()
    args = [_fill(a, tmp, run) for a in case.args]
    if case.prog == "train":
        args.append(f"paths.log_dir={cwd / 'logs'}")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    res = subprocess.run(
        [sys.executable, "-m", PROGS[case.prog], *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=600
    )
    return case, res, cwd


@pytest.fixture(scope="module")
def outcomes(playground):
    tmp, run = playground
    before = _snapshot(run)
    # Launches into the finished run take its lock in turn: run those one after another.
    serial = [c for c in CASES if "hydra.run.dir={run}" in c.args]
    jobs = [[c] for c in CASES if c not in serial] + [serial]
    with ThreadPoolExecutor(max_workers=3) as pool:  # subprocesses: two cores, one waiting on its start-up
        results = pool.map(lambda cases: [_run(c, tmp, run) for c in cases], jobs)
        done = {c.id: (r, cwd) for chunk in results for c, r, cwd in chunk}
    assert _snapshot(run) == before, "a refused launch touched the finished run"
    return done, tmp, run


def test_the_table_is_large_and_covers_every_command():
    assert len(CASES) >= 60 and len({c.id for c in CASES}) == len(CASES)
    assert {c.prog for c in CASES} == set(PROGS)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_clean_line(case, outcomes):
    done, tmp, run = outcomes
    res, cwd = done[case.id]
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in res.stderr + res.stdout, res.stderr[-2000:]
    assert len(lines) == 1, res.stderr[-2000:]
    prog = "sweeplab-" + case.prog
    assert lines[0].startswith(f"{prog}: error: "), lines[0]
    assert _fill(case.says, tmp, run) in lines[0], lines[0]
    assert res.returncode == case.code, (res.returncode, lines[0])
    records = [json.loads(p.read_text()) for p in cwd.rglob("metrics.json")]
    assert all(r.get("status") != "completed" for r in records)
    if case.stage == "pre":
        assert not records and not (cwd / "logs").exists(), "refused, yet a run dir was made"
        assert not (cwd / "outputs").exists()
