"""Check the command line before Hydra launches anything: group options, keys, types, ranges and rules.

Hydra's own errors for these are multi-line tracebacks, and a `+model.hidn_dim=3` typo passes it silently;
here every problem becomes one line naming the key and the closest valid one, and the process exits 2
before any run dir is made or torch is imported. Sweeps are checked value by value, and so is a search
space in hydra.sweeper.params (an hparams_search preset): its choices and both ends of its intervals.
Works for any primary config in sweeplab.conf (train, eval, generate).
"""

from __future__ import annotations

import copy
import itertools
import math
import os
import shutil
import sys
from pathlib import Path

from hydra import compose, initialize_config_module
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.utils import get_args_parser
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType, ValueType
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import ValidationError

from sweeplab.config.schema import CONFIG_MODULE
from sweeplab.config.search import check_search, is_optuna_sweeper
from sweeplab.config.validate import field_type, group_options, show, suggest_full_key, type_name, validate
from sweeplab.errors import ConfigError, did_you_mean, first_line

MAX_COMBOS = 16  # group combinations composed and checked; a larger product is checked on a sample


def _values(o: Override) -> list[str]:
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


def _check_options(group: str, value: str, options: list[str], where: str = "") -> None:
    """``value`` is an option of ``group``, or a list of them (``logger=[csv,tensorboard]``)."""
    names = value[1:-1].split(",") if value.startswith("[") and value.endswith("]") else [value]
    for v in (n.strip() for n in names):
        if v and v not in options and v != "null":
            raise ConfigError(
                f"{where}unknown {group} option '{v}'{did_you_mean(v, options)}; options: {', '.join(options)}"
            )


def check_overrides(args: list[str], config_name: str = "train", multirun: bool | None = None) -> None:
    """Raise ConfigError for the first bad override in ``args`` (Hydra's override syntax). ``multirun`` (the
    command line's -m) says which output dir must be writable: the sweep's (True), the run's (False)."""
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
                _check_options(name, v, options)
            groups.append(o)
        else:
            keys.append(o)

    group_values = [[_line(o, v) for v in _values(o)] or [_line(o, "null")] for o in groups]
    combos = list(itertools.islice(itertools.product(*group_values), MAX_COMBOS))
    hydra_lines = [o.input_line for o in overrides if o.key_or_group.startswith("hydra")]
    task_lines = [o.input_line for o in overrides if not o.key_or_group.startswith("hydra")]
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        for combo in combos:
            # One compose per combination: further values of a key sweep are applied to a copy below.
            first = [_line(o, vals[0]) for o in keys if (vals := _values(o))]
            try:
                cfg = compose(config_name, overrides=list(combo) + first + hydra_lines, return_hydra_config=True)
            except Exception as e:
                raise _explain(config_name, combo, keys, overrides, e) from None
            choices = dict(cfg.hydra.runtime.choices)
            _check_hydra(cfg, choices, multirun)
            if is_optuna_sweeper(cfg.hydra.sweeper):  # what the sweeper would refuse (a grid over an interval, ...)
                check_search(cfg.hydra.sweeper, task_lines)
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
                    else:
                        _check_options(o.key_or_group, v, options, where="hydra.sweeper.params: ")


def _explain(config_name: str, combo: tuple, keys: list[Override], overrides: list[Override], e: Exception):
    """Hydra could not compose the config: find the override at fault and say what is wrong with it."""
    hydra_groups = [o.input_line for o in overrides if o.key_or_group.startswith("hydra") and "/" in o.key_or_group]
    try:
        base = compose(config_name, overrides=list(combo) + hydra_groups, return_hydra_config=True)
    except Exception as base_error:  # a group combination that does not compose
        return ConfigError(_composition_line(base_error))
    where = f" with {' '.join(combo)}" if combo else ""
    hydra_keys = [o for o in overrides if o.key_or_group.startswith("hydra") and "/" not in o.key_or_group]
    trial = copy.deepcopy(base)
    for o in [*keys, *hydra_keys]:
        values = _values(o)
        if not values:
            continue
        (first,) = OverridesParser.create().parse_overrides([_line(o, values[0])])
        try:
            _apply(trial, first, where)
        except ConfigError as err:
            return err
    return ConfigError(_composition_line(e))


def _composition_line(e: BaseException) -> str:
    """Hydra wraps OmegaConf's error ("Error merging override ..."): the cause says what is wrong."""
    cause = e.__cause__ if e.__cause__ is not None and str(e).startswith("Error merging") else e
    return first_line(cause)


def _exists(cfg: DictConfig, key: str) -> bool:
    return OmegaConf.select(cfg, key, default=KeyError, throw_on_resolution_failure=False) is not KeyError


def _apply(cfg: DictConfig, o: Override, where: str = "") -> None:
    """Apply one override to ``cfg`` the way Hydra does; a failure becomes one line about that override."""
    key = o.key_or_group
    if o.type in (OverrideType.CHANGE, OverrideType.DEL) and not _exists(cfg, key):
        raise ConfigError(f"unknown key '{key}'{where}{suggest_full_key(key, cfg)}")
    try:
        ConfigLoaderImpl._apply_overrides_to_config([o], cfg)
    except Exception as e:
        cause = e.__cause__ if e.__cause__ is not None else e
        tp = field_type(cfg, key) if isinstance(cause, ValidationError) else None
        if tp is not None:
            raise ConfigError(f"{key}={show(o.value())} has the wrong type: it must be {type_name(tp)}") from None
        raise ConfigError(f"{o.input_line}: {_composition_line(e)}") from None


