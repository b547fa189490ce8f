"""sweeplab-eval and sweeplab-generate: the library functions (runs/inference.py) on real trained runs, and
the Hydra apps as the user runs them: --cfg job, --help, -m sweeps, one-line errors with exit code 2,
weights-only checkpoints, a read-only run dir."""

from __future__ import annotations

import json
import math
import os
import pickle
import shutil
import stat
import warnings
from pathlib import Path

import pytest
from test_codesearchnet import csn_dir, csn_overrides, csn_rows, hf_cache  # noqa: F401 - fixtures

from conftest import cli, run_job_inprocess
from sweeplab.errors import ConfigError, RestoreError
from sweeplab.runs.inference import evaluate, generate


def _error_line(res, prog: str) -> str:
    """The single stderr line of a failed command (exit 2, no traceback)."""
    assert res.returncode == 2, (res.returncode, res.stdout[-1000:], res.stderr[-2000:])
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert lines[0].startswith(f"{prog}: error: "), lines[0]
    return lines[0][len(f"{prog}: error: ") :]


@pytest.fixture(scope="module")
def names_run(trained_names_run):
    return trained_names_run[0]


@pytest.fixture(scope="module")
def classifier_run(tmp_path_factory):
    """A real (tiny) lensing run: a checkpoint of the classifier task."""
    root = tmp_path_factory.mktemp("classifier")
    out = root / "run"
    m = run_job_inprocess(
        [
            "data=lensing",
            "model=resnet",
            "model.width=4",
            "model.depth=1",
            "data.image_size=16",
            "data.train_per_class=6",
            "data.val_per_class=2",
            "trainer.max_epochs=1",
            "scheduler.warmup_steps=0",  # a 2-step run: the default warmup would be refused
            f"paths.data_dir={root / 'cache'}",
        ],
        out,
    )
    assert m["status"] == "completed", m.get("error")
    return out


