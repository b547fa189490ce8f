"""Check the command line before Hydra launches anything: group options, keys, types and ranges.

Hydra's own errors for these are multi-line, and a `+model.hidn_dim=3` typo passes it silently; here
every problem becomes one line naming the key and the closest valid one, and the process exits 2
before any run dir is made or torch is imported. Sweeps are checked value by value, and so is a search
space in hydra.sweeper.params (an hparams_search preset): its choices and both ends of its intervals.
"""

from __future__ import annotations

import copy
import itertools
import math
import sys
from importlib import resources

from hydra import compose, initialize_config_module
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.utils import get_args_parser
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType, ValueType
from omegaconf import OmegaConf, open_dict

from sweeplab.config.schema import TRAINER_EXTRA_ARGS
from sweeplab.config.validate import (
    SCHEMA_GROUPS,
    check_node,
    schema_for,
    suggest_full_key,
    validate,
)
from sweeplab.errors import ConfigError, did_you_mean, first_line

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
    if o.value_type in (
        ValueType.CHOICE_SWEEP,
        ValueType.SIMPLE_CHOICE_SWEEP,
        ValueType.RANGE_SWEEP,
        ValueType.GLOB_CHOICE_SWEEP,
    ):
        return list(o.sweep_string_iterator())
    if o.value_type == ValueType.INTERVAL_SWEEP:  # a sweeper's search range: check both ends
        iv = o.value()
        # Optuna samples floats from [start, end) and ints from [start, end].
        end = iv.end if isinstance(iv.end, int) else math.nextafter(iv.end, iv.start)
        return [str(iv.start), str(end)]
    return [o.get_value_element_as_str()]


def _line(o: Override, value: str) -> str:
    prefix = {OverrideType.ADD: "+", OverrideType.FORCE_ADD: "++", OverrideType.DEL: "~"}.get(o.type, "")
    if o.type == OverrideType.DEL and value in ("", None):
        return f"~{o.get_key_element()}"
    return f"{prefix}{o.get_key_element()}={value}"


def check_overrides(args: list[str]) -> None:
    """Raise ConfigError for the first bad override in ``args`` (Hydra's override syntax)."""
    try:
        overrides = OverridesParser.create().parse_overrides(args)
    except Exception as e:
        raise ConfigError(f"cannot parse overrides: {first_line(e)}") from None
    groups, keys = [], []
    for o in overrides:
        name = o.key_or_group
        if name.startswith("hydra"):
            continue
        options = group_options(name)
        if options is not None and o.type != OverrideType.DEL:
            for v in _values(o):
                if v not in options and v != "null":
                    raise ConfigError(
                        f"unknown {name} option '{v}'{did_you_mean(v, options)}; options: {', '.join(options)}"
                    )
            groups.append(o)
        else:
            keys.append(o)

    group_values = [[_line(o, v) for v in _values(o)] or [_line(o, "null")] for o in groups]
    combos = list(itertools.islice(itertools.product(*group_values), MAX_COMBOS))
    hydra_lines = [o.input_line for o in overrides if o.key_or_group.startswith("hydra")]
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        for combo in combos:
            # One compose per combination (~0.5 s each): further values are applied to a copy below.
            first = [_line(o, vals[0]) for o in keys if (vals := _values(o))]
            try:
                cfg = compose("train", overrides=list(combo) + first + hydra_lines, return_hydra_config=True)
            except Exception as e:
                _check_keys_exist(combo, keys, hydra_lines)  # the usual cause: name the closest key
                raise ConfigError(first_line(e)) from None
            choices = dict(cfg.hydra.runtime.choices)
            search = _search_space(cfg)
            with open_dict(cfg):
                del cfg["hydra"]
            validate(cfg, choices)
            for o in keys:  # each further value of a key sweep, on this combination
                for v in _values(o)[1:]:
                    _check_value(cfg, _line(o, v), choices)
            for o in search:
                options = group_options(o.key_or_group)
                for v in _values(o):
                    if options is None:
                        _check_value(cfg, _line(o, v), choices, where="hydra.sweeper.params: ")
                    elif v not in options:
                        raise ConfigError(
                            f"hydra.sweeper.params: unknown {o.key_or_group} option '{v}'"
                            f"{did_you_mean(v, options)}; options: {', '.join(options)}"
                        )


def _check_keys_exist(combo: tuple, keys: list[Override], hydra_lines: list[str]) -> None:
    """A plain `key=value` must name an existing key (`+key=` adds one: validate checks it)."""
    try:
        base = compose("train", overrides=list(combo) + hydra_lines)
    except Exception:
        return
    for o in keys:
        if (
            o.type in (OverrideType.CHANGE, OverrideType.DEL)
            and OmegaConf.select(base, o.key_or_group, default=KeyError, throw_on_resolution_failure=False) is KeyError
        ):
            where = f" with {' '.join(combo)}" if combo else ""
            raise ConfigError(f"unknown key '{o.key_or_group}'{where}{suggest_full_key(o.key_or_group, base)}")


def _search_space(cfg) -> list[Override]:
    """hydra.sweeper.params (Optuna's search space, or the basic sweeper's grid) as overrides."""
    params = OmegaConf.select(cfg, "hydra.sweeper.params", default=None)
    if not params:
        return []
    lines = [f"{k}={v}" for k, v in params.items()]
    try:
        return OverridesParser.create().parse_overrides(lines)
    except Exception as e:
        raise ConfigError(f"hydra.sweeper.params: {first_line(e)}") from None


def _check_value(cfg, line: str, choices: dict, where: str = "") -> None:
    """Apply one override to a copy of the composed job config the way Hydra does, then validate it."""
    (o,) = OverridesParser.create().parse_overrides([line])
    if (
        o.type == OverrideType.CHANGE
        and OmegaConf.select(cfg, o.key_or_group, default=KeyError, throw_on_resolution_failure=False) is KeyError
    ):
        raise ConfigError(f"{where}unknown key '{o.key_or_group}'{suggest_full_key(o.key_or_group, cfg)}")
    trial = copy.deepcopy(cfg)
    try:
        ConfigLoaderImpl._apply_overrides_to_config([o], trial)
        group = o.key_or_group.split(".", 1)[0]
        if group in SCHEMA_GROUPS and "." in o.key_or_group:  # only that group changed: check just it
            check_node(
                trial[group],
                schema_for(group, choices.get(group), trial[group]),
                group,
                extra_keys=TRAINER_EXTRA_ARGS if group == "trainer" else (),
            )
        else:
            validate(trial, choices)
    except ConfigError as e:
        raise ConfigError(f"{where}{e}") from None
    except Exception as e:
        raise ConfigError(f"{where}{first_line(e)}") from None


def preflight_or_exit(argv: list[str], prog: str) -> None:
    args = get_args_parser().parse_args(argv)
    if args.help or args.hydra_help or args.info or args.shell_completion or args.config_path or args.config_dir:
        return  # Hydra's own modes; a custom config dir is the user's to check
    try:
        check_overrides(args.overrides)
    except ConfigError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
