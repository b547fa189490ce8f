"""sweeplab's Hydra sweeper on Optuna's ask/tell API (conf/hydra/sweeper/optuna.yaml; Hydra finds it through
hydra_plugins/sweeplab_sweeper, since it only loads plugins from that package).

A launch goes in batches: ask ``n_jobs`` trials, turn each trial's parameters into overrides, let the
configured launcher run the batch (in parallel with ``hydra/launcher=parallel``), read how each job ended
from its metrics.json and tell the study. The study lives in ``storage`` (sqlite in the sweep dir by default),
so rerunning the command with the same ``hydra.sweep.dir`` continues it with ``n_trials`` more.

Trials and run dirs: a trial runs in job dir ``<trial number>_<overrides>``, so the job dirs of a continued
study never collide with earlier ones. A trial that an earlier launch left running (the launch was killed or
interrupted) is marked failed when no process holds its run dir any more, and asked again with the same
parameters (Optuna's RetryHeartbeatStaleTrialCallback, up to ``max_retry`` times) in the same run dir, where
the run layer resumes it from ``checkpoints/last.ckpt``. The job learns its trial number from
``hydra.job.env_set.SWEEPLAB_OPTUNA_TRIAL``, which runs/pruning.py reads to report each epoch's validation
metric and stop the trial when the pruner says so (status ``pruned``).

How a job's status becomes a trial's state: completed → COMPLETE with its objective (the best monitored
value); pruned → PRUNED; diverged → COMPLETE with the worst value (those parameters diverge: the sampler
should learn that); interrupted or killed → FAIL, then retried; failed or refused → FAIL (the sampler
ignores it).
"""

from __future__ import annotations

import logging
import math
import sys
import warnings
from pathlib import Path
from typing import Any

from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from sweeplab.config.search import (
    TRIAL_ENV,
    build,
    check_search,
    distribution,
    grid_size,
    grid_values,
    parse_search_space,
    takes_grid,
)
from sweeplab.errors import ConfigError, UserError, first_line
from sweeplab.io import as_float, write_text
from sweeplab.runs.locks import owner_of
from sweeplab.runs.record import read_record

log = logging.getLogger("sweeplab")
RESULTS_FILE = "optimization_results.yaml"


