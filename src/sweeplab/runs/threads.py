"""How many intra-op CPU threads a run uses when ``num_threads=auto`` (the default, conf/train.yaml).

torch's default is one thread per core. For the small networks most runs here train, the extra threads only
cost: a names MLP step is about a millisecond of work split into ~70 tiny kernels, and OpenMP's fork/join
per kernel outweighs it; on a busy machine the second thread also waits for a core that another process
holds, at every kernel (two threads made a names MLP run 5x slower there, and single steps up to 100x).
The policy, a callback every run has:

- a fixed ``num_threads=N`` is used as it is;
- otherwise the run starts on one thread (data set-up, the network's construction). At the first training
  batch the work of a step is counted on the meta device (``estimate_step``: no memory, no compute): more
  threads only where the average operator is large enough to gain (``MIN_FLOPS_PER_OP``, the crossover
  bracketed by benchmarks/threads.py), and only as many as the cores this process may use (affinity mask,
  ``OMP_NUM_THREADS``: a parallel launcher's cap, joblib gives each of n_jobs workers cores // n_jobs)
  that other processes are not using (``/proc/stat`` less this process's own CPU time). That is looked at
  again every ``RECHECK_S`` seconds of training, so a run that took two threads drops to one when the
  machine fills up.
"""

from __future__ import annotations

import logging
import math
import os
import time

import pytorch_lightning as pl
import torch

log = logging.getLogger("sweeplab")

AUTO = "auto"
# Mean FLOPs per dispatched operator (forward + backward) from which two threads beat one on an idle 2-core
# CPU: the crossover benchmarks/threads.py measures (benchmarks/README.md, "Threads").
MIN_FLOPS_PER_OP = 2.0e6
RECHECK_S = 5.0


