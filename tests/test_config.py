"""Config layer: every option of every group composes with no missing value and instantiates; schemas, YAML
keys and constructor signatures agree; bad overrides are refused in one line before anything runs.

Nothing here lists options by hand: groups and options come from conf/, the data set a model or task
needs from the kinds its schema declares, so a new YAML is tested without editing this file."""

from __future__ import annotations

import inspect
import time
from dataclasses import fields, is_dataclass
from importlib import resources

import pytest
from hydra.utils import get_class, get_method, instantiate
from omegaconf import DictConfig, OmegaConf

from conftest import cli, compose_job
from sweeplab.config.preflight import check_overrides
from sweeplab.config.schema import (
    CONFIG_MODULE,
    DATA_FACTS,
    IMAGES,
    PAIRS,
    TASK_RUN_ARGS,
    TOKENS,
    TRAINER_SET_BY_RUN,
    TrainerConf,
)
from sweeplab.config.validate import group_options, option_schema, options_for, validate
from sweeplab.errors import ConfigError

# A value for each data fact (schema.DATA_FACTS), and a batch of each kind with the output it must give.
FACT_VALUES = {"vocab_size": 30, "max_len": 12, "in_channels": 1, "num_classes": 3, "image_size": 32}
PRESETS = ("experiment", "hparams_search", "debug")  # @package _global_ groups: whole-config presets


def batch_and_output(kind):
    import torch

    if kind == TOKENS:
        return torch.randint(0, FACT_VALUES["vocab_size"], (2, 12)), (2, 12, FACT_VALUES["vocab_size"])
    if kind == PAIRS:  # (queries, functions) -> each query's score against each function
        ids = torch.randint(1, FACT_VALUES["vocab_size"], (2, 12))
        return (ids, ids.flip(1)), (2, 2)
    assert kind == IMAGES, f"a batch for kind {kind!r}: add it here with its data facts"
    size = FACT_VALUES["image_size"]
    return torch.randn(2, FACT_VALUES["in_channels"], size, size), (2, FACT_VALUES["num_classes"])


def groups() -> list[str]:
    """Every config group in conf/ (directories holding YAMLs), e.g. model, hydra/launcher."""
    root = resources.files(CONFIG_MODULE)
    found, todo = [], [""]
    while todo:
        rel = todo.pop()
        node = root.joinpath(*rel.split("/")) if rel else root
        for child in node.iterdir():
            if child.is_dir() and child.name != "__pycache__":
                sub = f"{rel}/{child.name}" if rel else child.name
                if group_options(sub) and sub != "hydra":  # hydra/default.yaml: train.yaml's own, always there
                    found.append(sub)
                todo.append(sub)
    return sorted(found)


def produced() -> dict[str, str]:
    """kind -> the first data option that produces it."""
    out = {}
    for option in group_options("data"):
        out.setdefault(option_schema("data", option).produces, option)
    return out


def enclosing(group: str) -> list[str]:
    """A group nested in another group's option (hydra/sweeper/sampler in hydra/sweeper=optuna) composes only
    with that option: ``["hydra/sweeper=optuna"]``, or ``[]`` for a top-level group."""
    parent, _, name = group.rpartition("/")
    for option in group_options(parent) or [] if parent else []:
        own = OmegaConf.create(
            resources.files(CONFIG_MODULE).joinpath(*parent.split("/"), f"{option}.yaml").read_text()
        )
        if any(isinstance(d, DictConfig) and name in d for d in own.get("defaults", [])):
            return [f"{parent}={option}"]
    return []


def fitting(group: str, option: str) -> list[str]:
    """The overrides that compose ``group=option`` with a data set (and model) of the kind it takes or gives."""
    if nested := enclosing(group):
        return [*nested, f"{group}={option}"]
    cls = option_schema(group, option) if group in ("data", "model", "task") else None
    kind = getattr(cls, "produces", None) or getattr(cls, "consumes", None)
    if kind is None:
        return [f"{group}={option}"]
    extra = {"data": produced()[kind], "model": options_for("model", kind)[0]}
    extra[group] = option
    return [f"{g}={o}" for g, o in extra.items()]


