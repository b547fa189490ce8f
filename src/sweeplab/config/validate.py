"""Check a composed config against the schemas: unknown keys (with the closest valid one), types, ranges.

Pure Python + OmegaConf; runs in milliseconds before anything heavy is imported.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Iterable
from dataclasses import fields, is_dataclass
from functools import cache
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from sweeplab.config.schema import SCHEMAS, TRAINER_EXTRA_ARGS, TopLevel
from sweeplab.errors import ConfigError, did_you_mean

INSTANTIATE_KEYS = {"_target_", "_partial_", "_convert_", "_recursive_", "_args_"}
SCHEMA_GROUPS = ("data", "task", "model", "optimizer", "scheduler", "loss", "trainer", "paths")
# Checked by their items' own constructors when instantiated: lists of Lightning objects.
OPEN_GROUPS = ("callbacks", "logger")


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
        out += [path] + (all_keys(node, path) if isinstance(node, DictConfig) else [])
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


@cache
def _hints(cls) -> dict:
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


def _type_name(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union:
        return " or ".join(_type_name(a) for a in args)
    if origin in (list, tuple):
        return f"a list of {_type_name(args[0])}" if args else "a list"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string", type(None): "null"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _check_limits(path: str, value: Any, meta: dict) -> None:
    if "choices" in meta and value not in meta["choices"]:
        raise ConfigError(
            f"{path}={value!r} is not allowed: choose one of "
            f"{', '.join(map(str, meta['choices']))}{did_you_mean(str(value), map(str, meta['choices']))}"
        )
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    for op, test, word in (
        ("gt", lambda a, b: a > b, ">"),
        ("ge", lambda a, b: a >= b, ">="),
        ("lt", lambda a, b: a < b, "<"),
        ("le", lambda a, b: a <= b, "<="),
    ):
        if op in meta and not test(value, meta[op]):
            raise ConfigError(f"{path}={value} is out of range: it must be {word} {meta[op]}")


def check_node(node: DictConfig, schema: type, path: str, extra_keys: Iterable[str] = ()) -> None:
    hints = _hints(schema)
    names = [f.name for f in fields(schema)]
    for key in node:
        key = str(key)
        if key in INSTANTIATE_KEYS or key in extra_keys:
            continue
        if key not in names:
            raise ConfigError(
                f"unknown key '{_join(path, key)}'{did_you_mean(key, [*names, *extra_keys])}; "
                f"valid keys: {', '.join(names)}{', ...' if extra_keys else ''}"
            )
    for f in fields(schema):
        if f.name not in node:
            continue
        try:
            value = node[f.name]
        except InterpolationResolutionError:
            continue  # resolved later, inside the job (e.g. ${hydra:...})
        tp = hints[f.name]
        if is_dataclass(tp):
            if not isinstance(value, DictConfig):
                raise ConfigError(
                    f"{_join(path, f.name)} must be a group of keys ({', '.join(x.name for x in fields(tp))})"
                )
            check_node(value, tp, f"{_join(path, f.name)}")
            continue
        if isinstance(value, (DictConfig, ListConfig)):
            value = OmegaConf.to_container(value, resolve=True)
        if not _type_ok(value, tp):
            raise ConfigError(f"{_join(path, f.name)}={value!r} has the wrong type: it must be {_type_name(tp)}")
        if isinstance(value, list):
            for v in value:
                _check_limits(f"{_join(path, f.name)}[]", v, f.metadata)
        else:
            _check_limits(f"{_join(path, f.name)}", value, f.metadata)


def schema_for(group: str, option: str | None, node: DictConfig) -> type:
    found = SCHEMAS.get((group, option))
    if found:
        return found
    # A user's own option (e.g. model/lstm_big.yaml with `defaults: [lstm]`): use the schema of the shipped
    # option with the same _target_.
    target = node.get("_target_") if isinstance(node, DictConfig) else None
    for (g, opt), cls in SCHEMAS.items():
        if g == group and target and shipped_target(group, opt) == target:
            return cls
    raise ConfigError(f"no schema for {group}={option}: add a dataclass for it to sweeplab/config/schema.py")


@cache
def shipped_target(group: str, option: str) -> str | None:
    from importlib import resources

    path = resources.files("sweeplab.conf") / group / f"{option}.yaml"
    if not path.is_file():
        return None
    return OmegaConf.create(path.read_text()).get("_target_")


def validate(cfg: DictConfig, choices: dict) -> None:
    """Raise ConfigError for the first problem found in the job config ``cfg`` (no ``hydra`` node)."""
    top = {f.name for f in fields(TopLevel)}
    for key in cfg:
        key = str(key)
        if key in top or key in SCHEMA_GROUPS or key in OPEN_GROUPS or key == "hydra":
            continue
        raise ConfigError(f"unknown key '{key}'{suggest_full_key(key, cfg)}")
    check_node(OmegaConf.masked_copy(cfg, [k for k in top if k in cfg]), TopLevel, "")
    for group in SCHEMA_GROUPS:
        if group not in cfg:
            raise ConfigError(f"the config has no '{group}' group")
        node = cfg[group]
        extra = TRAINER_EXTRA_ARGS if group == "trainer" else ()
        check_node(node, schema_for(group, choices.get(group), node), group, extra_keys=extra)
