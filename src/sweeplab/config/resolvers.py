"""OmegaConf resolvers used by conf/hydra/default.yaml and the logger YAMLs; registered with the config."""

from __future__ import annotations

import hashlib
import re
import secrets
from pathlib import Path

from omegaconf import OmegaConf


def job_dirname(num, overrides: str = "", limit: int = 120) -> str:
    """``<job num>_<overrides>``, made safe for a path; long names keep a hash so they stay unique."""
    name = re.sub(r"[^\w.,=+\-]+", "_", str(overrides or "")).strip("_")
    if len(name) > limit:
        name = name[: limit - 9] + "_" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{num}_{name}" if name else str(num)


def tracking_dir() -> str:
    """Where loggers that gather many runs keep their store (MLflow): the sweep dir in a multirun, so one
    ``mlflow ui`` shows every job of the sweep; the run dir otherwise."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    return str(hc.sweep.dir) if hc.mode == RunMode.MULTIRUN else str(hc.runtime.output_dir)


def run_name() -> str:
    """A run's name in trackers: its dir's name (``<num>_<overrides>`` in a sweep, ``<time>_<id>`` alone)."""
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir).name


def register() -> None:
    # use_cache: the same value wherever the config asks again (run dir and sweep dir of one launch).
    OmegaConf.register_new_resolver("sweeplab.uid", lambda: secrets.token_hex(3), use_cache=True, replace=True)
    OmegaConf.register_new_resolver("sweeplab.job_dirname", job_dirname, replace=True)
    OmegaConf.register_new_resolver("sweeplab.tracking_dir", tracking_dir, replace=True)
    OmegaConf.register_new_resolver("sweeplab.run_name", run_name, replace=True)


register()