def encode(value: Any) -> str:
    """A sampled value as an override's value, typed as the trial saw it (a str stays a str)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        from hydra.core.override_parser.types import Transformer

        return Transformer.encode(value)
    return str(value)


# ---------------------------------------------------------------- the sweeper
class OptunaSweeper(Sweeper):
    """See the module docstring; the arguments are conf/hydra/sweeper/optuna.yaml's keys."""

    def __init__(
        self,
        *,
        sampler: DictConfig,
        pruner: DictConfig | None,
        direction: str,
        study_name: str,
        storage: str,
        n_trials: int | None,
        n_jobs: int,
        max_retry: int | None,
        params: DictConfig | None,
    ) -> None:
        self.sampler_cfg, self.pruner_cfg = sampler, pruner
        self.direction, self.study_name, self.storage = direction, study_name, storage
        self.n_trials, self.n_jobs, self.max_retry = n_trials, max(int(n_jobs), 1), max_retry
        self.params = params
        self.config: DictConfig | None = None
        self.launcher = None
        self.grid: dict | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )
        self.sweep_dir = Path(str(config.hydra.sweep.dir))

    def sweep(self, arguments: list[str]) -> list[JobReturn]:
        assert self.config is not None and self.launcher is not None
        try:
            return self._sweep(arguments)
        except UserError as e:  # one line, as the command-line check gives it, not Hydra's traceback
            print(f"sweeplab-{self.config.hydra.job.name}: error: {e}", file=sys.stderr)
            raise SystemExit(2) from None

    def _sweep(self, arguments: list[str]) -> list[JobReturn]:
        import optuna

        check_search(self.config.hydra.sweeper, arguments)  # config/preflight.py ran this already on the CLI
        space, fixed = parse_search_space(self.params, arguments)
        distributions = {k: distribution(o) for k, o in space.items()}
        self.grid = grid_values(space) if takes_grid(self.sampler_cfg) else None
        sampler = build(self.sampler_cfg, "sampler", self.grid)
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, self.sweep_dir / "multirun.yaml")
        study = optuna.create_study(
            study_name=self.study_name,
            storage=self.storage,
            sampler=sampler,
            pruner=build(self.pruner_cfg, "pruner"),
            direction=self.direction,
            load_if_exists=True,
        )
        stored = study.direction.name.lower()
        if stored != self.direction:  # Optuna would go on optimising the stored direction without a word
            raise ConfigError(
                f"study {self.study_name} in {self.storage} was made to {stored} and this search asks to "
                f"{self.direction} (monitor_mode={self.direction[:3]}); give another hydra.sweeper.study_name or "
                f"hydra.sweep.dir"
            )
        log.info(
            "Optuna %s, study %s (%s): %d trial(s) so far; %s, %s",
            optuna.__version__,
            self.study_name,
            self.storage,
            len(study.trials),
            type(sampler).__name__,
            type(study.pruner).__name__,
        )
        self._fail_stale_trials(study)
        returns: list[JobReturn] = []
        asked = 0
        try:
            while self.n_trials is None or asked < int(self.n_trials):
                size = self.n_jobs if self.n_trials is None else min(self.n_jobs, int(self.n_trials) - asked)
                trials = [study.ask(distributions) for _ in range(min(size, self._can_ask(study)))]
                if not trials:
                    log.info("study %s: every point of the grid has been tried", self.study_name)
                    break
                jobs = []
                for t in trials:
                    job = self._job_number(study, t.number)
                    t.set_user_attr("job", job)
                    sampled = [f"{k}={encode(t.params[k])}" for k in space]
                    jobs.append((job, [*fixed, *sampled, f"++hydra.job.env_set.{TRIAL_ENV}={t.number}"]))
                batch = self._launch(jobs)
                for t, ret in zip(trials, batch):
                    self._tell(study, t, ret)
                returns += batch
                asked += len(trials)
        finally:
            self._write_results(study)
        return returns

    # ------------------------------------------------------------ pieces
    def _can_ask(self, study) -> int:
        """How many trials may be asked now: any number, except for a grid: its points neither finished nor
        running, plus the retries waiting (Optuna's GridSampler would re-run a point rather than stop)."""
        from optuna.trial import TrialState

        if self.grid is None:
            return self.n_jobs
        trials = study.get_trials(deepcopy=False)
        taken = {
            t.system_attrs.get("grid_id")
            for t in trials
            if t.state != TrialState.WAITING and t.system_attrs.get("search_space") == self.grid
        }
        waiting = sum(t.state == TrialState.WAITING for t in trials)
        return grid_size(self.grid) - len(taken - {None}) + waiting

    @staticmethod
    def _job_number(study, number: int) -> int:
        """A retried trial runs in its original trial's run dir (and resumes there); others in their own."""
        from optuna.storages import RetryHeartbeatStaleTrialCallback

        frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an experimental API
            history = RetryHeartbeatStaleTrialCallback.retry_history(frozen)
        return int(history[0]) if history else number

    def _launch(self, jobs: list[tuple[int, list[str]]]) -> list[JobReturn]:
        """Launchers number a batch's jobs consecutively: one launch per run of consecutive job numbers."""
        out: list[JobReturn] = []
        start = 0
        while start < len(jobs):
            end = start + 1
            while end < len(jobs) and jobs[end][0] == jobs[end - 1][0] + 1:
                end += 1
            out += list(self.launcher.launch([o for _, o in jobs[start:end]], initial_job_idx=jobs[start][0]))
            start = end
        return out

    def _tell(self, study, trial, ret: JobReturn) -> None:
        from optuna.trial import TrialState

        run_dir = Path(str(OmegaConf.select(ret.hydra_cfg, "hydra.runtime.output_dir", default="") or ""))
        trial.set_user_attr("run_dir", str(run_dir))
        if ret.status == JobStatus.FAILED:  # the task function raised: run_job records every ordinary failure
            trial.set_user_attr("status", "failed")
            log.error("trial %d: the job raised %s", trial.number, first_line(ret._return_value))
            tell(study, trial.number, state=TrialState.FAIL)
            return
        record = read_record(run_dir)[0] or {}
        status = str(record.get("status", "failed"))
        trial.set_user_attr("status", status)
        worst = math.inf if self.direction == "minimize" else -math.inf
        if status == "completed":
            value = as_float(record.get("objective", worst))
            tell(study, trial.number, worst if math.isnan(value) else value)
        elif status == "pruned":
            tell(study, trial.number, state=TrialState.PRUNED)
        elif status == "diverged":
            tell(study, trial.number, worst)
        else:
            frozen = tell(study, trial.number, state=TrialState.FAIL)
            if status in ("interrupted", "running"):
                self._retry(study, frozen)

    def _retry(self, study, frozen) -> None:
        from optuna.storages import RetryHeartbeatStaleTrialCallback

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an experimental API
            RetryHeartbeatStaleTrialCallback(max_retry=self.max_retry, inherit_intermediate_values=True)(study, frozen)

    def _fail_stale_trials(self, study) -> None:
        """Trials an earlier launch left RUNNING: failed (and asked again) unless a process still holds their
        run dir (a SLURM job outlives the launch that submitted it). Optuna's heartbeats would tell the same
        only after a grace period, from a thread in every job; the run dir's lock is released by the kernel
        the moment its process dies, so a rerun right after a kill finds the trial stale at once."""
        from optuna.trial import TrialState

        stale = []
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            job = int(t.user_attrs.get("job", t.number))
            if any(owner_of(d) for d in job_dirs(self.sweep_dir, job)):
                log.info("trial %d: its run dir is in use by a live job; left running", t.number)
                continue
            stale.append(tell(study, t.number, state=TrialState.FAIL))
        for frozen in stale:
            self._retry(study, frozen)
        if stale:
            log.warning(
                "study %s: %d trial(s) left running by an earlier launch marked failed and asked again",
                self.study_name,
                len(stale),
            )

    def _write_results(self, study) -> None:
        """optimization_results.yaml: Optuna's version, the trials' states and the best trial so far."""
        import optuna
        from optuna.trial import TrialState

        trials = study.get_trials(deepcopy=False)
        counts = {s.name: sum(t.state == s for t in trials) for s in TrialState if any(t.state == s for t in trials)}
        out: dict[str, Any] = {
            "name": "optuna",
            "optuna_version": optuna.__version__,
            "study_name": self.study_name,
            "direction": self.direction,
            "trials": counts,
        }
        if any(t.state == TrialState.COMPLETE for t in trials):
            best = study.best_trial
            out.update(
                best_trial=best.number,
                best_value=best.value,
                best_params=best.params,
                best_run_dir=best.user_attrs.get("run_dir"),
            )
        write_text(self.sweep_dir / RESULTS_FILE, OmegaConf.to_yaml(OmegaConf.create(out)))


def tell(study, number: int, value: float | None = None, state=None):
    """``study.tell`` → the finished trial. On the last point of a grid, GridSampler.after_trial calls
    ``study.stop()``, which raises outside ``study.optimize`` (an open Optuna bug with ask-and-tell); the
    trial's state is stored before that, and the sweeper stops asking by itself (``_can_ask``)."""
    try:
        return study.tell(number, value, state=state, skip_if_finished=True)
    except RuntimeError as e:
        if "Study.stop" not in str(e):
            raise
        return next(t for t in study.get_trials(deepcopy=False) if t.number == number)


def job_dirs(sweep_dir: Path, job: int) -> list[Path]:
    """The run dirs of job ``job`` in a sweep dir (``<job>_<overrides>``, or ``<job>`` with no overrides)."""
    return [d for d in Path(sweep_dir).glob(f"{job}*") if d.name == str(job) or d.name.startswith(f"{job}_")]
