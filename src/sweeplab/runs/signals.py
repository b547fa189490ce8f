"""SIGINT (Ctrl-C), SIGTERM (kill, timeout, docker stop, SLURM preemption) and SIGHUP (a closed terminal)
all end a run the same way: the current optimizer step finishes, ``checkpoints/last.ckpt`` is saved, the
record says ``interrupted``, and the process exits with 128 + the signal's number, so a rerun resumes where
it stopped. A second Ctrl-C stops at once (still recorded as interrupted; the resume point is then the
last checkpoint written before it).
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import pytorch_lightning as pl

log = logging.getLogger("sweeplab")
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(BaseException):
    """A stop asked for by a signal (a BaseException, like KeyboardInterrupt: nothing catches it by accident)."""

    def __init__(self, signum: int):
        self.signum = int(signum)
        super().__init__(f"interrupted ({signal.Signals(self.signum).name})")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class GracefulStop(pl.Callback):
    """Installs the handlers for the whole run (data set-up, fit, test) and turns a signal into a clean stop.

    Outside the training loop a signal raises :class:`Interrupted` at once (there is no step to finish). Inside
    it, the handler only takes note; the end of the current batch saves ``last_ckpt``, and the next hook raises.
    Lightning installs its own SIGTERM handler when fit starts (which would stop only at the end of the epoch,
    without a checkpoint); ``on_train_start`` puts this one back, and Lightning restores ours when fit ends.
    """

    def __init__(self, last_ckpt: Path | None):
        self.last_ckpt = Path(last_ckpt) if last_ckpt else None
        self.received: int | None = None
        self._in_step_loop = False
        self._saved = False  # the resume point was written after the signal
        self._previous: dict[int, object] = {}

    # -------------------------------------------------------------- handlers
    def install(self) -> GracefulStop:
        for sig in SIGNALS:
            if sig not in self._previous:
                self._previous[sig] = signal.getsignal(sig)
            signal.signal(sig, self._handle)
        return self

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        self._previous.clear()

    def _handle(self, signum, frame) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise Interrupted(signum)  # a second Ctrl-C: now
        first = self.received is None
        self.received = signum
        if not self._in_step_loop:
            raise Interrupted(signum)
        if first:
            log.warning("%s received: stopping after this step (Ctrl-C again to stop now)", signal.Signals(signum).name)

    def check(self) -> None:
        """Raise :class:`Interrupted` if a signal came while the handler could only take note of it."""
        if self.received is not None:
            raise Interrupted(self.received)

    # -------------------------------------------------------------- Lightning hooks
    def on_train_start(self, trainer, pl_module) -> None:
        self.install()
        self._in_step_loop = True
        self.check()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.received is None or self._saved:
            return
        if self.last_ckpt is not None and trainer.is_global_zero:
            trainer.save_checkpoint(self.last_ckpt, weights_only=False)  # optimizer and loops too: a resume point
            log.info("saved %s at step %d", self.last_ckpt, trainer.global_step)
        # Stop at the next hook, not here: Lightning logs this step's metrics after this hook, and the resume
        # starts after this step, so its row must reach metrics.csv (no gap).
        self._saved = True

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._stop_if_saved()

    def on_validation_start(self, trainer, pl_module) -> None:
        self._stop_if_saved()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._stop_if_saved()

    def on_train_end(self, trainer, pl_module) -> None:
        self._in_step_loop = False
        self._stop_if_saved()

    def on_exception(self, trainer, pl_module, exception) -> None:
        self._in_step_loop = False

    def _stop_if_saved(self) -> None:
        if self._saved:
            self._in_step_loop = False
            self.check()
