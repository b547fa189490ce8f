"""sweeplab-eval, sweeplab-generate and sweeplab-search: their structured configs and the checks of their
command lines.

The values live in conf/eval.yaml, conf/generate.yaml and conf/search.yaml; the dataclasses here hold only
the types and the ranges (``metadata``, as in schema.py). They are registered in Hydra's ConfigStore as
``<app>_schema``, which each YAML lists first in its defaults, so Hydra types the composed config.
Everything here runs before torch is imported: a bad option, value or run path costs no start-up time.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import sys
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from sweeplab.config.preflight import hydra_flags, parse_command_line
from sweeplab.config.validate import check_node
from sweeplab.errors import ConfigError, RestoreError, UserError, did_you_mean, first_line

ACCELERATORS = ("auto", "cpu", "gpu")


@dataclass
class EvalConf:
    run: str
    split: str = field(metadata={"choices": ("test", "val")})
    # Overrides of the run's own data config (data.path=..., data.batch_size=...); checked against the
    # run's data schema once the checkpoint says which data set it is.
    data: dict[str, Any]
    accelerator: str = field(metadata={"choices": ACCELERATORS})
    devices: int = field(metadata={"ge": 1})


@dataclass
class GenerateConf:
    run: str
    num_samples: int = field(metadata={"ge": 1})
    temperature: Optional[float] = field(metadata={"gt": 0})
    top_k: Optional[int] = field(metadata={"ge": 1})
    top_p: Optional[float] = field(metadata={"gt": 0, "le": 1})
    greedy: bool
    beam_size: Optional[int] = field(metadata={"ge": 1})
    length_penalty: float = field(metadata={"ge": 0})
    prefix: str
    max_new_tokens: Optional[int] = field(metadata={"ge": 1})
    seed: int = field(metadata={"ge": 0})
    accelerator: str = field(metadata={"choices": ACCELERATORS})


@dataclass
class SearchConf:
    run: str
    query: str
    top_k: int = field(metadata={"ge": 1})
    lines: int = field(metadata={"ge": 0, "le": 30})
    data: dict[str, Any]  # as EvalConf.data: the corpus to search, from the run's own data config
    rebuild: bool
    accelerator: str = field(metadata={"choices": ACCELERATORS})


APPS: dict[str, type] = {"eval": EvalConf, "generate": GenerateConf, "search": SearchConf}
# Text options: whatever the user types is the value (Hydra would read `prefix=def f(` as bad syntax and
# `prefix=123` as a number).
TEXT_KEYS = ("run", "prefix", "query")
SAMPLING_KEYS = ("temperature", "top_k", "top_p")

for _name, _schema in APPS.items():
    ConfigStore.instance().store(name=f"{_name}_schema", node=_schema)


# ---------------------------------------------------------------- values
def app_defaults(app: str) -> DictConfig:
    """conf/<app>.yaml's option values (without its defaults list and hydra settings), read without Hydra."""
    cfg = OmegaConf.create((resources.files("sweeplab.conf") / f"{app}.yaml").read_text(encoding="utf-8"))
    for key in ("defaults", "hydra"):
        cfg.pop(key, None)
    return cfg


def app_options(app: str, options: Mapping[str, Any]) -> DictConfig:
    """The app's YAML values updated with ``options`` (keyword arguments of the Python API or a composed
    Hydra config), checked: unknown keys, types, ranges and conflicting options raise ConfigError."""
    cfg = app_defaults(app)
    names = [f.name for f in fields(APPS[app])]
    for key, value in options.items():
        if key not in names:
            raise ConfigError(f"unknown option '{key}'{did_you_mean(key, names)}; options: {', '.join(names)}")
        cfg[key] = value
    check_options(app, cfg)
    return cfg


def check_options(app: str, cfg: DictConfig) -> None:
    check_node(cfg, APPS[app], "")
    if app == "generate":
        check_generation(cfg)


def check_generation(cfg: DictConfig) -> None:
    """Decoding options that cannot apply together: greedy decoding and beam search do not sample."""
    sampling = [f"{k}={cfg[k]}" for k in SAMPLING_KEYS if cfg[k] is not None]
    if cfg.greedy and cfg.beam_size is not None:
        raise ConfigError(
            f"greedy=true and beam_size={cfg.beam_size} conflict: greedy decoding is beam search with one beam; "
            "give one of them"
        )
    if cfg.length_penalty and cfg.beam_size is None:
        raise ConfigError(
            f"length_penalty={cfg.length_penalty} applies to beam search only: give beam_size=N, or drop it"
        )
    for mode, why in (
        ("greedy=true" if cfg.greedy else None, "greedy decoding always takes the most likely token"),
        (f"beam_size={cfg.beam_size}" if cfg.beam_size is not None else None, "beam search does not sample"),
    ):
        if mode and sampling:
            raise ConfigError(f"{mode} conflicts with {' '.join(sampling)}: {why}; drop one of them")


# ---------------------------------------------------------------- the command line
def _quote(value: str) -> str:
    """A Hydra override value that reads back as exactly ``value`` (a quoted string)."""
    body = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", value)
    return "'" + re.sub(r"(\\+)$", lambda m: m.group(1) * 2, body) + "'"


def _is_run_path(arg: str) -> bool:
    """The first argument is the run unless it is an override; sweep job dirs are named like overrides
    (`0_model.dropout=0.1,seed=2`), so a path that exists, or has a `/` before its `=`, is the run."""
    key = arg.partition("=")[0]
    if "=" not in arg:
        return not arg.startswith(("~", "+"))
    return Path(arg).expanduser().exists() or ("/" in key and not key.startswith("hydra/"))


