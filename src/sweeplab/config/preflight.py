"""Check the command line before Hydra launches anything: group options, keys, types and ranges.

Hydra's own errors for these are multi-line, and a `+model.hidn_dim=3` typo passes it silently; here
every problem becomes one line naming the key and the closest valid one, and the process exits 2
before any run dir is made or torch is imported. Sweeps are checked value by value.
"""
from __future__ import annotations

import itertools
import sys
from importlib import resources

from hydra import compose, initialize_config_module
from hydra._internal.utils import get_args_parser
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType, ValueType
from omegaconf import OmegaConf, open_dict

from sweeplab.config.validate import ConfigError, did_you_mean, suggest_full_key, validate

CONFIG_MODULE = "sweeplab.conf"
MAX_COMBOS = 16  # group combinations composed and checked; a larger product is checked on a sample


def group_options(group: str) -> list[str] | None:
    """Options of a config group in the shipped conf/, or None when ``group`` is not a group."""
    node = resources.files(CONFIG_MODULE)
    for part in group.split("/"):
        node = node / part
    if not node.is_dir():
        return None
    return sorted(p.name[:-5] for p in node.iterdir() if p.name.endswith(".yaml"))


def _values(o: Override) -> list:
    if o.value_type in (ValueType.CHOICE_SWEEP, ValueType.SIMPLE_CHOICE_SWEEP, ValueType.RANGE_SWEEP,
                        ValueType.GLOB_CHOICE_SWEEP):
        return list(o.sweep_string_iterator())
    if o.value_type == ValueType.INTERVAL_SWEEP:
        return []  # searched by a sweeper: checked inside each job
    return [o.get_value_element_as_str()]


def _line(o: Override, value: str) -> str:
    prefix = {OverrideType.ADD: "+", OverrideType.FORCE_ADD: "++", OverrideType.DEL: "~"}.get(o.type, "")
    if o.type == OverrideType.DEL and value in ("", None):
        return f"~{o.get_key_element()}"
    return f"{prefix}{o.get_key_element()}={value}"


def _first_line(e: Exception) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[0] if lines else type(e).__name__


def check_overrides(args: list[str]) -> None:
    """Raise ConfigError for the first bad override in ``args`` (Hydra's override syntax)."""
    try:
        overrides = OverridesParser.create().parse_overrides(args)
    except Exception as e:  # noqa: BLE001 - Hydra raises several types for syntax errors
        raise ConfigError(f"cannot parse overrides: {_first_line(e)}") from None
    groups, keys = [], []
    for o in overrides:
        name = o.key_or_group
        if name.startswith("hydra"):
            continue
        options = group_options(name)
        if options is not None and o.type != OverrideType.DEL:
            for v in _values(o):
                if v not in options and v != "null":
                    raise ConfigError(f"unknown {name} option '{v}'{did_you_mean(v, options)}; "
                                      f"options: {', '.join(options)}")
            groups.append(o)
        else:
            keys.append(o)

    group_values = [[_line(o, v) for v in _values(o)] or [_line(o, "null")] for o in groups]
    combos = list(itertools.islice(itertools.product(*group_values), MAX_COMBOS))
    hydra_lines = [o.input_line for o in overrides if o.key_or_group.startswith("hydra")]
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        for combo in combos:
            label = " ".join(combo)
            base = compose("train", overrides=list(combo) + hydra_lines)
            for o in keys:  # plain `key=value` must name an existing key (`+key=` adds one, checked below)
                if o.type in (OverrideType.CHANGE, OverrideType.DEL) and \
                        OmegaConf.select(base, o.key_or_group, default=KeyError, throw_on_resolution_failure=False) is KeyError:
                    where = f" with {label}" if label else ""
                    raise ConfigError(f"unknown key '{o.key_or_group}'{where}{suggest_full_key(o.key_or_group, base)}")
            first = [_line(o, vals[0]) for o in keys if (vals := _values(o))]
            try:
                cfg = compose("train", overrides=list(combo) + first + hydra_lines, return_hydra_config=True)
            except Exception as e:  # noqa: BLE001
                raise ConfigError(_first_line(e)) from None
            choices = dict(cfg.hydra.runtime.choices)
            with open_dict(cfg):
                del cfg["hydra"]
            validate(cfg, choices)
            # Each further value of a key sweep, checked on this combination.
            for o in keys:
                for v in _values(o)[1:]:
                    try:
                        trial = compose("train", overrides=list(combo) + [_line(o, v)] + hydra_lines)
                    except Exception as e:  # noqa: BLE001
                        raise ConfigError(_first_line(e)) from None
                    validate(trial, choices)


def preflight_or_exit(argv: list[str], prog: str) -> None:
    args = get_args_parser().parse_args(argv)
    if args.help or args.hydra_help or args.info or args.shell_completion or args.config_path or args.config_dir:
        return  # Hydra's own modes; a custom config dir is the user's to check
    try:
        check_overrides(args.overrides)
    except ConfigError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
