"""End to end on names: every model trains, runs leave their files, failures are recorded, sweeps run."""

from __future__ import annotations

import json
import math
import signal
import sys

import pytest

from conftest import cli, launch, wait_for

NAMES_MODELS = ["ngram", "mlp", "rnn", "lstm", "gru", "peephole_lstm", "cnn", "transformer"]


@pytest.mark.parametrize("model", NAMES_MODELS)
def test_each_model_fast_dev_run(model, run_job):
    out, m = run_job(f"model={model}", "debug=fast_dev_run")
    assert m["status"] == "completed", m.get("error")
    assert math.isfinite(m["final"]["test/loss"])
    assert (out / "metrics.json").is_file() and (out / "samples.txt").is_file()


def test_mlp_short_training_beats_unigram(trained_names_run):
    _out, m = trained_names_run
    unigram = m["data"]["unigram_val_loss"]
    assert m["status"] == "completed"
    assert m["best"]["val/loss"] < unigram - 0.3, (m["best"]["val/loss"], unigram)
    assert m["final"]["test/loss"] < unigram - 0.3


def test_ngram_counts_in_one_pass(run_job):
    _out, m = run_job("model=ngram", "model.order=2", "data.batch_size=512")
    assert m["status"] == "completed" and m["epochs"] == 1 and m["params"] == 0
    # A bigram on names: well below the unigram (≈2.82), near the known 2.45.
    assert 2.35 < m["final"]["test/loss"] < 2.6


def test_run_dir_holds_every_file(trained_names_run):
    from omegaconf import OmegaConf

    from conftest import assert_image

    out, m = trained_names_run
    for name in ("metrics.json", "metrics.csv", "samples.txt", "train.log", "vocab.json", "checkpoints/last.ckpt"):
        assert (out / name).is_file(), name
    assert_image(out / "curves.png")
    assert (out / m["best"]["checkpoint"]).is_file()
    # .hydra/ as Hydra writes it, from the run layer (so also through the Python API, as here)
    cfg = OmegaConf.load(out / ".hydra" / "config.yaml")
    assert cfg.trainer.max_epochs == 2 and cfg.model._target_ == "sweeplab.models.mlp.MLP"
    assert "trainer.max_epochs=2" in OmegaConf.load(out / ".hydra" / "overrides.yaml")
    assert OmegaConf.load(out / ".hydra" / "hydra.yaml").hydra.runtime.output_dir == str(out.resolve())
    assert m["attempts"][0]["status"] == "completed" and len(m["fingerprint"]) == 64
    samples = (out / "samples.txt").read_text().splitlines()
    assert len(samples) == 20 and all(s.isalpha() for s in samples if s)
    for key in ("status", "best", "final", "epochs", "steps", "duration_s", "params", "overrides"):
        assert key in m, key
    assert m["epochs"] == 2 and m["steps"] > 0 and m["params"] > 0
    assert {"test/loss", "test/ppl", "test/bpc"} <= set(m["final"])
    assert m["final"]["test/ppl"] == pytest.approx(math.exp(m["final"]["test/loss"]), rel=1e-5)


