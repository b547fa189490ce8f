"""Where and how a job runs — everything run_job needs from Hydra, so that it also runs without Hydra's
global state (the Python API builds a RunContext itself)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig


@dataclass
class RunContext:
    run_dir: Path
    multirun: bool = False
    overrides: list[str] = field(default_factory=list)  # the job's task overrides, as typed
    choices: dict = field(default_factory=dict)  # config group choices (data, model, ...)
    # True when the launcher runs the job in this process (Hydra's basic launcher, the API): an interrupt then
    # ends the process, and with it the sweep. Launchers with worker processes stop the sweep themselves.
    in_process: bool = True
    hydra: DictConfig | None = None  # saved as .hydra/hydra.yaml
    prog: str = "sweeplab-train"

    @classmethod
    def from_hydra(cls) -> RunContext:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
        choices = {k: v for k, v in hc.runtime.choices.items() if not k.startswith("hydra") and v is not None}
        launcher = str(hc.launcher.get("_target_", "")) if hc.mode == RunMode.MULTIRUN else ""
        return cls(
            run_dir=Path(hc.runtime.output_dir),
            multirun=hc.mode == RunMode.MULTIRUN,
            overrides=list(hc.overrides.task),
            choices=choices,
            in_process=not launcher or launcher.endswith("BasicLauncher"),
            hydra=hc,
            prog=f"sweeplab-{hc.job.name}",
        )

    def label(self) -> str:
        return f"data={self.choices.get('data')} model={self.choices.get('model')}"
