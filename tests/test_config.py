"""Config layer: every option composes, has a schema matching its YAML and its constructor; bad
overrides are rejected in one line before anything runs."""

from __future__ import annotations

import inspect
import time
from dataclasses import fields

import pytest
from hydra.utils import get_class

from conftest import cli, compose_job
from sweeplab.config.preflight import check_overrides, group_options
from sweeplab.config.schema import SCHEMAS, TRAINER_EXTRA_ARGS, TrainerConf
from sweeplab.config.validate import SCHEMA_GROUPS, validate
from sweeplab.errors import ConfigError

DATA_FACTS = {"vocab_size", "max_len", "in_channels", "num_classes", "image_size"}


def options(group):
    return group_options(group)


def test_every_group_option_has_a_schema_equal_to_its_keys(tmp_path):
    for group in SCHEMA_GROUPS:
        for option in options(group):
            extra = [f"data={option}"] if group == "task" else []  # a task needs its own data set
            cfg = compose_job([f"{group}={option}", *extra], tmp_path)
            schema = SCHEMAS.get((group, option))
            assert schema is not None, f"no schema for {group}={option}"
            keys = {k for k in cfg[group] if not k.startswith("_")}
            assert keys == {f.name for f in fields(schema)}, f"{group}={option}: YAML keys != schema fields"


@pytest.mark.parametrize("option", options("model"))
def test_model_schema_matches_constructor(option):
    from importlib import resources

    from omegaconf import OmegaConf

    target = OmegaConf.load(str(resources.files("sweeplab.conf") / "model" / f"{option}.yaml"))["_target_"]
    params = set(inspect.signature(get_class(target).__init__).parameters) - {"self"} - DATA_FACTS
    assert params == {f.name for f in fields(SCHEMAS[("model", option)])}


def test_trainer_keys_are_real_trainer_arguments():
    from pytorch_lightning import Trainer

    real = set(inspect.signature(Trainer.__init__).parameters)
    ours = {f.name for f in fields(TrainerConf)} | set(TRAINER_EXTRA_ARGS)
    assert ours <= real, ours - real


def _pairs():
    lm_models = [m for m in options("model") if m not in ("densenet_cbam", "resnet")]
    for data in options("data"):
        for model in ["densenet_cbam", "resnet"] if data == "lensing" else lm_models:
            if model in options("model"):
                yield data, model


@pytest.mark.parametrize("data,model", list(_pairs()))
def test_every_data_model_pair_composes_validates_and_instantiates(data, model, tmp_path):
    import torch
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import instantiate

    cfg = compose_job([f"data={data}", f"model={model}"], tmp_path)
    validate(cfg, dict(HydraConfig.get().runtime.choices))
    instantiate(cfg.data)  # constructor only: no data set is built here
    if data == "lensing":
        net = instantiate(cfg.model, in_channels=1, num_classes=3, image_size=64)
        assert net(torch.randn(2, 1, 64, 64)).shape == (2, 3)
    else:
        # codesearchnet's default adaptive softmax clusters need a token-sized vocabulary (which the dense
        # add-k n-gram, made for characters, refuses)
        V = 12_000 if data == "codesearchnet" and model != "ngram" else 30
        net = instantiate(cfg.model, vocab_size=V, max_len=12)
        assert net(torch.randint(0, V, (2, 12))).shape == (2, 12, V)


BAD = [
    (["model.hiden_dim=3"], "unknown key 'model.hiden_dim'", "did you mean 'model.hidden_dim'"),
    (["+model.hiden_dim=3"], "unknown key 'model.hiden_dim'", "did you mean 'hidden_dim'"),
    (["+lr=0.1"], "unknown key 'lr'", "did you mean 'optimizer.lr'"),
    (["model=lstmm"], "unknown model option 'lstmm'", "did you mean 'lstm'"),
    (["schedular=cosine"], "unknown key 'schedular'", "did you mean 'scheduler'"),
    (["optimizer.lr=-1"], "optimizer.lr=-1 is out of range", "> 0"),
    (["model.dropout=1.0"], "model.dropout=1.0 is out of range", "< 1"),
    (["data.batch_size=0"], "data.batch_size=0 is out of range", ">= 1"),
    (["scheduler.warmup_steps=-1"], "scheduler.warmup_steps=-1 is out of range", ">= 0"),
    (["trainer.max_epochs=abc"], "trainer.max_epochs='abc' has the wrong type", "integer"),
    (["model.dropout=0,1.5"], "model.dropout=1.5 is out of range", "< 1"),
    (["model=mlp,ngram", "model.hidden_dim=8"], "unknown key 'model.hidden_dim' with model=ngram", ""),
    (["+trainer.profilr=simple"], "unknown key 'trainer.profilr'", "did you mean 'profiler'"),
]


@pytest.mark.parametrize("args,message,hint", BAD, ids=[" ".join(b[0]) for b in BAD])
def test_bad_overrides_fail_in_one_line(args, message, hint):
    with pytest.raises(ConfigError) as err:
        check_overrides(args)
    text = str(err.value)
    assert message in text and hint in text
    assert "\n" not in text


def test_good_overrides_pass():
    check_overrides(
        [
            "model=gru",
            "model.hidden_dim=32",
            "scheduler=step",
            "scheduler.warmup_steps=5",
            "optimizer=sgd",
            "optimizer.momentum=0.5",
            "+trainer.profiler=simple",
            "seed=3",
        ]
    )
    check_overrides(["model=mlp,lstm", "model.dropout=0,0.2", "scheduler=constant,cosine"])


def test_cli_rejects_bad_override_fast_without_run_dir(tmp_path):
    t0 = time.perf_counter()
    res = cli("-m", "sweeplab.train", "model.dropout=1.5", f"paths.log_dir={tmp_path}", cwd=tmp_path)
    elapsed = time.perf_counter() - t0
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert lines == ["sweeplab-train: error: model.dropout=1.5 is out of range: it must be < 1"]
    assert not any(tmp_path.iterdir()), "a rejected config must not leave a run dir"
    assert elapsed < 30  # generous: a loaded 2-core CI box; benchmarks/ measures the real figure