def prepare_argv(app: str, argv: list[str], prog: str) -> list[str]:
    """The command line for Hydra: ``prog <run> key=value ...`` → ``run=<run> key=value ...``, text values
    quoted, ``data.*`` added to the (empty) data node. Raises ConfigError / RestoreError for an unknown
    option (with the closest one), a value of the wrong type or out of range, conflicting options, or a
    run dir or checkpoint that does not exist, for every value of a sweep."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType

    args = parse_command_line(argv)
    overrides = list(args.overrides)
    if overrides and _is_run_path(overrides[0]):
        overrides[0] = f"run={_quote(overrides[0])}"
    parser = OverridesParser.create()
    out, checked = [], []
    for line in overrides:
        key, sep, value = line.partition("=")
        bare = key.lstrip("+~")
        if not sep:
            raise ConfigError(f"expected key=value, got '{line}'; the run dir or checkpoint comes first")
        try:
            (o,) = parser.parse_overrides([line])
        except Exception:
            if bare not in TEXT_KEYS:
                raise ConfigError(f"cannot parse '{line}'; quote the value: {bare}={_quote(value)}") from None
            (o,) = parser.parse_overrides([line := f"{bare}={_quote(value)}"])
        if bare in TEXT_KEYS and not o.is_sweep_override() and not isinstance(o.value(), str):
            (o,) = parser.parse_overrides([line := f"{bare}={_quote(value)}"])
        if re.split(r"[./]", bare, maxsplit=1)[0] == "hydra":
            out.append(line)
            continue
        if o.type == OverrideType.DEL:
            raise ConfigError(f"'{line}': options cannot be removed; set {bare}=null or leave it out")
        takes_data = "data" in {f.name for f in fields(APPS[app])}
        if takes_data and bare == "data":
            raise ConfigError(
                f"'{line}': data takes overrides of the run's own data config, one key at a time "
                "(data.path=..., data.batch_size=...)"
            )
        if takes_data and bare.startswith("data."):
            line = f"++{line.lstrip('+')}"  # the data node is empty until the run's own config fills it
        elif bare not in {f.name for f in fields(APPS[app])}:
            names = [f.name for f in fields(APPS[app])] + (["data.<key>"] if takes_data else [])
            raise ConfigError(f"unknown option '{bare}'{did_you_mean(bare, names)}; options: {', '.join(names)}")
        out.append(line)
        checked.append(o)
    _check_values(app, checked, args, prog)
    if any(o.key_or_group == "run" and o.is_sweep_override() for o in checked):
        out.append("hydra.job.config.override_dirname.exclude_keys=[]")  # the runs differ: name them
    return hydra_flags(args) + out


def _check_values(app: str, overrides: list, args, prog: str) -> None:
    values = []
    for o in overrides:
        if not o.is_sweep_override():
            values.append([o.value()])
            continue
        if not args.multirun:
            key, _, value = o.input_line.partition("=")
            raise ConfigError(
                f"'{o.input_line}' is a sweep: add -m to run each value, or quote it to use it as it is: "
                f"{key}={_quote(value)}"
            )
        try:
            values.append(list(o.sweep_iterator()))
        except Exception as e:  # interval sweeps have no values to iterate: they are for search plugins
            raise ConfigError(f"'{o.input_line}': {first_line(e)}") from None
    keys = [o.key_or_group for o in overrides]
    base = app_defaults(app)
    for combo in itertools.product(*values):
        cfg = base.copy()
        for key, value in zip(keys, combo):
            OmegaConf.update(cfg, key, value, merge=True, force_add=True)
        uses_run = not (args.help or args.hydra_help or args.info is not None or args.shell_completion or args.cfg)
        if OmegaConf.is_missing(cfg, "run"):
            if uses_run:
                raise ConfigError(f"no run given: {prog} <run dir or .ckpt> [key=value ...] (see --help)")
            cfg.run = ""
        check_options(app, OmegaConf.masked_copy(cfg, [k for k in cfg if k != "data"]))
        if uses_run and not Path(cfg.run).expanduser().exists():
            raise RestoreError(f"no such run dir or checkpoint: {cfg.run}")


# ---------------------------------------------------------------- running
@contextlib.contextmanager
def exit_on_user_error(prog: str) -> Iterator[None]:
    """Bad input → ``<prog>: error: <one line>`` on stderr and exit code 2, no traceback."""
    from hydra.errors import InstantiationException

    try:
        yield
    except Exception as e:
        cause: BaseException = e
        while isinstance(cause, InstantiationException) and cause.__cause__ is not None:
            cause = cause.__cause__  # Hydra wraps a constructor's own error
        if not isinstance(cause, UserError):
            raise
        print(f"{prog}: error: {first_line(cause)}", file=sys.stderr)
        raise SystemExit(2) from None


def one_line_warnings(prog: str) -> None:
    """Warnings as ``<prog>: warning: <message>``: one line each, without the source line."""

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"{prog}: warning: {first_line(Warning(str(message)))}", file=file or sys.stderr)

    warnings.showwarning = show


def job_header() -> str | None:
    """In a multirun, the line that heads a job's output: its overrides as typed (the run's only when the
    runs differ); None in a single run."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return None
    skip = set(hc.job.config.override_dirname.exclude_keys)
    shown = []
    for line in hc.overrides.task:
        key, _, value = line.lstrip("+").partition("=")
        if key not in skip and not key.startswith("hydra"):
            # the sweeper writes the values it expands as Python does (True); show them as typed (true)
            shown.append(f"{key}={value.lower() if value in ('True', 'False') else value}")
    return f"== {' '.join(shown) or f'job {hc.job.num}'} =="
