"""Check a composed config: what OmegaConf's typed nodes do not, each problem in one line.

OmegaConf already refuses, while composing, a wrong type or an unknown key on a typed node (schema.py). This
module adds what it cannot do: ranges and allowed values (field metadata), keys added with ``+`` (Hydra adds
them even to typed nodes), a node with no schema, the kinds of data, model and task, and the rules that
involve several keys. Each node's schema is its own type (``OmegaConf.get_type``), so a user's option that
inherits a shipped one is checked like it. Pure Python + OmegaConf; milliseconds, before torch is imported.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Callable
from dataclasses import fields, is_dataclass
from functools import cache
from importlib import resources
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue

from sweeplab.config.schema import CONFIG_MODULE, SCHEMA_GROUP
from sweeplab.errors import ConfigError, did_you_mean

INSTANTIATE_KEYS = {"_target_", "_partial_", "_convert_", "_recursive_", "_args_"}


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def all_keys(cfg: DictConfig, prefix: str = "") -> list[str]:
    """Every key path, nodes and leaves (`model`, `model.dropout`, ...)."""
    out = []
    for k in cfg:
        if str(k) in INSTANTIATE_KEYS:
            continue
        path = _join(prefix, str(k))
        node = cfg._get_node(k)
        out += [path] + (all_keys(node, path) if isinstance(node, DictConfig) and not node._is_none() else [])
    return out


def suggest_full_key(key: str, cfg: DictConfig) -> str:
    """Closest existing key for an unknown one: the same name elsewhere (`lr` → `optimizer.lr`), else the
    closest full path, else the closest last part."""
    keys = [k for k in all_keys(cfg) if k != key and not k.startswith(f"{key}.")]
    last = key.rsplit(".", 1)[-1]
    by_last: dict[str, str] = {}
    for k in keys:
        by_last.setdefault(k.rsplit(".", 1)[-1], k)
    if last in by_last:
        return f" (did you mean '{by_last[last]}'?)"
    hint = did_you_mean(key, keys)
    if hint:
        return hint
    match = difflib.get_close_matches(last, list(by_last), n=1, cutoff=0.6)
    return f" (did you mean '{by_last[match[0]]}'?)" if match else ""


# ---------------------------------------------------------------- types and limits
@cache
def hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _type_ok(value: Any, tp: Any) -> bool:
    if tp is Any:
        return True
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union:
        return any(_type_ok(value, a) for a in args)
    if tp is type(None):
        return value is None
    if origin in (list, tuple):
        return (
            isinstance(value, (list, tuple, ListConfig)) and all(_type_ok(v, args[0]) for v in value)
            if args
            else isinstance(value, (list, tuple, ListConfig))
        )
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    return True


def type_name(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union:
        return " or ".join(type_name(a) for a in args)
    if origin in (list, tuple):
        return f"a list of {type_name(args[0])}" if args else "a list"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string", type(None): "null"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def field_type(cfg: DictConfig, key: str) -> Any | None:
    """The schema's type of ``key`` (a dotted path) in ``cfg``, or None where its node has no schema."""
    parent_key, _, name = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key, default=None, throw_on_resolution_failure=False) if parent_key else cfg
    cls = OmegaConf.get_type(parent) if isinstance(parent, DictConfig) else None
    return hints(cls).get(name) if is_dataclass(cls) else None


def show(value: Any) -> str:
    """A value as a user writes it on the command line: 3 (not 3.0, as a float field holds it), null, 'abc'."""
    if value is None:
        return "null"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value) if isinstance(value, str) else str(value)


def _check_limits(path: str, value: Any, meta: dict) -> None:
    if "choices" in meta and value not in meta["choices"]:
        allowed = ["null" if c is None else str(c) for c in meta["choices"]]
        hint = did_you_mean(str(value), allowed)
        raise ConfigError(f"{path}={show(value)} is not allowed: choose one of {', '.join(allowed)}{hint}")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    for op, test, word in (
        ("gt", lambda a, b: a > b, ">"),
        ("ge", lambda a, b: a >= b, ">="),
        ("lt", lambda a, b: a < b, "<"),
        ("le", lambda a, b: a <= b, "<="),
    ):
        if op in meta and not test(value, meta[op]):
            raise ConfigError(f"{path}={show(value)} is out of range: it must be {word} {meta[op]}")