# ---------------------------------------------------------------- the machine
def usable_cores() -> int:
    """Cores this process may run on: its affinity mask, capped by OMP_NUM_THREADS when that is set."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        cores = min(cores, int(env))
    return max(cores, 1)


class CpuMonitor:
    """Cores busy with other processes since the last call: the machine's busy time (/proc/stat) less this
    process's own CPU time, over the wall time between calls. Falls back to the load average elsewhere."""

    def __init__(self):
        self._last = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float] | None:
        try:
            with open("/proc/stat") as f:
                fields = [int(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        busy = sum(fields[:8]) - fields[3] - fields[4]  # all but idle and iowait (guest time is in user)
        own = sum(os.times()[:2])
        return time.monotonic(), busy / os.sysconf("SC_CLK_TCK"), own

    def others(self) -> float:
        now = self._sample()
        before, self._last = self._last, now
        if now is None or before is None or now[0] - before[0] < 0.2:
            try:
                return max(os.getloadavg()[0] - 1.0, 0.0)  # this process is one of the runnable tasks
            except OSError:
                return 0.0
        wall = now[0] - before[0]
        return max((now[1] - before[1]) - (now[2] - before[2]), 0.0) / wall


def free_cores(cores: int, others: float) -> int:
    """Of ``cores`` usable ones, those other processes leave free (the machine has os.cpu_count()). A core
    counts as free only when others use less than a fifth of one: an OpenMP thread that has to wait for a
    core another process holds stalls every operator (a names MLP step: 0.9 ms on one thread, 173 ms on two
    with one other busy process, benchmarks/README.md)."""
    total = os.cpu_count() or cores
    return max(1, min(cores, math.floor(total - others + 0.2)))


# ---------------------------------------------------------------- the network
def estimate_step(net: torch.nn.Module, batch) -> tuple[float, int]:
    """(FLOPs, operator calls) of one training step's forward and backward pass of ``net`` on ``batch``
    ((x, y), docs/ARCHITECTURE.md), counted on a meta-device copy of the network: nothing is computed or
    allocated, and no random state is drawn. The training loss (``nll``) where the meta device can run it;
    where it cannot (the adaptive softmax picks its rows by value), the full forward pass, an upper bound."""
    import copy

    import torch.fx.experimental._config as fx_config
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import FlopCounterMode

    class Calls(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Calls.n += 1
            return func(*args, **(kwargs or {}))

    # A deepcopy whose tensors are empty meta tensors of the same shapes: no copy of the weights is made.
    memo = {}
    for t in [*net.parameters(), *net.buffers()]:
        meta = torch.empty_like(t, device="meta")
        memo[id(t)] = torch.nn.Parameter(meta, t.requires_grad) if isinstance(t, torch.nn.Parameter) else meta
    probe = copy.deepcopy(net, memo)
    x, y = batch[0].to("meta"), batch[1].to("meta")
    losses = [lambda: probe.nll(x, y)[0]] if hasattr(probe, "nll") else []
    for loss in [*losses, lambda: probe(x)]:
        flops, Calls.n = FlopCounterMode(display=False), 0
        try:
            # Padding masks select by value too: counted as if every position were kept (an upper bound).
            with fx_config.patch(meta_nonzero_assume_all_nonzero=True), flops, Calls():
                loss().float().sum().backward()
        except (NotImplementedError, RuntimeError):
            probe.zero_grad(set_to_none=True)
            continue
        return float(flops.get_total_flops()), Calls.n
    raise RuntimeError(f"{type(net).__name__} does not run on the meta device")


def threads_for(flops: float, calls: int, cores: int) -> int:
    """Threads for a step of ``flops`` over ``calls`` operators with ``cores`` free cores."""
    if cores <= 1 or calls == 0 or flops / calls < MIN_FLOPS_PER_OP:
        return 1
    return cores


# ---------------------------------------------------------------- the callback
class ThreadPolicy(pl.Callback):
    """Sets torch's intra-op threads: ``num_threads`` (an int, or ``auto``: the policy above)."""

    def __init__(self, num_threads: int | str):
        self.fixed = None if num_threads == AUTO else int(num_threads)
        self.threads = self.fixed or 1
        self.reason = "num_threads" if self.fixed else "auto: until the first training batch"
        self._cap = 1  # threads the network can use (auto), set at the first batch
        self._monitor = CpuMonitor() if self.fixed is None else None
        self._next_check: float | None = None  # when to look at the machine again; None: before the first batch
        torch.set_num_threads(self.threads)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self._monitor is None:
            return
        now = time.monotonic()
        if self._next_check is None:  # the first batch: how much can the network use?
            self._first_batch(getattr(pl_module, "net", pl_module), pl_module.device, batch)
        elif now < self._next_check:
            return
        else:
            self._set(min(self._cap, free_cores(usable_cores(), self._monitor.others())), self.reason)
        if self._cap == 1:
            self._monitor = None  # one thread for good: nothing more to look at
        self._next_check = now + RECHECK_S

    def _first_batch(self, net: torch.nn.Module, device: torch.device, batch) -> None:
        cores = usable_cores()
        if cores == 1:
            self._set(1, "auto: one usable core (affinity or OMP_NUM_THREADS)")
            return
        if device.type != "cpu":  # the threads only run the host's side of the step
            self._cap = cores
            self._set(free_cores(cores, self._monitor.others()), f"auto: training on {device.type}")
            return
        if not any(p.requires_grad for p in net.parameters()):
            self._set(1, "auto: nothing to train (counts)")
            return
        try:
            flops, calls = estimate_step(net, batch)
        except Exception as e:  # a network the meta device cannot run: stay on the safe side
            log.debug("threads: cannot count the step's work (%s): one thread", e)
            self._set(1, "auto: the step's work could not be counted")
            return
        per_op = flops / max(calls, 1)
        self._cap = threads_for(flops, calls, cores)
        if self._cap == 1:
            self._set(1, f"auto: {per_op / 1e6:.2g} MFLOP per operator, below {MIN_FLOPS_PER_OP / 1e6:g}")
            return
        self._set(
            min(self._cap, free_cores(cores, self._monitor.others())),
            f"auto: {per_op / 1e6:.2g} MFLOP per operator; {cores} usable cores, less those other processes use",
        )

    def _set(self, n: int, reason: str) -> None:
        if n != torch.get_num_threads():
            torch.set_num_threads(n)
        if (n, reason) != (self.threads, self.reason):
            log.info("threads: %d (%s)", n, reason)
        self.threads, self.reason = n, reason
