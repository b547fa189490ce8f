"""The job's side of an Optuna search (sweeps/optuna_sweeper.py): report each epoch's validation metric to
the job's trial in the study, and stop the run when the study's pruner finds it unpromising.

The sweeper gives each job its trial number in ``hydra.job.env_set.SWEEPLAB_OPTUNA_TRIAL``; the study's
storage, name and pruner are in the job's own ``hydra.sweeper`` config. A stopped run raises ``Pruned``,
which the run layer records as status ``pruned`` (its history, best checkpoint and curves are kept; it is
not tested). Optuna is imported only in such a job.
"""

from __future__ import annotations

import logging
import math

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

from sweeplab.config.search import TRIAL_ENV, build, is_optuna_sweeper

log = logging.getLogger("sweeplab")
NO_PRUNING = "optuna.pruners.NopPruner"


class Pruned(Exception):
    """The search's pruner stopped this trial: status 'pruned'."""


def search_callbacks(hydra: DictConfig | None, monitor: str) -> list[pl.Callback]:
    """``[OptunaPruning]`` when this job is a trial of sweeplab's Optuna sweeper with a pruner, else ``[]``."""
    number = OmegaConf.select(hydra, f"job.env_set.{TRIAL_ENV}", default=None) if hydra is not None else None
    if number is None or not is_optuna_sweeper(hydra.get("sweeper")):
        return []
    sweeper = hydra.sweeper
    if not sweeper.get("pruner") or sweeper.pruner.get("_target_") == NO_PRUNING:
        return []
    import optuna

    try:
        storage = optuna.storages.get_storage(str(sweeper.storage))
        study = optuna.load_study(
            study_name=str(sweeper.study_name),
            storage=storage,
            pruner=build(sweeper.pruner, "pruner"),
            # a job only reports: a cheap sampler, whatever the sweeper samples with
            sampler=optuna.samplers.RandomSampler(),
        )
        study_id = storage.get_study_id_from_name(study.study_name)
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, int(number))
    except Exception as e:  # the run itself can go on: it is only not judged by the pruner
        log.warning("trial %s of study %s: cannot reach it (%s); this run is not pruned", number, sweeper.study_name, e)
        return []
    return [OptunaPruning(optuna.trial.Trial(study, trial_id), storage, trial_id, monitor)]


class OptunaPruning(pl.Callback):
    """Reports ``monitor`` after each epoch's validation (step = epoch; a later validation in the same epoch
    is not reported again) and raises ``Pruned`` when the pruner says so. A resumed trial reports the epochs
    it has not reported yet; a trial the study no longer runs (a later launch failed it) stops reporting."""

    def __init__(self, trial, storage, trial_id: int, monitor: str):
        self.trial, self.storage, self.trial_id, self.monitor = trial, storage, trial_id, monitor
        self.active = True

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not self.active:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            return
        value, epoch = float(value), int(trainer.current_epoch)
        if not math.isfinite(value):
            return  # the divergence check stops such a run itself
        from optuna.exceptions import UpdateFinishedTrialError

        try:
            if epoch in self.storage.get_trial(self.trial_id).intermediate_values:
                return
            self.trial.report(value, step=epoch)
            prune = self.trial.should_prune()
        except (UpdateFinishedTrialError, RuntimeError) as e:
            log.warning("trial %d: no longer reporting to the study (%s)", self.trial.number, e)
            self.active = False
            return
        if prune:
            name = type(self.trial.study.pruner).__name__
            raise Pruned(f"pruned at epoch {epoch} by {name}: {self.monitor} {value:.4g}")