# ---------------------------------------------------------------- nodes
def check_node(node: DictConfig, schema: type, path: str, choices: dict | None = None, root=None) -> None:
    """``node`` against ``schema``: no key beyond its fields, each value's type and limits, and every child
    node against its own schema. Works on typed nodes and on plain ones (a checkpoint's config)."""
    choices = choices or {}
    names = [f.name for f in fields(schema)]
    for key in node:
        key = str(key)
        if key in INSTANTIATE_KEYS or key in names:
            continue
        if not path:
            raise ConfigError(f"unknown key '{key}'{suggest_full_key(key, root if root is not None else node)}")
        raise ConfigError(
            f"unknown key '{_join(path, key)}'{did_you_mean(key, names)}; "
            f"valid keys: {', '.join(n for n in names if n not in INSTANTIATE_KEYS)}"
        )
    for f in fields(schema):
        if f.name not in node:
            continue
        where = _join(path, f.name)
        try:
            value = node[f.name]
        except InterpolationResolutionError:
            continue  # resolved later, inside the job (e.g. ${hydra:...})
        except MissingMandatoryValue:
            raise ConfigError(f"{where} has no value: set it in its YAML or with {where}=...") from None
        if isinstance(value, DictConfig):
            if f.metadata.get("group") and not is_dataclass(OmegaConf.get_type(value)):
                raise ConfigError(_no_schema(f.name, choices.get(f.name)))
            check_tree(value, where, choices, items=f.metadata.get("items", False))
            continue
        if value is None and f.metadata.get("group"):
            raise ConfigError(f"{where} is null: choose a {f.name} option ({where}=<option>)")
        tp = hints(schema)[f.name]
        if isinstance(value, ListConfig):
            value = OmegaConf.to_container(value, resolve=True)
        if not _type_ok(value, tp):
            raise ConfigError(f"{where}={show(value)} has the wrong type: it must be {type_name(tp)}")
        for v in value if isinstance(value, list) else [value]:
            _check_limits(f"{where}[]" if isinstance(value, list) else where, v, f.metadata)


def check_tree(node: DictConfig, path: str = "", choices: dict | None = None, items: bool = False) -> None:
    """A typed node against its schema; in an untyped one, every typed node below it. ``items``: the node
    holds named items (callbacks, loggers), each null or something to instantiate."""
    cls = OmegaConf.get_type(node)
    if is_dataclass(cls):
        check_node(node, cls, path, choices, root=node)
        return
    for key in node:
        where = _join(path, str(key))
        child = node._get_node(key)
        if items and not (child._is_none() or isinstance(child, DictConfig)):
            raise ConfigError(f"{where} must be null or a group of keys with a _target_")
        if isinstance(child, DictConfig) and not child._is_none():
            if items and not is_dataclass(OmegaConf.get_type(child)) and "_target_" not in child:
                raise ConfigError(f"{where} has no _target_: name the class to instantiate")
            check_tree(child, where, choices)


def _no_schema(group: str, option: str | None) -> str:
    name = option or "<option>"
    return (
        f"{group}={name} has no schema: conf/{group}/{name}.yaml must list a /{SCHEMA_GROUP}/{group}/<name>@_here_ "
        f"(or a shipped {group} option) first in its defaults"
    )


# ---------------------------------------------------------------- options and their schemas
def group_options(group: str) -> list[str] | None:
    """Options of a config group in the shipped conf/, or None when ``group`` is not a group."""
    node = resources.files(CONFIG_MODULE)
    for part in group.split("/"):
        node = node / part
    if not node.is_dir():
        return None
    return sorted(p.name[:-5] for p in node.iterdir() if p.name.endswith(".yaml"))