def _check_value(cfg: DictConfig, line: str, choices: dict, where: str = "") -> None:
    """Apply one override to a copy of the composed job config, then validate the result."""
    (o,) = OverridesParser.create().parse_overrides([line])
    trial = copy.deepcopy(cfg)
    try:
        _apply(trial, o)
        validate(trial, choices)
    except ConfigError as e:
        raise ConfigError(f"{where}{e}") from None


def _search_space(cfg) -> list[Override]:
    """hydra.sweeper.params (the Optuna sweeper's search space, or the basic sweeper's grid) as overrides."""
    params = OmegaConf.select(cfg, "hydra.sweeper.params", default=None)
    if not params:
        return []
    lines = [f"{k}={v}" for k, v in params.items()]
    try:
        return OverridesParser.create().parse_overrides(lines)
    except Exception as e:
        raise ConfigError(f"hydra.sweeper.params: {first_line(e)}") from None


def _check_hydra(cfg: DictConfig, choices: dict, multirun: bool | None = None) -> None:
    """What only the hydra node tells: where the files go, and whether the launcher can run here."""
    for key in ("run", "sweep"):
        node = OmegaConf.select(cfg, f"hydra.{key}")
        raw = OmegaConf.to_container(node, resolve=False).get("dir") if isinstance(node, DictConfig) else None
        if raw is None or not str(raw).strip():
            raise ConfigError(
                f"hydra.{key}.dir is empty: give the directory for the {key}'s files "
                f"(or leave it out: {_default_dir(key)})"
            )
    if multirun is not None:
        _check_writable(cfg, "sweep" if multirun else "run")
    _check_packages(cfg)
    launcher = str(OmegaConf.select(cfg, "hydra.launcher._target_", default="") or "")
    if launcher.endswith("SlurmLauncher") and shutil.which("sbatch") is None:
        raise ConfigError(
            f"hydra/launcher={choices.get('hydra/launcher', 'slurm')}: SLURM is not available here (no sbatch on "
            "PATH); use hydra/launcher=submitit_local to try the same submission path on this machine"
        )


# Loggers whose package is an optional dependency (pip install 'sweeplab[trackers]').
LOGGER_PACKAGES = {"MLFlowLogger": "mlflow", "WandbLogger": "wandb", "TensorBoardLogger": "tensorboard"}


def _check_packages(cfg: DictConfig) -> None:
    import importlib.util

    for name, item in (OmegaConf.select(cfg, "logger", default=None) or {}).items():
        target = str(OmegaConf.select(item, "_target_", default="") or "") if isinstance(item, DictConfig) else ""
        package = LOGGER_PACKAGES.get(target.rsplit(".", 1)[-1])
        if package and importlib.util.find_spec(package) is None:
            raise ConfigError(f"logger={name} needs the {package} package: pip install 'sweeplab[trackers]'")


def _check_writable(cfg: DictConfig, key: str) -> None:
    """The run (or sweep) dir can be made: its nearest existing ancestor is a directory we may write into.
    Hydra makes the dir before any of sweeplab's code runs, and fails there with a traceback."""
    try:
        path = Path(str(OmegaConf.select(cfg, f"hydra.{key}.dir"))).expanduser()
    except Exception:  # an interpolation only the job can resolve: the run layer checks it then
        return
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"hydra.{key}.dir={path}: {probe} is a file, not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        why = "the filesystem is read-only" if _read_only(probe) else "no permission to write"
        raise ConfigError(f"hydra.{key}.dir={path}: cannot write into {probe} ({why})")


def _read_only(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _default_dir(key: str) -> str:
    return "logs/<task_name>/runs/<time>_<id>" if key == "run" else "logs/<task_name>/multiruns/<time>_<id>"


def parse_command_line(argv: list[str]):
    """Hydra's command line, with its flags allowed anywhere (``sweeplab-train model=gru -m seed=1,2``; Hydra's
    own parser wants them first). A bad flag is a one-line ConfigError, not argparse's usage screen."""
    import contextlib
    import io

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return get_args_parser().parse_intermixed_args(argv)
    except SystemExit:
        lines = [ln for ln in err.getvalue().splitlines() if ln.strip()]
        raise ConfigError(lines[-1].split("error: ", 1)[-1] if lines else "cannot parse the command line") from None


def hydra_flags(args) -> list[str]:
    """Hydra's flags, back from the parsed namespace, to go first on the line Hydra parses again."""
    out = []
    for name in ("help", "hydra_help", "resolve", "run", "multirun", "shell_completion"):
        if getattr(args, name):
            out.append(f"--{name.replace('_', '-')}")
    for name in ("cfg", "package", "config_path", "config_name", "config_dir", "experimental_rerun"):
        if getattr(args, name) is not None:
            out += [f"--{name.replace('_', '-')}", getattr(args, name)]
    if args.info is not None:
        out.append(f"--info={args.info}")
    return out


def preflight_or_exit(argv: list[str], prog: str, config_name: str = "train") -> list[str]:
    """Check ``argv`` (a Hydra app's command line) against the config ``config_name``; on a problem print
    ``<prog>: error: <one line>`` and exit 2. Returns the command line for Hydra (flags first)."""
    try:
        args = parse_command_line(argv)
        modes = [
            n for n in ("run", "multirun", "cfg", "info", "shell_completion") if getattr(args, n) not in (None, False)
        ]
        if len(modes) > 1:
            raise ConfigError(f"give only one of --{' and --'.join(m.replace('_', '-') for m in modes)}")
        if args.help or args.hydra_help or args.info or args.shell_completion or args.config_path or args.config_dir:
            return hydra_flags(args) + list(args.overrides)  # Hydra's own modes; a custom config dir is the user's
        check_overrides(args.overrides, args.config_name or config_name, multirun=bool(args.multirun))
    except ConfigError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    return hydra_flags(args) + list(args.overrides)
