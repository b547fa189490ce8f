"""One job end to end: validate → own the run dir → decide what to do with what it holds → fit → test → files.

The rules for a run dir that already holds a run (README, "How a run ends"):
- a new single run is refused, naming the three ways on: a new dir (the default), ``ckpt_path=last`` to
  resume (only when the identity is unchanged apart from the keys meant to change on resume), or
  ``overwrite=true``, which moves the old run aside to ``<dir>.old-<time>/`` (never deletes it);
- in a sweep rerun, a job is skipped only when it completed with the same fingerprint; a killed or
  interrupted one resumes from ``checkpoints/last.ckpt``; a failed or diverged one starts a fresh attempt
  in place (the earlier attempt's files archived beside it); a job whose identity changed is moved aside
  and rerun, and its record says why.
Whatever happens after that, metrics.json says how the attempt ended; a finished run's results are never
replaced by a later failure (runs/record.py).
"""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
import time
import traceback
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from sweeplab.config.validate import validate
from sweeplab.errors import RunDirError, UserError, first_line
from sweeplab.io import write_text
from sweeplab.runs.context import RunContext
from sweeplab.runs.locks import DirLock
from sweeplab.runs.record import RunRecord, read_record

log = logging.getLogger("sweeplab")
LAST_CKPT = Path("checkpoints") / "last.ckpt"


def worst(mode: str) -> float:
    return math.inf if mode == "min" else -math.inf


@dataclass
class Plan:
    action: str  # fresh | resume | restart | skip
    ckpt: str | None = None
    rerun: dict | None = None  # {"reason": ..., "previous": ...} when an earlier run was moved aside
    previous: dict | None = None  # the record the attempt continues (resume, restart)


@dataclass
class JobResult:
    """How a job ended, for its caller: the entry point turns it into an exit code, the API returns it."""

    status: str  # completed | failed | diverged | pruned | interrupted | skipped | refused
    objective: float  # the best monitored value; the worst possible one when the job did not complete
    run_dir: Path
    record: dict
    error: str | None = None
    exit_code: int = 0  # what a single run's process should exit with: 1 failed/diverged, 2 bad input, 128+signal


def run_job(cfg: DictConfig, ctx: RunContext) -> JobResult:
    """Run one job. Bad input found before an attempt starts (config, a run dir that is taken or holds a run)
    raises a UserError in a single run, and is a ``refused`` result in a sweep (the run dir left as it was)."""
    out = Path(ctx.run_dir)
    from sweeplab.runs.distributed import run_worker, worker_rank

    if worker_rank() > 0:  # one of several ranks of a DDP run: rank 0 owns the run dir (runs/distributed.py)
        return JobResult("completed", run_worker(cfg, ctx), out, {})
    try:
        validate(cfg, ctx.choices)
        lock = DirLock(out).acquire()
    except UserError as e:
        return _refused(cfg, ctx, out, e)
    try:
        return _run_locked(cfg, ctx, out)
    except UserError as e:  # refused before an attempt started: the run dir is left as it was
        return _refused(cfg, ctx, out, e)
    finally:
        lock.release()


def _refused(cfg, ctx: RunContext, out: Path, e: UserError) -> JobResult:
    if not ctx.multirun:
        raise e
    log.error("%s: %s", out, e)
    return JobResult("refused", worst(cfg.monitor_mode), out, {}, str(e), 2)


