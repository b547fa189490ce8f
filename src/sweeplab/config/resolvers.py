"""OmegaConf resolvers used by conf/hydra/default.yaml; registered on import of the entry points."""

from __future__ import annotations

import hashlib
import re
import secrets

from omegaconf import OmegaConf


def job_dirname(num, overrides: str = "", limit: int = 120) -> str:
    """``<job num>_<overrides>``, made safe for a path; long names keep a hash so they stay unique."""
    name = re.sub(r"[^\w.,=+\-]+", "_", str(overrides or "")).strip("_")
    if len(name) > limit:
        name = name[: limit - 9] + "_" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{num}_{name}" if name else str(num)


def register() -> None:
    # use_cache: the same value wherever the config asks again (run dir and sweep dir of one launch).
    OmegaConf.register_new_resolver("sweeplab.uid", lambda: secrets.token_hex(3), use_cache=True, replace=True)
    OmegaConf.register_new_resolver("sweeplab.job_dirname", job_dirname, replace=True)


register()
