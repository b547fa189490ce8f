"""Hydra callback owning a sweep dir: one launch at a time, and every multirun ends with summary.csv,
summary.md and curves.png in its sweep dir — also one stopped by a signal or by a job's interrupt.

Registered in conf/hydra/default.yaml. It runs in the launching process only (on_multirun_*): under
joblib, Ray or SLURM the jobs' own hooks run elsewhere, so the summary is read from the run dirs on disk.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import shutil
import signal
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from sweeplab.errors import RunDirError
from sweeplab.runs.locks import DirLock

log = logging.getLogger("sweeplab")


class SweepSummary(Callback):
    def __init__(self) -> None:
        self._lock: DirLock | None = None
        self._config: DictConfig | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        try:  # a second launch into the same sweep dir would train every job twice and mix their rows
            self._lock = DirLock(sweep_dir, what="sweep dir").acquire()
        except RunDirError as e:
            print(f"sweeplab-{config.hydra.job.name}: error: {e}", file=sys.stderr)
            raise SystemExit(2) from None
        # The launcher writes multirun.yaml afresh for each launch: keep the earlier launches' ones.
        if (sweep_dir / "multirun.yaml").is_file():
            history = sweep_dir / ".launches"
            history.mkdir(exist_ok=True)
            stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
            shutil.copy2(sweep_dir / "multirun.yaml", history / f"multirun-{stamp}-{os.getpid()}.yaml")
        else:
            # The rerun command is read from it: there from the start, even if the launch dies before the
            # sweeper writes its own (an Optuna search's trials left running are the sweeper's to handle).
            OmegaConf.save(config, sweep_dir / "multirun.yaml")
        self._config = config
        # Stopped between jobs, or while workers run them: stop the sweep like an interrupted job does, and
        # still leave its summary (atexit runs on the way out).
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, functools.partial(_stop_sweep, sweep_dir))
        atexit.register(self._summary_on_exit)

    def _summary_on_exit(self) -> None:
        if self._config is not None:
            self.on_multirun_end(self._config)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._config = None
        try:
            self._write_summary(config)
        finally:
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    def _write_summary(self, config: DictConfig) -> None:
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


def _stop_sweep(signum, frame) -> None:
    print(
        f"sweep stopped by {signal.Signals(signum).name}; rerun the same command with hydra.sweep.dir=<this sweep's "
        f"dir> to go on",
        file=sys.stderr,
    )
    raise SystemExit(128 + signum)