# ---------------------------------------------------------------- evaluation
def test_eval_reproduces_the_runs_test_loss_and_writes_eval_json(names_run, trained_names_run, tmp_path):
    m = trained_names_run[1]
    assert evaluate(names_run)["test/loss"] == pytest.approx(m["final"]["test/loss"], rel=1e-4)
    run = tmp_path / "run"
    shutil.copytree(names_run, run)
    res = cli("-m", "sweeplab.eval", str(run), cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    shown = json.loads(res.stdout)
    assert shown["test/loss"] == pytest.approx(m["final"]["test/loss"], rel=1e-4)
    assert {"test/ppl", "test/bpc"} <= set(shown) and res.stderr == ""
    record = json.loads((run / "eval_test.json").read_text())
    assert record["metrics"] == shown and record["split"] == "test" and record["data_overrides"] == {}
    assert record["checkpoint"] == m["best"]["checkpoint"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no outputs/, logs or .hydra in the cwd


def test_eval_of_another_split_and_data_file(names_run, tmp_path):
    from sweeplab.data.names import bundled_names

    other = tmp_path / "other_names.txt"
    other.write_text("\n".join(bundled_names().read_text().split()[:400]) + "\n")
    val = evaluate(names_run, split="val")
    assert set(val) >= {"val/loss", "val/ppl"} and not any(k.startswith("test/") for k in val)
    res = cli("-m", "sweeplab.eval", str(names_run / "checkpoints" / "last.ckpt"), "split=val", f"data.path={other}")
    assert res.returncode == 0, res.stderr[-2000:]
    on_other = json.loads(res.stdout)
    # 40 validation names of another file: a finite loss, and not the run's own validation loss
    assert math.isfinite(on_other["val/loss"]) and on_other["val/loss"] != pytest.approx(val["val/loss"], rel=1e-6)
    assert on_other == pytest.approx(evaluate(names_run, split="val", data={"path": str(other)}), rel=1e-6)


def test_eval_of_a_classifier_reproduces_its_metrics(classifier_run):
    m = json.loads((classifier_run / "metrics.json").read_text())
    again = evaluate(classifier_run)
    assert again["test/acc"] == pytest.approx(m["final"]["test/acc"], abs=1e-6)
    assert again["test/loss"] == pytest.approx(m["final"]["test/loss"], rel=1e-4)


def test_eval_of_a_checkpoint_from_before_a_task_key_existed(classifier_run, tmp_path):
    """A checkpoint whose config lacks a key the task option gained later (task.channels_last) is rebuilt with
    the value that does what the code did before the key (NCHW here) and scores as it did."""
    import torch

    run = tmp_path / "older"
    shutil.copytree(classifier_run, run)
    for path in (run / "checkpoints").glob("*.ckpt"):
        ckpt = torch.load(path, weights_only=True)
        del ckpt["sweeplab"]["config"]["task"]["channels_last"]
        torch.save(ckpt, path)
    m = json.loads((classifier_run / "metrics.json").read_text())
    assert evaluate(run)["test/acc"] == pytest.approx(m["final"]["test/acc"], abs=1e-6)


def test_keys_added_since_a_run_take_the_value_that_reproduces_it():
    """model.downsample arrived with max-pool as the ResNet's new default: a ResNet checkpoint from before it
    is rebuilt strided, as it was trained (the YAML's value now would build another network on the same
    weights); the DenseNet's is the paper's average pooling; keys a config has stay as they are."""
    from omegaconf import OmegaConf

    from sweeplab.runs.restore import with_added_keys

    old = OmegaConf.create({"model": {"_target_": "x.ResNet", "width": 8}, "task": {"mixup_alpha": 0.0}})
    got = with_added_keys(old, {"model": "resnet", "task": "classifier"})
    assert got.model.downsample == "stride" and got.model.width == 8 and got.task.channels_last is False
    dense = with_added_keys(OmegaConf.create({"model": {"downsample": "maxpool"}}), {"model": "densenet_cbam"})
    assert dense.model.downsample == "maxpool"
    assert with_added_keys(OmegaConf.create({"model": {}}), {"model": "densenet_cbam"}).model.downsample == "avgpool"


def test_eval_on_a_read_only_run_dir_prints_the_metrics_and_warns(names_run, tmp_path):
    run = tmp_path / "readonly"
    shutil.copytree(names_run, run)
    (run / "eval_test.json").unlink(missing_ok=True)
    if os.geteuid() == 0:
        # root writes into read-only dirs anyway: a directory where the file would go fails the write too
        (run / "eval_test.json").mkdir()
    for p in [run, *run.rglob("*")]:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        res = cli("-m", "sweeplab.eval", str(run), cwd=tmp_path)
    finally:
        for p in [run, *run.rglob("*")]:
            p.chmod(p.stat().st_mode | stat.S_IWUSR)
    assert res.returncode == 0, res.stderr[-2000:]
    assert math.isfinite(json.loads(res.stdout)["test/loss"])
    assert res.stderr.strip().splitlines() == [
        f"sweeplab-eval: warning: cannot write {run / 'eval_test.json'}: "
        f"{'Is a directory' if os.geteuid() == 0 else 'Permission denied'}; the metrics are above"
    ]


def test_eval_multirun_prints_each_split_under_a_header(names_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(names_run, run)
    res = cli("-m", "sweeplab.eval", str(run), "-m", "split=val,test", cwd=tmp_path, env={"TMPDIR": str(tmp_path)})
    assert res.returncode == 0, res.stderr[-2000:]
    lines = res.stdout.splitlines()
    assert [ln for ln in lines if ln.startswith("==")] == ["== split=val ==", "== split=test =="]
    assert (run / "eval_val.json").is_file() and (run / "eval_test.json").is_file()
    # Hydra's multirun.yaml goes to the temp dir; the cwd gets nothing
    assert list(tmp_path.glob("sweeplab-eval/*/multirun.yaml"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "sweeplab-eval"]


# ---------------------------------------------------------------- generation
def test_greedy_is_beam_of_one_and_the_prefix_is_continued(names_run):
    greedy = generate(names_run, greedy=True)
    assert len(greedy) == 1 and greedy == generate(names_run, beam_size=1)
    assert len(generate(names_run, beam_size=3)) == 3
    for texts in (generate(names_run, prefix="jo", num_samples=5), generate(names_run, prefix="jo", beam_size=2)):
        assert texts and all(t.startswith("jo") and t.isalpha() for t in texts)


def test_sampling_options(names_run):
    names = generate(names_run, num_samples=8, temperature=0.8, top_k=5, top_p=0.9)
    assert len(names) == 8 and all(n.isalpha() or n == "" for n in names)
    assert names == generate(names_run, num_samples=8, temperature=0.8, top_k=5, top_p=0.9)  # seeded
    assert names != generate(names_run, num_samples=8, temperature=0.8, top_k=5, top_p=0.9, seed=1)
    # keeping one token (top-k 1, or a nucleus smaller than any token's probability) is greedy decoding
    greedy = generate(names_run, greedy=True)
    assert set(generate(names_run, num_samples=4, top_k=1)) == set(greedy)
    assert set(generate(names_run, num_samples=4, top_p=1e-6)) == set(greedy)
    # a lower temperature concentrates the samples on fewer names
    cold = generate(names_run, num_samples=60, temperature=0.3)
    hot = generate(names_run, num_samples=60, temperature=2.0)
    assert len(set(cold)) < len(set(hot))


def test_generate_checks_its_options_like_the_command_line(names_run):
    with pytest.raises(ConfigError, match=r"unknown option 'temprature' \(did you mean 'temperature'\?\)"):
        generate(names_run, temprature=0.5)
    with pytest.raises(ConfigError, match=r"greedy=true and beam_size=3 conflict"):
        generate(names_run, greedy=True, beam_size=3)
    with pytest.raises(ConfigError, match=r"length_penalty=1.0 applies to beam search only: give beam_size=N"):
        generate(names_run, length_penalty=1.0)
    with pytest.raises(ConfigError, match=r"length_penalty=-1 is out of range: it must be >= 0"):
        generate(names_run, beam_size=2, length_penalty=-1.0)
    # ranked by total / length^penalty, the best of a wide beam is at least as long as by the total
    plain, longer = (generate(names_run, beam_size=4, length_penalty=p) for p in (0.0, 2.0))
    assert len(plain) == len(longer) == 4 and len(longer[0]) >= len(plain[0])
    with pytest.raises(ConfigError, match=r"max_new_tokens=99 is out of range: .* must be <= 16"):
        generate(names_run, max_new_tokens=99)


def test_gpu_that_is_not_there_is_a_one_line_error(names_run, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for call in (evaluate, generate):
        with pytest.raises(ConfigError, match=r"^accelerator=gpu, but torch sees no CUDA GPU here"):
            call(names_run, accelerator="gpu")


def test_out_of_vocabulary_prefix_warns_once_naming_the_characters(names_run, tmp_path):
    with pytest.warns(UserWarning, match=r"prefix characters not in the model's vocabulary, read as <unk>: '!', 'J'"):
        texts = generate(names_run, prefix="Jo!", num_samples=2)
    assert all(t.startswith("<unk>o<unk>") for t in texts)
    res = cli("-m", "sweeplab.generate", str(names_run), "prefix=Jo!", "-m", "temperature=0.5,1.0", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stderr.strip().splitlines() == [
        "sweeplab-generate: warning: prefix characters not in the model's vocabulary, read as <unk>: '!', 'J'"
    ]


def test_cli_samples_and_multirun_headers(names_run, tmp_path):
    res = cli(
        "-m",
        "sweeplab.generate",
        str(names_run),
        "num_samples=5",
        "temperature=0.8",
        "top_k=5",
        "top_p=0.9",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.splitlines() == generate(names_run, num_samples=5, temperature=0.8, top_k=5, top_p=0.9)
    res = cli(
        "-m",
        "sweeplab.generate",
        str(names_run),
        "-m",
        "temperature=0.5,0.8,1.2",
        "num_samples=3",
        cwd=tmp_path,
        env={"TMPDIR": str(tmp_path)},
    )
    assert res.returncode == 0, res.stderr[-2000:]
    lines = res.stdout.splitlines()
    for i, t in enumerate((0.5, 0.8, 1.2)):
        block = lines[4 * i : 4 * i + 4]
        assert block[0] == f"== temperature={t} num_samples=3 ==", lines
        assert block[1:] == generate(names_run, temperature=t, num_samples=3)
    assert len(lines) == 12
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweeplab-generate"]  # Hydra's multirun.yaml only
    # a sweep over runs names each run in its header
    ckpt = names_run / "checkpoints" / "last.ckpt"
    res = cli("-m", "sweeplab.generate", "-m", f"run={names_run},{ckpt}", "greedy=true", env={"TMPDIR": str(tmp_path)})
    assert res.returncode == 0, res.stderr[-2000:]
    assert [ln for ln in res.stdout.splitlines() if ln.startswith("==")] == [
        f"== run={names_run} greedy=true ==",
        f"== run={ckpt} greedy=true ==",
    ]


def test_a_sweep_job_dir_named_like_overrides_is_the_run(names_run, tmp_path):
    job = tmp_path / "multiruns" / "0_model.dropout=0.1,seed=2"
    shutil.copytree(names_run, job)
    for run in (job, job.relative_to(tmp_path)):
        res = cli("-m", "sweeplab.generate", str(run), "greedy=true", cwd=tmp_path)
        assert res.returncode == 0, res.stderr[-2000:]
        assert res.stdout.splitlines() == generate(names_run, greedy=True)
    missing = Path("multiruns") / "1_seed=3"
    res = cli("-m", "sweeplab.eval", str(missing), cwd=tmp_path)
    assert _error_line(res, "sweeplab-eval") == f"no such run dir or checkpoint: {missing}"


def test_cfg_job_and_help_print_the_options(names_run, tmp_path):
    res = cli("-m", "sweeplab.generate", str(names_run), "--cfg", "job", "prefix=def train (", "beam_size=4")
    assert res.returncode == 0, res.stderr[-2000:]
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(res.stdout)
    assert cfg.run == str(names_run) and cfg.prefix == "def train (" and cfg.beam_size == 4
    assert cfg.num_samples == 20 and cfg.greedy is False  # conf/generate.yaml's values
    res = cli("-m", "sweeplab.eval", "--cfg", "job", "split=val", "data.path=other.txt")
    assert res.returncode == 0, res.stderr[-2000:]
    assert OmegaConf.create(res.stdout).data == {"path": "other.txt"}
    for module, option in (("sweeplab.generate", "top_p: null"), ("sweeplab.eval", "split: test")):
        res = cli("-m", module, "--help", cwd=tmp_path)
        assert res.returncode == 0 and option in res.stdout and "sweeplab-" in res.stdout.splitlines()[0]
    assert list(tmp_path.iterdir()) == []


def test_the_api_and_the_cli_share_one_set_of_defaults():
    from dataclasses import fields

    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from sweeplab.config.apps import APPS, app_defaults

    for app, schema in APPS.items():
        with initialize_config_module(config_module="sweeplab.conf", version_base="1.3"):
            composed = compose(app, overrides=[f"run={app}.ckpt"])
        values = OmegaConf.to_container(app_defaults(app))
        assert {**values, "run": f"{app}.ckpt"} == OmegaConf.to_container(composed)
        assert set(values) == {f.name for f in fields(schema)}
        assert all(f.default is f.default_factory for f in fields(schema))  # no values in the schema


# ---------------------------------------------------------------- bad input: one line, exit 2
BAD_GENERATE = [
    (["temprature=0.5"], "unknown option 'temprature' (did you mean 'temperature'?); options: run, num_samples,"),
    (["temperature=0"], "temperature=0 is out of range: it must be > 0"),
    (["top_p=1.5"], "top_p=1.5 is out of range: it must be <= 1"),
    (["num_samples=many"], "num_samples='many' has the wrong type: it must be an integer"),
    (["greedy=true", "beam_size=3"], "greedy=true and beam_size=3 conflict"),
    (["greedy=true", "temperature=0.8"], "greedy=true conflicts with temperature=0.8"),
    (["greedy=true", "top_k=5", "top_p=0.9"], "greedy=true conflicts with top_k=5 top_p=0.9"),
    (["beam_size=2", "top_k=5"], "beam_size=2 conflicts with top_k=5: beam search does not sample"),
    (["prefix=jo,an"], "'prefix=jo,an' is a sweep: add -m to run each value, or quote it"),
    (["accelerator=tpu"], "accelerator='tpu' is not allowed: choose one of auto, cpu, gpu"),
    (["data.path=x.txt"], "unknown option 'data.path'"),
    (["max_new_tokens=1000"], "max_new_tokens=1000 is out of range: the model reads at most 16 tokens"),
    (["prefix=abcdefghijklmnopqrstuvwxyz"], "prefix is 26 tokens long: the model reads at most 16 tokens"),
]
BAD_EVAL = [
    (["split=train"], "split='train' is not allowed: choose one of test, val"),
    (["spilt=val"], "unknown option 'spilt' (did you mean 'split'?)"),
    (["devices=0"], "devices=0 is out of range: it must be >= 1"),
    (["data=lensing"], "'data=lensing': data takes overrides of the run's own data config, one key at a time"),
    (["data.pth=x.txt"], "unknown key 'data.pth'"),
    (["data.batch_size=0"], "data.batch_size=0 is out of range: it must be >= 1"),
    (["data.path=/no/such/names.txt"], "data file not found: /no/such/names.txt"),
]


@pytest.mark.parametrize(
    "prog,args,expected",
    [("generate", a, e) for a, e in BAD_GENERATE] + [("eval", a, e) for a, e in BAD_EVAL],
    ids=[" ".join(a) for a, _ in BAD_GENERATE + BAD_EVAL],
)
def test_bad_option_is_one_line(prog, args, expected, names_run, tmp_path):
    res = cli("-m", f"sweeplab.{prog}", str(names_run), *args, cwd=tmp_path)
    assert expected in _error_line(res, f"sweeplab-{prog}")
    assert list(tmp_path.iterdir()) == []


def test_bad_options_fail_before_torch_is_imported():
    code = (
        "import sys; from sweeplab.generate import main; sys.argv = ['sweeplab-generate', '/x', 'top_k=0']\n"
        "try:\n    main()\nexcept SystemExit as e:\n    print(e.code, 'torch' in sys.modules)"
    )
    res = cli("-c", code)
    assert res.stdout.split() == ["2", "False"], res.stderr[-2000:]


class _RunsCode:
    """Unpickling this creates a file: the proof that a checkpoint ran code when loaded."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_bad_run_or_checkpoint_is_one_line(names_run, classifier_run, tmp_path):
    import torch

    bogus = tmp_path / "model.ckpt"
    bogus.write_text("not a checkpoint")
    plain = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {}, "epoch": 0}, plain)
    marker = tmp_path / "code-ran"
    hostile = tmp_path / "hostile.ckpt"
    torch.save({"sweeplab": {}, "state_dict": {}, "payload": _RunsCode(marker)}, hostile, pickle_module=pickle)
    (tmp_path / "empty_run").mkdir()
    cases = [
        ("generate", [], "no run given: sweeplab-generate <run dir or .ckpt> [key=value ...] (see --help)"),
        ("eval", [str(tmp_path / "nope")], f"no such run dir or checkpoint: {tmp_path / 'nope'}"),
        ("generate", [str(tmp_path / "nope")], f"no such run dir or checkpoint: {tmp_path / 'nope'}"),
        ("generate", [str(tmp_path / "empty_run")], f"{tmp_path / 'empty_run'} holds no checkpoint"),
        (
            "generate",
            [str(bogus)],
            f"cannot read checkpoint {bogus}: not a PyTorch checkpoint, or corrupt (UnpicklingError)",
        ),
        ("eval", [str(plain)], f"{plain} is not a sweeplab checkpoint (no 'sweeplab' metadata)"),
        ("generate", [str(hostile)], f"{hostile} holds a pickled object (io.open), not only tensors"),
        ("generate", [str(classifier_run)], "is not a language model's checkpoint: its task is ImageClassifierTask"),
        ("generate", [str(names_run), "-m", f"run={names_run},{tmp_path / 'gone'}"], "no such run dir or checkpoint"),
    ]
    for prog, args, expected in cases:
        res = cli("-m", f"sweeplab.{prog}", *args, cwd=tmp_path)
        line = _error_line(res, f"sweeplab-{prog}")
        assert expected in line, (args, line)
        assert "weights_only=False" not in res.stderr
    assert not marker.exists()  # the hostile checkpoint was refused, not run
    with pytest.raises(RestoreError, match="not a language model's checkpoint"):
        generate(classifier_run)


# ---------------------------------------------------------------- codesearchnet: tokens, not characters
def test_codesearchnet_beam_of_one_is_greedy_and_eval_reproduces(run_job, csn_dir, hf_cache):  # noqa: F811
    out, m = run_job(
        *csn_overrides(csn_dir, hf_cache),
        "model=lstm",
        "trainer.max_epochs=3",
        "optimizer.lr=1e-2",
        "scheduler.warmup_steps=10",  # the run is 75 steps: the default 100-step warmup is refused
        "data.adaptive_cutoffs=null",
    )
    assert m["status"] == "completed", m.get("error")
    assert m["final"]["test/loss"] < m["data"]["unigram_val_loss"] + 0.5
    # the vocabulary is saved beside the run as well as in the checkpoint
    assert json.loads((out / "vocab.json").read_text())["itos"][:4] == ["<pad>", "<unk>", "<eos>", "<bos>"]
    # "train" is not among the 400 tokens this small corpus keeps: the model reads it as <unk>
    with pytest.warns(UserWarning, match=r"prefix tokens not in the model's vocabulary, read as <unk>: 'train'"):
        generate(out, greedy=True, prefix="def train (", max_new_tokens=2)
    warnings.simplefilter("ignore", UserWarning)  # the same warning, for the calls below
    for prefix in ("def train (", "def __init__ ( self"):
        greedy = generate(out, greedy=True, prefix=prefix, max_new_tokens=24)
        assert greedy == generate(out, beam_size=1, prefix=prefix, max_new_tokens=24) and greedy[0].startswith("def")
    sampled = generate(
        out, prefix="def train (", num_samples=3, temperature=0.8, top_k=20, top_p=0.9, max_new_tokens=24
    )
    assert len(sampled) == 3 and all(s.startswith("def") for s in sampled)
    # the checkpoint alone (vocabulary included) reproduces the run's test perplexity
    assert evaluate(out)["test/loss"] == pytest.approx(m["final"]["test/loss"], rel=1e-4)
    # the README's command, typed as it is: the prefix needs no extra quoting
    res = cli("-m", "sweeplab.generate", str(out), "prefix=def train (", "beam_size=4", "max_new_tokens=24")
    assert res.returncode == 0, res.stderr[-2000:]
    beams = generate(out, prefix="def train (", beam_size=4, max_new_tokens=24)
    assert len(beams) == 4
    assert res.stdout == ("\n\n" if any("\n" in b for b in beams) else "\n").join(beams) + "\n"