@cache
def option_schema(group: str, option: str) -> type | None:
    """The schema a shipped option's YAML lists in its defaults (directly or through an option it inherits),
    without composing it."""
    path = resources.files(CONFIG_MODULE).joinpath(*group.split("/"), f"{option}.yaml")
    if not path.is_file():
        return None
    for entry in OmegaConf.create(path.read_text()).get("defaults") or []:
        if not isinstance(entry, str) or entry == "_self_":
            continue
        name = entry.split("@", 1)[0]
        if name.startswith(f"/{SCHEMA_GROUP}/"):
            return OmegaConf.get_type(ConfigStore.instance().load(f"{name[1:]}.yaml").node)
        parent_group, _, parent = name.lstrip("/").rpartition("/")
        if (parent_group or group) == group:
            return option_schema(group, parent)
    return None


def schema_for(group: str, option: str | None, node: DictConfig | None = None) -> type:
    """The schema of ``node`` (its type), else the one its option's YAML lists."""
    cls = OmegaConf.get_type(node) if isinstance(node, DictConfig) else None
    if is_dataclass(cls):
        return cls
    found = option_schema(group, option) if option else None
    if found is None:
        raise ConfigError(_no_schema(group, option))
    return found


def options_for(group: str, kind: str) -> list[str]:
    """The shipped options of ``group`` whose schema consumes ``kind``."""
    return [o for o in group_options(group) or [] if getattr(option_schema(group, o), "consumes", None) == kind]


# ---------------------------------------------------------------- rules across keys
def _get(cfg: DictConfig, key: str, default: Any = None) -> Any:
    return OmegaConf.select(cfg, key, default=default, throw_on_resolution_failure=False)


def kinds_fit(cfg: DictConfig, choices: dict) -> None:
    """The model and the task take the kind of batches the data set gives (tokens, images, ...)."""
    data = cfg.get("data")
    produced = getattr(OmegaConf.get_type(data), "produces", None) if isinstance(data, DictConfig) else None
    if produced is None:
        return
    for group in ("model", "task"):
        node = cfg.get(group)
        consumed = getattr(OmegaConf.get_type(node), "consumes", None) if isinstance(node, DictConfig) else None
        if consumed is not None and consumed != produced:
            fits = options_for(group, produced)
            raise ConfigError(
                f"{group}={choices.get(group, '?')} takes {consumed} but data={choices.get('data', '?')} gives "
                f"{produced}; {group} options for {produced}: {', '.join(fits) or 'none'}"
            )


def run_length(cfg: DictConfig, choices: dict) -> None:
    """A run must end, and must train at least one epoch or step."""
    epochs, steps = _get(cfg, "trainer.max_epochs"), _get(cfg, "trainer.max_steps")
    if epochs is None or steps is None or _get(cfg, "trainer.fast_dev_run"):
        return
    if epochs == 0 or steps == 0:
        key, value = ("trainer.max_epochs", epochs) if epochs == 0 else ("trainer.max_steps", steps)
        raise ConfigError(f"{key}={value} trains nothing: give at least 1 (or -1 for no limit on it)")
    if epochs == -1 and steps == -1:
        raise ConfigError(
            "trainer.max_epochs=-1 with trainer.max_steps=-1 never ends: set trainer.max_epochs or trainer.max_steps"
        )


def warmup_fits(cfg: DictConfig, choices: dict) -> None:
    """The warmup ends before the run does, where the config alone tells the run's length (the task checks
    the case that depends on the data set's size)."""
    steps, epochs = _get(cfg, "trainer.max_steps"), _get(cfg, "trainer.max_epochs")
    if _get(cfg, "trainer.fast_dev_run"):
        return
    warmup_steps, warmup_epochs = _get(cfg, "scheduler.warmup_steps"), _get(cfg, "scheduler.warmup_epochs")
    if isinstance(warmup_steps, int) and isinstance(steps, int) and steps > 0 and warmup_steps >= steps:
        raise ConfigError(
            f"scheduler.warmup_steps={warmup_steps} is as long as the run (trainer.max_steps={steps}): "
            f"it must be < {steps}"
        )
    if isinstance(warmup_epochs, (int, float)) and isinstance(epochs, int) and epochs > 0 and warmup_epochs >= epochs:
        raise ConfigError(
            f"scheduler.warmup_epochs={show(warmup_epochs)} is as long as the run (trainer.max_epochs={epochs}): "
            f"it must be < {epochs}"
        )


