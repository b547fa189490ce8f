"""The search space of sweeplab's Optuna sweeper (``hydra.sweeper.params`` and the command line's sweeps), read
the same way by the sweeper (sweeps/optuna_sweeper.py) and by the command-line check before a launch
(config/preflight.py). Optuna is imported only to build distributions; torch never.

Hydra's override syntax, as for the basic sweeper: ``choice(a, b)``, ``a,b``, ``range(start, stop, step)``,
``interval(low, high)``, ``int(interval(...))`` and ``tag(log, interval(...))``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from omegaconf import DictConfig, OmegaConf

from sweeplab.errors import ConfigError, first_line

SWEEPER_TARGET = "hydra_plugins.sweeplab_sweeper.OptunaSweeper"
# The sweeper tells each job its trial number here (hydra.job.env_set.<this>); runs/pruning.py reads it.
TRIAL_ENV = "SWEEPLAB_OPTUNA_TRIAL"


def is_optuna_sweeper(sweeper: Any) -> bool:
    return isinstance(sweeper, DictConfig) and str(sweeper.get("_target_", "")) == SWEEPER_TARGET


def parse_search_space(params: Any, arguments: Sequence[str]) -> tuple[dict[str, Override], list[str]]:
    """``hydra.sweeper.params`` and the command line → ({key: sweep override}, [fixed overrides]). A sweep on
    the command line (``model.dropout=interval(0,0.3)``, ``seed=1,2``) joins the search space and replaces a
    preset's entry for that key; the other arguments go to every trial as they are."""
    if isinstance(params, DictConfig):
        params = OmegaConf.to_container(params, resolve=True)
    lines = [f"{k}={v}" for k, v in (params or {}).items()]
    parser = OverridesParser.create()
    try:
        preset = parser.parse_overrides(lines)
    except Exception as e:
        raise ConfigError(f"hydra.sweeper.params: {first_line(e)}") from None
    try:
        cli = parser.parse_overrides(list(arguments))
    except Exception as e:
        raise ConfigError(f"cannot parse overrides: {first_line(e)}") from None
    space = {o.get_key_element(): o for o in preset if o.is_sweep_override()}
    fixed = [o.input_line for o in preset if not o.is_sweep_override()]
    for o in cli:
        space.pop(o.get_key_element(), None)
        if o.is_sweep_override():
            space[o.get_key_element()] = o
        else:
            fixed.append(o.input_line)
    return space, fixed


def distribution(o: Override):
    """One entry as an Optuna distribution: ``choice(...)`` (and a shuffled range) is categorical;
    ``range(start, stop, step)`` an int (or float) distribution with that step over the range's values;
    ``interval(low, high)`` uniform on [low, high] (integers with ``int(...)``, log scale with ``tag(log, ...)``)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    v = o.value()
    if isinstance(v, ChoiceSweep) or (isinstance(v, RangeSweep) and v.shuffle):
        return CategoricalDistribution(list(o.sweep_iterator()))
    log = "log" in getattr(v, "tags", ())
    if isinstance(v, RangeSweep):
        values = list(o.sweep_iterator())
        if not values:
            raise ConfigError(f"{o.input_line}: the range is empty")
        if log:
            raise ConfigError(f"{o.input_line}: tag(log, ...) goes with interval(...), not range(...)")
        if all(isinstance(x, int) for x in values) and isinstance(v.step, int):
            return IntDistribution(values[0], values[-1], step=v.step)
        return FloatDistribution(float(values[0]), float(values[-1]), step=float(v.step))
    if isinstance(v, IntervalSweep):
        if not v.start < v.end:
            raise ConfigError(f"{o.input_line}: the interval's low end must be below its high end")
        if log and v.start <= 0:
            raise ConfigError(f"{o.input_line}: a log-scale interval must start above 0")
        if isinstance(v.start, int) and isinstance(v.end, int):
            return IntDistribution(v.start, v.end, log=log)
        return FloatDistribution(float(v.start), float(v.end), log=log)
    raise ConfigError(f"{o.input_line}: not a search space (choice, range or interval)")


def grid_values(space: dict[str, Override]) -> dict[str, list]:
    """The grid sampler's points per key; an interval has none, so it is refused."""
    grid = {}
    for key, o in space.items():
        if isinstance(o.value(), IntervalSweep):
            raise ConfigError(
                f"{o.input_line} is an interval, which a grid cannot enumerate; give {key} "
                f"as choice(...) or range(...), or use hydra/sweeper/sampler=random or tpe"
            )
        grid[key] = list(o.sweep_iterator())
    return grid


def grid_size(grid: dict[str, list]) -> int:
    return math.prod(len(v) for v in grid.values())


def takes_grid(sampler: Any) -> bool:
    """Whether the sampler searches a fixed grid: its constructor takes ``search_space`` (GridSampler)."""
    from hydra.utils import get_class

    target = sampler.get("_target_") if isinstance(sampler, DictConfig) else None
    if not target:
        return False
    try:
        return "search_space" in inspect.signature(get_class(str(target))).parameters
    except Exception:
        return False


def check_search(sweeper: DictConfig, arguments: Sequence[str]) -> dict[str, Override]:
    """The search space, or the one-line reason the sweeper would refuse it; run before anything launches."""
    space, _ = parse_search_space(sweeper.get("params"), arguments)
    if not space:
        raise ConfigError("hydra.sweeper.params is empty and the command line sweeps nothing: nothing to search")
    for o in space.values():
        distribution(o)
    grid = grid_values(space) if takes_grid(sweeper.get("sampler")) else None
    build(sweeper.get("sampler"), "sampler", grid)
    build(sweeper.get("pruner"), "pruner")
    if grid is None and sweeper.get("n_trials") is None:
        raise ConfigError(
            "hydra.sweeper.n_trials=null (until the grid is done) needs hydra/sweeper/sampler=grid; give a number "
            "of trials"
        )
    n_trials, n_jobs = sweeper.get("n_trials"), sweeper.get("n_jobs")
    if n_trials is not None and int(n_trials) < 1:
        raise ConfigError(f"hydra.sweeper.n_trials={n_trials} is out of range: it must be >= 1")
    if int(n_jobs) < 1:
        raise ConfigError(f"hydra.sweeper.n_jobs={n_jobs} is out of range: it must be >= 1")
    return space


def build(node: DictConfig | None, name: str, grid: dict[str, list] | None = None) -> Any:
    """The sampler or pruner (``name``) that ``node`` describes, on ``grid`` for a grid sampler; a one-line
    ConfigError when it cannot be built."""
    from hydra.utils import instantiate

    if node is None:
        return None
    try:
        return instantiate(node, **({"search_space": grid} if grid is not None else {}))
    except Exception as e:
        cause = e.__cause__ if e.__cause__ is not None else e
        raise ConfigError(f"hydra.sweeper.{name} ({node.get('_target_')}): {first_line(cause)}") from None