def _run_locked(cfg: DictConfig, ctx: RunContext, out: Path) -> JobResult:
    from sweeplab.runs.fit import build_datamodule, fit_and_test
    from sweeplab.runs.identity import config_identity, data_identity, fingerprint

    previous, problem = read_record(out)
    if problem and not cfg.overwrite:
        raise RunDirError(f"{problem}: cannot tell what {out} holds; move it away, or rerun with overwrite=true")
    t0 = time.perf_counter()
    dm, dm_error, data = None, None, []
    try:
        dm = build_datamodule(cfg)  # constructor only: its data files are part of the identity
        data = data_identity(dm, cfg.data)
    except BaseException as e:  # bad data: recorded as this attempt's failure below
        dm_error = e
    identity = {"config": config_identity(cfg, out), "data": data}
    fp = fingerprint(identity)
    plan = _plan(cfg, ctx, out, previous if not problem else {"status": "unreadable"}, identity, fp)
    if plan.action == "skip":
        log.info("skipping %s: already completed with the same configuration", out)
        return JobResult("skipped", float(previous.get("objective", worst(cfg.monitor_mode))), out, previous)

    record = RunRecord(out, plan.previous)
    record.update(
        run_dir=str(out),
        overrides=list(ctx.overrides),
        choices=dict(ctx.choices),
        monitor=cfg.monitor,
        mode=cfg.monitor_mode,
        fingerprint=fp,
        identity=identity,
        **({"rerun": plan.rerun} if plan.rerun else {}),
    )
    try:
        _prepare(out, plan, len(record.data["attempts"]) + 1)
        _write_hydra_files(cfg, ctx, out)
        record.start_attempt(resumed_from=plan.ckpt and _rel(plan.ckpt, out), overrides=list(ctx.overrides))
    except OSError as e:  # a read-only dir, a full disk: nothing has started
        where = f" ({e.filename})" if e.filename else ""
        raise RunDirError(f"cannot write into {out}: {e.strerror}{where}") from None
    handler = _attach_log_file(out, ctx)
    exception = None
    try:
        if dm_error is not None:
            raise dm_error
        from sweeplab.runs.gpus import claim_gpu

        if (gpu := claim_gpu()) is not None:  # before torch touches CUDA (hydra/launcher=gpus)
            record.update(cuda_visible_devices=gpu)
        fit_and_test(cfg, ctx, dm, record, plan.ckpt)
        status, error = "completed", None
    except BaseException as e:
        status, error = _ending(e)
        exception = e
        if not isinstance(e, UserError):
            with contextlib.suppress(OSError):  # a full disk: the one-line error in metrics.json is what matters
                write_text(out / "error.txt", "".join(traceback.format_exception(e)))
    finally:
        _detach_log_file(handler)
    duration = time.perf_counter() - t0
    try:
        record.end_attempt(status, error, duration, record.current.get("objective", worst(cfg.monitor_mode)))
    except OSError as e:
        status, error = "failed", f"cannot write {record.path}: {e.strerror}"
    return _result(cfg, out, record, status, error, exception)


# ---------------------------------------------------------------- deciding
def _plan(cfg, ctx: RunContext, out: Path, previous: dict | None, identity: dict, fp: str) -> Plan:
    from sweeplab.runs.identity import RESUMABLE, differences

    explicit = _resolve_ckpt(cfg.ckpt_path, out) if cfg.ckpt_path else None
    if previous is None:
        return Plan("resume" if explicit else "fresh", ckpt=explicit)
    if cfg.overwrite:
        moved = _move_aside(out)
        log.warning("overwrite=true: moved the earlier run to %s", moved)
        return Plan("fresh", ckpt=explicit, rerun={"reason": "overwrite=true", "previous": str(moved)})
    status = previous.get("status", "unknown")
    changes = differences(previous.get("identity"), identity)
    if explicit:
        blocking = differences(previous.get("identity"), identity, ignore=RESUMABLE)
        if blocking and Path(explicit).resolve().is_relative_to(out.resolve()):
            raise RunDirError(
                f"cannot resume {out}: its configuration differs ({'; '.join(blocking[:3])}); resume with the "
                f"same settings (only {', '.join(RESUMABLE[:3])}, ... may change), or use a new dir or overwrite=true"
            )
        return Plan("resume", ckpt=explicit, previous=previous)
    if not ctx.multirun:
        when = previous.get("finished") or previous.get("started") or "?"
        raise RunDirError(
            f"{out} already holds a run ({status}, {when}); run into a new dir (the default: leave hydra.run.dir "
            f"unset), resume it with ckpt_path=last, or move it aside with overwrite=true"
        )
    last = out / LAST_CKPT
    if changes:
        moved = _move_aside(out)
        reason = "; ".join(changes)
        log.warning("%s: configuration changed (%s): rerun; the earlier run is in %s", out, reason, moved)
        return Plan("fresh", rerun={"reason": reason, "previous": str(moved)})
    if status == "completed":
        return Plan("skip")
    if status in ("running", "interrupted") and last.is_file():
        return Plan("resume", ckpt=str(last), previous=previous)  # killed or interrupted: go on
    return Plan("restart", previous=previous)  # failed, diverged, or stopped before any checkpoint


def _resolve_ckpt(ckpt_path: str, out: Path) -> str:
    if ckpt_path == "last":
        last = out / LAST_CKPT
        if not last.is_file():
            raise RunDirError(
                f"ckpt_path=last: no checkpoint at {last}; point hydra.run.dir at the run to resume, or give "
                f"ckpt_path=<checkpoint file or run dir>"
            )
        return str(last)
    p = Path(ckpt_path).expanduser()
    if p.is_dir():
        p = p / LAST_CKPT
    if not p.is_file():
        raise RunDirError(f"ckpt_path={ckpt_path}: no such checkpoint")
    return str(p)