ALL_OPTIONS = [(g, o) for g in groups() for o in group_options(g)]


def _compose(overrides, tmp_path):
    from hydra.core.hydra_config import HydraConfig

    cfg = compose_job(overrides, tmp_path)
    return cfg, {k: v for k, v in HydraConfig.get().runtime.choices.items() if v is not None}


def _typed_nodes(node: DictConfig, path: str = ""):
    """(path, node) of every node below ``node`` that has a schema."""
    for key in node:
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not child._is_none():
            where = f"{path}.{key}" if path else str(key)
            if is_dataclass(OmegaConf.get_type(child)):
                yield where, child
            yield from _typed_nodes(child, where)


@pytest.mark.parametrize("group,option", ALL_OPTIONS, ids=[f"{g}={o}" for g, o in ALL_OPTIONS])
def test_every_option_composes_complete_and_valid(group, option, tmp_path):
    cfg, choices = _compose(fitting(group, option), tmp_path)
    assert OmegaConf.missing_keys(cfg) == set(), f"{group}={option} leaves keys without a value"
    validate(cfg, choices)
    for name in ("data", "task", "model", "optimizer", "scheduler", "loss", "trainer", "paths"):
        assert is_dataclass(OmegaConf.get_type(cfg[name])), f"{name} has no schema"
    if group.startswith("hydra/") or group in PRESETS:
        return
    # The option's YAML holds a value for every field of its schema, and nothing else.
    own = OmegaConf.create((resources.files(CONFIG_MODULE).joinpath(*group.split("/"), f"{option}.yaml")).read_text())
    defaults = [d for d in own.pop("defaults", []) if d != "_self_"]
    if all(isinstance(d, str) and d.startswith("/schema/") for d in defaults):  # not an option inheriting one
        for name, values in own.items() if group in ("callbacks", "logger") else [(group, own)]:
            node = cfg[name] if name == group else cfg[group][name]
            schema = OmegaConf.get_type(node)
            assert set(values) == {f.name for f in fields(schema)}, f"{group}={option}: YAML keys != {schema}"
    # The same schema, found from the YAML without composing (for messages and checkpoints' configs).
    if group in ("data", "task", "model", "optimizer", "scheduler", "loss", "trainer", "paths"):
        assert option_schema(group, option) is OmegaConf.get_type(cfg[group])


INSTANTIATED = ("data", "model", "task", "optimizer", "scheduler", "trainer", "callbacks", "logger")


@pytest.mark.parametrize("group,option", [(g, o) for g, o in ALL_OPTIONS if g in INSTANTIATED])
def test_every_option_instantiates_from_its_yaml(group, option, tmp_path):
    import functools

    import torch

    cfg, _ = _compose([*fitting(group, option), "trainer.accelerator=cpu"], tmp_path)
    kind = OmegaConf.get_type(cfg.data).produces
    if group == "data":
        instantiate(cfg.data)  # the constructor only: no data set is read or built here
    elif group == "model":
        net = instantiate(cfg.model, **{k: FACT_VALUES[k] for k in DATA_FACTS[kind]}).eval()
        x, shape = batch_and_output(kind)
        assert net(x).shape == shape
    elif group in ("task", "scheduler"):  # completed by the run (a network; the run's length)
        assert isinstance(instantiate(cfg[group], _partial_=True), functools.partial)
    elif group == "optimizer":
        optimizer = instantiate(cfg.optimizer, _convert_="all")([torch.nn.Parameter(torch.zeros(2))])
        assert optimizer.defaults["lr"] == cfg.optimizer.lr
    elif group == "trainer":
        trainer = instantiate(cfg.trainer, callbacks=[], logger=False, enable_progress_bar=False)
        assert trainer.max_epochs == cfg.trainer.max_epochs
    else:  # named items, each a Lightning object or null
        for name, item in cfg[group].items():
            assert item is None or instantiate(item) is not None or name == "progress_bar"


def _targets(cfg: DictConfig):
    """(path, node, schema) of every typed node with a _target_."""
    yield from ((p, n, OmegaConf.get_type(n)) for p, n in _typed_nodes(cfg) if "_target_" in n)


