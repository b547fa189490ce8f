"""Hydra callback: every multirun ends with summary.csv, summary.md and curves.png in its sweep dir.

Registered in conf/hydra/default.yaml. It runs in the launching process only (on_multirun_*): under
joblib, Ray or SLURM the jobs' own hooks run elsewhere, so the summary is read from the run dirs on disk.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("sweeplab")


class SweepSummary(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        # The Optuna sweeper opens its sqlite study (which lives in the sweep dir) before any job makes the
        # dir, and writes no multirun.yaml, which the rerun command is read from.
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if not (sweep_dir / "multirun.yaml").is_file():
            OmegaConf.save(config, sweep_dir / "multirun.yaml")
        _fail_stale_trials(config)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from sweeplab.sweeps.summary import SummaryError, headline, summarise, write_summary

        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            s = summarise([sweep_dir])
            written = write_summary(s, sweep_dir, title=f"Sweep {sweep_dir.name}")
        except SummaryError as e:
            log.warning("no sweep summary: %s", e)
            return
        except Exception:
            log.exception("writing the sweep summary failed; `sweeplab-compare %s` rebuilds it", sweep_dir)
            return
        log.info("sweep summary: %s", headline(s))
        if s.rows and s.rows[0]["status"] == "completed":
            best = s.rows[0]
            log.info("best: %s with %s %.4g", best["job"], s.metric, best["best"])
        log.info("wrote %s", ", ".join(str(p) for p in written))
        for cmd in s.reruns:
            log.warning("%d job(s) did not complete; rerun only them with:\n  %s", len(s.failed), cmd)


def _fail_stale_trials(config: DictConfig) -> None:
    """A continued Optuna search: trials left RUNNING by a killed or interrupted launch never finish
    (optuna 2.10 has no heartbeat here); mark them FAIL so the study's counts and best trial are right."""
    sweeper = config.hydra.sweeper
    storage = OmegaConf.select(sweeper, "storage", default=None)
    name = OmegaConf.select(sweeper, "study_name", default=None)
    if not storage or not name or "optuna" not in str(sweeper.get("_target_", "")):
        return
    import optuna
    from optuna.trial import TrialState

    store = optuna.storages.get_storage(storage)
    try:
        study_id = store.get_study_id_from_name(name)
    except KeyError:
        return  # a new study
    stale = store.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
    for t in stale:
        store.set_trial_state(t._trial_id, TrialState.FAIL)
    if stale:
        log.warning("study %s: %d trial(s) left running by an earlier launch marked failed", name, len(stale))