def test_missing_data_file_fails_with_metrics_json(run_job, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        run_job(f"data.path={tmp_path}/nope.txt", "debug=fast_dev_run", name="missing")
    assert exit_.value.code == 2  # bad input: the data file named in the config
    m = json.loads((tmp_path / "missing" / "metrics.json").read_text())
    assert m["status"] == "failed" and f"data file not found: {tmp_path}/nope.txt" in m["error"]


def test_empty_data_file_is_rejected(run_job, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    with pytest.raises(SystemExit):
        run_job(f"data.path={empty}", "debug=fast_dev_run", name="empty")
    m = json.loads((tmp_path / "empty" / "metrics.json").read_text())
    assert m["status"] == "failed" and "no items" in m["error"] and str(empty) in m["error"]


def test_nan_loss_stops_the_run_as_diverged(run_job, tmp_path):
    with pytest.raises(SystemExit):
        run_job(
            "model=cnn",
            "optimizer=sgd",
            "optimizer.lr=1e30",
            "trainer.gradient_clip_val=null",
            "debug=limit",
            "trainer.log_every_n_steps=1",
            name="diverged",
        )
    m = json.loads((tmp_path / "diverged" / "metrics.json").read_text())
    assert m["status"] == "diverged", m
    assert "nan" in m["error"] or "inf" in m["error"]


def test_ctrl_c_records_interrupted(tmp_path):
    """SIGINT mid-training: the run stops, metrics.json says interrupted, the exit code is non-zero."""
    log = tmp_path / "train.out"
    args = ["paths.log_dir=" + str(tmp_path), "trainer.max_epochs=50", "callbacks.progress_bar=null"]
    args += ["callbacks.early_stopping=null", "data.batch_size=64"]
    proc = launch([sys.executable, "-m", "sweeplab.train", *args], tmp_path, log)
    wait_for(lambda: any(tmp_path.glob("train/runs/*/metrics.csv")), proc, 180, "training started", log)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    output = log.read_text()
    assert proc.returncode != 0
    (run,) = {p.parent for p in tmp_path.glob("train/runs/*/metrics.csv")}
    m = json.loads((run / "metrics.json").read_text())
    assert m["status"] == "interrupted", output[-2000:]
    assert m["steps"] > 0


def test_multirun_2x2_leaves_four_readable_run_dirs(tmp_path):
    res = cli(
        "-m",
        "sweeplab.train",
        "-m",
        "scheduler=constant,cosine",
        "model.dropout=0.0,0.2",
        "debug=limit",
        f"paths.log_dir={tmp_path}",
        "callbacks.progress_bar=null",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    jobs = sorted(p.parent for p in tmp_path.glob("train/multiruns/*/*/metrics.json"))
    assert len(jobs) == 4
    # Named <job num>_<overrides>: readable, and unique within the sweep.
    first = [j.name for j in jobs if j.name.startswith("0_")]
    assert first and "model.dropout=0.0" in first[0] and "scheduler=constant" in first[0]
    assert len({j.parent for j in jobs}) == 1
    for j in jobs:
        m = json.loads((j / "metrics.json").read_text())
        assert m["status"] == "completed"


def test_tensorboard_logger_writes_events_beside_metrics_csv(run_job):
    out, m = run_job("logger=tensorboard", "debug=limit", "model=mlp")
    assert m["status"] == "completed"
    assert (out / "metrics.csv").is_file()
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))


def test_mlflow_and_wandb_loggers_record_the_run_offline(run_job, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    out, m = run_job("logger=[csv,mlflow,wandb]", "debug=limit", "model=mlp", "optimizer.lr=0.01")
    assert m["status"] == "completed"
    assert (out / "metrics.csv").is_file()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{out}/mlflow.db")
    (exp,) = [e for e in client.search_experiments() if e.name == "train"]
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.run_name == out.name
    assert run.data.params["optimizer.lr"] == "0.01" and run.data.params["model._target_"].endswith("MLP")
    history = client.get_metric_history(run.info.run_id, "val/loss")
    assert [h.value for h in history] == pytest.approx([h["val/loss"] for h in m["history"]])
    (offline,) = (out / "wandb").glob("offline-run-*")
    assert list(offline.glob("run-*.wandb"))


def test_missing_tracker_package_is_one_line_before_the_run(monkeypatch):
    from sweeplab.config import preflight
    from sweeplab.errors import ConfigError

    # as if wandb were not installed
    monkeypatch.setitem(preflight.LOGGER_PACKAGES, "WandbLogger", "sweeplab_no_such_package")
    with pytest.raises(ConfigError) as e:
        preflight.check_overrides(["logger=[csv,wandb]"])
    assert str(e.value) == "logger=wandb needs the sweeplab_no_such_package package: pip install 'sweeplab[trackers]'"