def _parameters(target: str) -> dict[str, inspect.Parameter]:
    try:
        obj = get_class(target)
        sig = inspect.signature(obj.__init__)
    except ValueError:
        sig = inspect.signature(get_method(target))
    return {n: p for n, p in sig.parameters.items() if n not in ("self", "args", "kwargs")}


@pytest.mark.parametrize("group,option", [(g, o) for g, o in ALL_OPTIONS if not g.startswith("hydra")])
def test_schema_yaml_and_constructor_agree(group, option, tmp_path):
    """sweeplab's own classes take exactly their schema's fields (plus the data facts, or what the run hands a
    task) as required keyword-only arguments; a library's class at least accepts every field."""
    cfg, _ = _compose(fitting(group, option), tmp_path)
    for path, node, schema in _targets(cfg):
        params = _parameters(node._target_)
        names = {f.name for f in fields(schema)} - {"_target_", "_partial_"}
        if path == "model":
            expected = names | set(DATA_FACTS[schema.consumes])
        elif path == "task":
            expected = names | (set(TASK_RUN_ARGS) & set(params))
        elif path == "data":
            expected = names
        else:
            assert names <= set(params), f"{path}: {node._target_} takes no {names - set(params)}"
            continue
        assert set(params) == expected, f"{path}: {node._target_}{inspect.signature(get_class(node._target_))}"
        if path in ("model", "data"):  # one home per value: the YAML
            for p in params.values():
                assert p.kind == p.KEYWORD_ONLY and p.default is p.empty, f"{node._target_}: {p}"


def test_trainer_yaml_lists_every_trainer_argument():
    from pytorch_lightning import Trainer

    real = set(inspect.signature(Trainer.__init__).parameters) - {"self"}
    ours = {f.name for f in fields(TrainerConf)} - {"_target_"}
    assert ours <= real, ours - real
    assert ours | set(TRAINER_SET_BY_RUN) == real, real - ours - set(TRAINER_SET_BY_RUN)


def test_default_trainer_callbacks_loggers_and_factories_instantiate(tmp_path):
    import functools

    import pytorch_lightning as pl
    import torch

    cfg, _ = _compose(["trainer=cpu", "logger=[csv,tensorboard]", "scheduler=onecycle"], tmp_path)
    callbacks = [instantiate(c) for c in cfg.callbacks.values()]
    assert {type(c).__name__ for c in callbacks if c is not None} >= {"ModelCheckpoint", "EarlyStopping"}
    loggers = [instantiate(lg) for lg in cfg.logger.values()]
    assert {type(lg).__name__ for lg in loggers} == {"CSVLogger", "TensorBoardLogger"}
    trainer = instantiate(cfg.trainer, callbacks=[], logger=False, enable_progress_bar=False)
    assert isinstance(trainer, pl.Trainer) and trainer.max_epochs == cfg.trainer.max_epochs
    optimizer = instantiate(cfg.optimizer)([torch.nn.Parameter(torch.zeros(2))])
    assert optimizer.defaults["lr"] == cfg.optimizer.lr
    # The task completes a scheduler partial with the run's length; here only its arguments are checked.
    scheduler = instantiate(cfg.scheduler)
    assert isinstance(scheduler, functools.partial) and scheduler.func is torch.optim.lr_scheduler.OneCycleLR
    assert scheduler.keywords["max_lr"] == cfg.optimizer.lr
    assert "total_steps" in inspect.signature(scheduler.func).parameters


def test_a_users_option_inheriting_a_shipped_one_is_checked_like_it(tmp_path):
    """The schema comes with the YAML it inherits: no registry to update for a user's own option."""
    from hydra import compose, initialize_config_module

    mine = tmp_path / "mine" / "model"
    mine.mkdir(parents=True)
    (mine / "lstm_big.yaml").write_text("defaults:\n  - lstm\n  - _self_\nhidden_dim: 512\n")
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        cfg = compose("train", overrides=[f"hydra.searchpath=[file://{tmp_path / 'mine'}]", "model=lstm_big"])
        assert OmegaConf.get_type(cfg.model).__name__ == "RecurrentConf" and cfg.model.hidden_dim == 512
        validate(cfg, {"model": "lstm_big"})
        cfg.model.dropout = 1.5
        with pytest.raises(ConfigError, match=r"model.dropout=1.5 is out of range"):
            validate(cfg, {"model": "lstm_big"})