def adaptive_softmax_fits(cfg: DictConfig, choices: dict) -> None:
    """The adaptive softmax has neither label smoothing nor a weight shared with the embedding."""
    cutoffs = _get(cfg, "model.adaptive_cutoffs")
    if not cutoffs:
        return
    cutoffs = list(cutoffs)
    smoothing = _get(cfg, "loss.label_smoothing") or 0
    if smoothing > 0:
        raise ConfigError(
            f"loss.label_smoothing={show(smoothing)} cannot be used with the adaptive softmax "
            f"(model.adaptive_cutoffs={cutoffs}): set model.adaptive_cutoffs=null or loss.label_smoothing=0"
        )
    if _get(cfg, "model.tie_weights"):
        raise ConfigError(
            f"model.tie_weights=true cannot be used with the adaptive softmax (model.adaptive_cutoffs={cutoffs}): "
            "set model.adaptive_cutoffs=null or model.tie_weights=false"
        )


GATED_CELLS = ("lstm", "gru", "peephole_lstm")  # sigmoid gates and tanh candidates: no activation to choose
TORCH_RNN_ACTIVATIONS = ("tanh", "relu")  # what nn.RNN offers


def recurrent_problem(cell: str, activation: str, time_constant: float | None) -> str | None:
    """What is wrong with this recurrent cell's settings, in one line (None: nothing). models/recurrent.py
    raises it too, for networks built in Python."""
    if cell in GATED_CELLS and activation != "tanh":
        return (
            f"model.activation={activation} does not apply to model.cell={cell}: its gates are sigmoids and its "
            "candidate a tanh; keep model.activation=tanh, or choose a cell with one activation (rnn, jordan, ctrnn)"
        )
    if cell == "rnn" and activation not in TORCH_RNN_ACTIVATIONS:
        return (
            f"model.activation={activation} is not offered by model.cell=rnn (nn.RNN has tanh and relu); "
            "use model.cell=jordan or ctrnn for it"
        )
    if cell == "ctrnn" and time_constant is None:
        return "model.cell=ctrnn needs model.time_constant (>= 1, in steps; e.g. model.time_constant=4)"
    if cell != "ctrnn" and time_constant is not None:
        return (
            f"model.time_constant={show(time_constant)} applies to model.cell=ctrnn only, not {cell}: "
            "set model.time_constant=null"
        )
    return None


def bidirectional_problem(bidirectional: bool) -> str | None:
    if bidirectional:
        return (
            "model.bidirectional=true lets each position read the tokens after it, which a language model must "
            "predict: it has to be causal; bidirectional recurrent networks are for non-causal tasks "
            "(the code-search encoders)"
        )
    return None


def recurrent_fits(cfg: DictConfig, choices: dict) -> None:
    """A recurrent network's cell, activation and time constant go together, and a language model reads
    its input in one direction only."""
    cell = _get(cfg, "model.cell")
    if isinstance(cell, str) and _get(cfg, "model.activation") is not None:
        problem = recurrent_problem(cell, _get(cfg, "model.activation"), _get(cfg, "model.time_constant"))
        if problem:
            raise ConfigError(problem)
    task = cfg.get("task")
    causal = getattr(OmegaConf.get_type(task), "causal", False) if isinstance(task, DictConfig) else False
    problem = bidirectional_problem(bool(_get(cfg, "model.bidirectional"))) if causal else None
    if problem:
        raise ConfigError(f"task={choices.get('task', '?')}: {problem}")


