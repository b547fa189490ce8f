"""sweeplab from Python (a notebook, a script, a test): compose a config from overrides, train it in this
process, and get the result back — the same checks, run dir and files as ``sweeplab-train``.

    from sweeplab import api

    result = api.train(["model=gru", "trainer.max_epochs=1", "data.batch_size=256"])
    result.status, result.best["val/loss"], result.final["test/loss"], result.run_dir
    api.generate(result.run_dir, num_samples=5)
    api.evaluate(result.run_dir)
    api.search(code_search_run_dir, "read a csv file", top_k=3)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, open_dict

CONFIG_MODULE = "sweeplab.conf"


@dataclass
class RunResult:
    """What a run left: its status, best and final metrics, its run dir and the whole record (metrics.json)."""

    status: str  # completed | failed | diverged | interrupted | skipped
    run_dir: Path
    best: dict = field(default_factory=dict)
    final: dict = field(default_factory=dict)
    objective: float = float("nan")
    error: str | None = None
    record: dict = field(default_factory=dict)
    exit_code: int = 0  # what sweeplab-train would exit with: 1 failed/diverged, 2 bad input, 128 + signal

    @property
    def ok(self) -> bool:
        return self.status in ("completed", "skipped")


@dataclass
class Composed:
    """A job config as Hydra would hand it to ``sweeplab-train``'s task function, and where it runs."""

    cfg: DictConfig
    run_dir: Path
    overrides: list[str]
    choices: dict
    hydra: DictConfig


def compose(overrides: Sequence[str] = (), run_dir: str | Path | None = None, check: bool = True) -> Composed:
    """Compose ``conf/train.yaml`` with ``overrides`` (Hydra's override syntax, as on the command line), check it
    as ``sweeplab-train`` does (a ``sweeplab.errors.ConfigError`` with a one-line message), and fix its run dir
    (``run_dir``, else ``hydra.run.dir``: logs/train/runs/<time>_<id> under the current directory). ``check=False``
    composes without the command line's checks (the run still validates the config before it starts)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    import sweeplab.config.resolvers  # noqa: F401 - the run dir's ${sweeplab.uid:}
    from sweeplab.config.preflight import check_overrides

    overrides = list(overrides)
    if check:
        check_overrides(overrides)
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        cfg = hydra_compose("train", overrides=overrides, return_hydra_config=True)
    out = Path(run_dir) if run_dir is not None else Path(OmegaConf.select(cfg, "hydra.run.dir"))
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(out.resolve())
        cfg.hydra.job.name = "train"
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)  # ${hydra:...} in the job config (paths.output_dir) resolves
    hydra_cfg = cfg.hydra
    choices = {k: v for k, v in hydra_cfg.runtime.choices.items() if not k.startswith("hydra") and v is not None}
    with open_dict(cfg):
        del cfg["hydra"]
    return Composed(cfg, out.resolve(), overrides, choices, hydra_cfg)


def train(overrides: Sequence[str] | Composed = (), run_dir: str | Path | None = None) -> RunResult:
    """Train one configuration in this process and return its result. A config or run-dir problem raises a
    ``sweeplab.errors.UserError`` before anything runs; a run that fails, diverges or is interrupted (Ctrl-C)
    returns with that status (its record and error.txt say why)."""
    from sweeplab.runs.context import RunContext
    from sweeplab.runs.run import run_job

    job = overrides if isinstance(overrides, Composed) else compose(overrides, run_dir)
    ctx = RunContext(
        run_dir=job.run_dir, overrides=job.overrides, choices=job.choices, hydra=job.hydra, prog="sweeplab-train"
    )
    res = run_job(job.cfg, ctx)
    rec = res.record or {}
    return RunResult(
        status=res.status,
        run_dir=res.run_dir,
        best=dict(rec.get("best") or {}),
        final=dict(rec.get("final") or {}),
        objective=res.objective,
        error=res.error,
        record=rec,
        exit_code=res.exit_code,
    )


def evaluate(run: str | Path, **options: Any) -> dict:
    """Metrics of a trained run (a run dir or checkpoint) on a split of its data: see ``sweeplab-eval``."""
    from sweeplab.runs import inference

    return inference.evaluate(run, **options)


def generate(run: str | Path, **options: Any) -> list[str]:
    """Samples from a trained language model (a run dir or checkpoint): see ``sweeplab-generate``."""
    from sweeplab.runs import inference

    return inference.generate(run, **options)


def search(run: str | Path, query: str, **options: Any) -> list[dict]:
    """The functions of a code-search run's corpus that best match ``query``, best first: see
    ``sweeplab-search``."""
    from sweeplab.runs import search_index

    return search_index.search(run, query, **options)