def test_every_model_and_task_takes_a_kind_some_data_set_gives():
    kinds = set(produced())
    for group in ("model", "task"):
        for option in group_options(group):
            assert option_schema(group, option).consumes in kinds, f"{group}={option}"
    assert set(DATA_FACTS) == kinds


BAD = [
    (["model.hiden_dim=3"], "unknown key 'model.hiden_dim'", "did you mean 'model.hidden_dim'"),
    (["+model.hiden_dim=3"], "unknown key 'model.hiden_dim'", "did you mean 'hidden_dim'"),
    (["+lr=0.1"], "unknown key 'lr'", "did you mean 'optimizer.lr'"),
    (["model=lstmm"], "unknown model option 'lstmm'", "did you mean 'lstm'"),
    (["schedular=cosine"], "unknown key 'schedular'", "did you mean 'scheduler'"),
    (["optimizer.lr=-1"], "optimizer.lr=-1 is out of range", "> 0"),
    (["model.dropout=1.0"], "model.dropout=1 is out of range", "< 1"),
    (["data.batch_size=0"], "data.batch_size=0 is out of range", ">= 1"),
    (["scheduler.warmup_steps=-1"], "scheduler.warmup_steps=-1 is out of range", ">= 0"),
    (["trainer.max_epochs=abc"], "trainer.max_epochs='abc' has the wrong type", "integer"),
    (["model.embed_dim=1.5"], "model.embed_dim=1.5 has the wrong type", "integer"),
    (["seed=abc"], "seed='abc' has the wrong type", "integer"),
    (["model.dropout=0,1.5"], "model.dropout=1.5 is out of range", "< 1"),
    (["model=mlp,ngram", "model.hidden_dim=8"], "unknown key 'model.hidden_dim' with model=ngram", ""),
    (["+trainer.profilr=simple"], "unknown key 'trainer.profilr'", "did you mean 'profiler'"),
    (["trainer.profiler=simpel"], "trainer.profiler='simpel' is not allowed", "did you mean 'simple'"),
    (["logger=[csv,tensorbord]"], "unknown logger option 'tensorbord'", "did you mean 'tensorboard'"),
    # callbacks and loggers: each item has a schema
    (
        ["callbacks.early_stopping.patiense=3"],
        "unknown key 'callbacks.early_stopping.patiense'",
        "early_stopping.patience'",
    ),
    (["callbacks.early_stopping.patience=-1"], "callbacks.early_stopping.patience=-1 is out of range", ">= 0"),
    (["callbacks.lr_monitor.logging_interval=stepp"], "logging_interval='stepp' is not allowed", "'step'"),
    (["+logger.csv.flush=1"], "unknown key 'logger.csv.flush'", "valid keys"),
    # kinds: data, model and task must fit
    (
        ["data=lensing", "model=mlp"],
        "model=mlp takes tokens but data=lensing gives images",
        "densenet_cbam, densenet_cbam_seed, resnet",
    ),
    (["model=resnet"], "model=resnet takes images but data=names gives tokens", "model options for tokens: "),
    (["data=lensing", "model=resnet", "task=language_model"], "task=language_model takes tokens", "classifier"),
    (["task=classifier"], "task=classifier takes images but data=names gives tokens", "language_model"),
    # rules across keys
    (["trainer.max_epochs=0"], "trainer.max_epochs=0 trains nothing", "at least 1"),
    (["trainer.max_steps=0"], "trainer.max_steps=0 trains nothing", "at least 1"),
    (["trainer.max_epochs=-1"], "trainer.max_epochs=-1 with trainer.max_steps=-1 never ends", ""),
    (["trainer.max_steps=100", "scheduler.warmup_steps=100"], "scheduler.warmup_steps=100 is as long as", "< 100"),
    (["trainer.max_epochs=3", "scheduler.warmup_epochs=3"], "scheduler.warmup_epochs=3 is as long as", "< 3"),
    (["trainer.max_steps=50", "scheduler.warmup_steps=10,50"], "scheduler.warmup_steps=50 is as long as", ""),
    (["scheduler=step", "scheduler.milestones=[0.5,1.5]"], "scheduler.milestones[]=1.5 is out of range", "< 1"),
    (["scheduler=step", "scheduler.milestones=[0,0.5]"], "scheduler.milestones[]=0 is out of range", "> 0"),
    (["scheduler=onecycle", "scheduler.pct_start=1"], "scheduler.pct_start=1 is out of range", "< 1"),
    (
        ["data=codesearchnet", "loss=label_smoothing"],
        "loss.label_smoothing=0.1 cannot be used",
        "adaptive_cutoffs=null",
    ),
    (["data=codesearchnet", "model.tie_weights=true"], "model.tie_weights=true cannot be used", "adaptive_cutoffs"),
    (["hydra.run.dir="], "hydra.run.dir is empty", "logs/<task_name>/runs"),
    (["hydra.sweep.dir= "], "hydra.sweep.dir is empty", ""),
    (["hydra.launcher.n_jobz=3"], "unknown key 'hydra.launcher.n_jobz'", ""),
    (["hydra/launcher=parallel", "hydra.launcher.n_jobz=3"], "unknown key 'hydra.launcher.n_jobz'", "n_jobs"),
]