def _move_aside(out: Path) -> Path:
    """``<dir>.old-<time>`` beside it (a counter if that exists too); the run dir is then created afresh."""
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    dest = out.with_name(f"{out.name}.old-{stamp}")
    n = 1
    while dest.exists():
        n += 1
        dest = out.with_name(f"{out.name}.old-{stamp}-{n}")
    out.rename(dest)
    out.mkdir()
    # The lock's file moved with the dir, and this process's lock with it: lock the new dir too.
    DirLock(out).acquire()
    return dest


def _prepare(out: Path, plan: Plan, attempt: int) -> None:
    """Keep the earlier attempt's files before this one writes: metrics.csv is copied (byte for byte) to
    metrics.attempt-<n>.csv; a restart also moves the earlier checkpoints to checkpoints.attempt-<n>/ (so a
    fresh ModelCheckpoint does not write last-v1.ckpt beside the old last.ckpt)."""
    if plan.action not in ("resume", "restart"):
        return
    previous = attempt - 1
    csv = out / "metrics.csv"
    if csv.is_file():
        shutil.copy2(csv, out / f"metrics.attempt-{previous}.csv")
        if plan.action == "restart":
            csv.unlink()
    if plan.action == "restart" and (out / "checkpoints").is_dir():
        (out / "checkpoints").rename(out / f"checkpoints.attempt-{previous}")


def _write_hydra_files(cfg: DictConfig, ctx: RunContext, out: Path) -> None:
    """.hydra/{config,overrides,hydra}.yaml as Hydra writes them; written here, after the run dir is known to be
    ours, so that a refused launch leaves a finished run's files untouched (conf/hydra/default.yaml turns
    Hydra's own copy off)."""
    d = out / ".hydra"
    d.mkdir(parents=True, exist_ok=True)
    write_text(d / "config.yaml", OmegaConf.to_yaml(cfg))
    write_text(d / "overrides.yaml", OmegaConf.to_yaml(OmegaConf.create(list(ctx.overrides))))
    if ctx.hydra is not None:
        write_text(d / "hydra.yaml", OmegaConf.to_yaml(OmegaConf.create({"hydra": ctx.hydra})))


def _attach_log_file(out: Path, ctx: RunContext) -> logging.Handler:
    """The attempt's log lines also go to <run dir>/train.log (appended to across attempts)."""
    handler = logging.FileHandler(out / f"{ctx.prog.removeprefix('sweeplab-')}.log", encoding="utf-8", delay=True)
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    logging.getLogger().addHandler(handler)
    return handler


def _detach_log_file(handler: logging.Handler) -> None:
    logging.getLogger().removeHandler(handler)
    handler.close()


def _rel(path: str, out: Path) -> str:
    p = Path(path).resolve()
    return str(p.relative_to(out.resolve())) if p.is_relative_to(out.resolve()) else str(path)


# ---------------------------------------------------------------- ending
def _ending(e: BaseException) -> tuple[str, str]:
    from hydra.errors import InstantiationException

    from sweeplab.runs.callbacks import Diverged
    from sweeplab.runs.pruning import Pruned
    from sweeplab.runs.signals import Interrupted

    if isinstance(e, Diverged):
        return "diverged", str(e)
    if isinstance(e, Pruned):
        return "pruned", str(e)
    if isinstance(e, Interrupted):
        return "interrupted", str(e)
    if isinstance(e, KeyboardInterrupt):
        return "interrupted", "interrupted (SIGINT)"
    while isinstance(e, InstantiationException) and e.__cause__ is not None:
        e = e.__cause__  # Hydra wraps the real error: report that one
    if isinstance(e, UserError):
        return "failed", f"{type(e).__name__}: {e}"
    if isinstance(e, OSError) and e.strerror:
        where = f": {e.filename}" if e.filename else ""
        return "failed", f"{type(e).__name__}: {e.strerror}{where}"
    return "failed", f"{type(e).__name__}: {first_line(e)}".rstrip(": ")


def _result(cfg, out: Path, record: RunRecord, status: str, error: str | None, e: BaseException | None) -> JobResult:
    from hydra.errors import InstantiationException

    from sweeplab.runs.signals import Interrupted

    while isinstance(e, InstantiationException) and e.__cause__ is not None:
        e = e.__cause__  # a constructor's own error (a DataError is bad input: exit 2)
    if status == "completed":
        objective = float(record.current.get("objective", worst(cfg.monitor_mode)))
        return JobResult(status, objective, out, record.data)
    if status == "interrupted":
        code = e.exit_code if isinstance(e, Interrupted) else 130
    else:
        code = 2 if isinstance(e, UserError) else 1
    return JobResult(status, worst(cfg.monitor_mode), out, record.data, error, code)