def tbptt_fits(cfg: DictConfig, choices: dict) -> None:
    """Truncated BPTT carries a recurrent network's state between chunks and steps the optimizer itself."""
    steps = _get(cfg, "data.tbptt_steps")
    if steps is None:
        return
    model = cfg.get("model")
    if isinstance(model, DictConfig) and not getattr(OmegaConf.get_type(model), "stateful", False):
        fits = [o for o in group_options("model") or [] if getattr(option_schema("model", o), "stateful", False)]
        raise ConfigError(
            f"data.tbptt_steps={steps} carries a recurrent network's hidden state from chunk to chunk, and "
            f"model={choices.get('model', '?')} has none: use model={'|'.join(fits)}, or data.tbptt_steps=null"
        )
    accumulate = _get(cfg, "trainer.accumulate_grad_batches")
    if isinstance(accumulate, int) and accumulate > 1:
        raise ConfigError(
            f"trainer.accumulate_grad_batches={accumulate} cannot be used with data.tbptt_steps={steps}: truncated "
            "BPTT already accumulates the chunks' gradients into one step per batch; set it to 1"
        )


def lr_range_fits(cfg: DictConfig, choices: dict) -> None:
    low, high = _get(cfg, "lr_find.min_lr"), _get(cfg, "lr_find.max_lr")
    if isinstance(low, (int, float)) and isinstance(high, (int, float)) and low >= high:
        raise ConfigError(
            f"lr_find.min_lr={show(low)} must be below lr_find.max_lr={show(high)}: "
            "the range test sweeps from one to the other"
        )


def threads_fit(cfg: DictConfig, choices: dict) -> None:
    """num_threads is ``auto`` (sweeplab/runs/threads.py) or a number of threads."""
    if "num_threads" not in cfg:
        return
    n = _get(cfg, "num_threads")
    if n == "auto" or (isinstance(n, int) and not isinstance(n, bool) and n >= 1):
        return
    raise ConfigError(f"num_threads={show(n)} is not allowed: give auto or a number of threads >= 1")


def ddp_not_in_sweep(cfg: DictConfig, choices: dict) -> None:
    """Lightning's ddp strategies start ranks 1..N-1 by running the command line again, which for a sweep
    would launch the whole sweep again in every rank: a sweep's jobs take one device each."""
    strategy, devices = _get(cfg, "trainer.strategy"), _get(cfg, "trainer.devices")
    if not (isinstance(strategy, str) and strategy.startswith("ddp")) or "spawn" in strategy or "notebook" in strategy:
        return
    if devices == 1 or (isinstance(devices, (list, ListConfig)) and len(devices) == 1):
        return
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        raise ConfigError(
            f"trainer.strategy={strategy} with trainer.devices={show(devices)} cannot run inside a sweep (its "
            "processes rerun the command line): give each job one device (hydra/launcher=gpus), or run the "
            "job on its own"
        )


# Each rule is a no-op where its keys are absent (another primary config: eval, generate).
def heads_divide_width(cfg: DictConfig, choices: dict) -> None:
    """Multi-head attention splits the model width evenly between the heads."""
    heads, width = _get(cfg, "model.num_heads"), _get(cfg, "model.embed_dim")
    if isinstance(heads, int) and isinstance(width, int) and heads > 0 and width % heads:
        fits = [h for h in range(1, min(width, 16) + 1) if width % h == 0]
        raise ConfigError(
            f"model.num_heads={heads} does not divide model.embed_dim={width}: choose num_heads in "
            f"{', '.join(map(str, fits))} (or another embed_dim)"
        )


RULES: list[Callable[[DictConfig, dict], None]] = [
    run_length,
    warmup_fits,
    adaptive_softmax_fits,
    recurrent_fits,
    tbptt_fits,
    lr_range_fits,
    heads_divide_width,
    threads_fit,
    ddp_not_in_sweep,
]


def validate(cfg: DictConfig, choices: dict | None = None) -> None:
    """Raise ConfigError for the first problem in the job config ``cfg`` (without its ``hydra`` node).
    ``choices`` (Hydra's group choices) names the options in the messages."""
    choices = {k: v for k, v in (choices or {}).items() if v is not None}
    cls = OmegaConf.get_type(cfg)
    if not is_dataclass(cls):
        raise ConfigError("the config has no schema: its primary YAML must list /schema/<name>@_here_ first")
    kinds_fit(cfg, choices)  # before the nodes: an image model on text data fails on its interpolations too
    check_node(cfg, cls, "", choices, root=cfg)
    for rule in RULES:
        rule(cfg, choices)