@pytest.mark.parametrize("args,message,hint", BAD, ids=[" ".join(b[0]) for b in BAD])
def test_bad_overrides_fail_in_one_line(args, message, hint):
    with pytest.raises(ConfigError) as err:
        check_overrides(args)
    text = str(err.value)
    assert message in text and hint in text, text
    assert "\n" not in text


def test_slurm_without_sbatch_is_one_line_and_runs_where_sbatch_is(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError) as err:
        check_overrides(["hydra/launcher=slurm"])
    assert str(err.value) == (
        "hydra/launcher=slurm: SLURM is not available here (no sbatch on PATH); use hydra/launcher=submitit_local "
        "to try the same submission path on this machine"
    )
    sbatch = tmp_path / "sbatch"
    sbatch.write_text("#!/bin/sh\n")
    sbatch.chmod(0o755)
    check_overrides(["hydra/launcher=slurm"])


def test_good_overrides_pass():
    check_overrides(
        [
            "model=gru",
            "model.hidden_dim=32",
            "scheduler=step",
            "scheduler.warmup_steps=5",
            "optimizer=sgd",
            "optimizer.momentum=0.5",
            "trainer.profiler=simple",
            "trainer.strategy=ddp",
            "trainer.max_time=00:00:20:00",
            "seed=3",
        ]
    )
    check_overrides(["model=mlp,lstm", "model.dropout=0,0.2", "scheduler=constant,cosine,onecycle"])
    check_overrides(["data=lensing", "model=resnet,densenet_cbam", "loss=label_smoothing", "task=classifier"])
    check_overrides(["callbacks.early_stopping=null", "callbacks.progress_bar=null", "logger=[csv,tensorboard]"])
    check_overrides(["callbacks=none", "data=codesearchnet", "model.adaptive_cutoffs=null", "loss=label_smoothing"])
    check_overrides(["trainer.max_epochs=-1", "trainer.max_steps=500", "scheduler.warmup_steps=100"])
    check_overrides(["hparams_search=names_optuna"])


def test_cli_rejects_bad_override_fast_without_run_dir(tmp_path):
    t0 = time.perf_counter()
    res = cli("-m", "sweeplab.train", "model.dropout=1.5", f"paths.log_dir={tmp_path}", cwd=tmp_path)
    elapsed = time.perf_counter() - t0
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert lines == ["sweeplab-train: error: model.dropout=1.5 is out of range: it must be < 1"]
    assert not any(tmp_path.iterdir()), "a rejected config must not leave a run dir"
    assert elapsed < 30  # generous: a loaded 2-core CI box; benchmarks/ measures the real figure
