"""sweeplab-daemon: a warm process that pays the torch + Lightning import once and forks one job per command.

A fresh ``sweeplab-train`` spends about 4 s importing torch, Lightning and Hydra before it reads its first
override; on a names run that is most of the process. With a daemon started (``sweeplab-daemon start``, from
the shell the jobs are launched from), each console script hands its command line here and a forked copy of
the warm process runs it, in the caller's working directory and environment, writing to the caller's
terminal (its stdin, stdout and stderr are passed over the socket), exiting with the status it would have
had. The caller forwards the signals it gets (Ctrl-C, SIGTERM, SIGHUP, SIGUSR1/2, Ctrl-Z) to the job's
process group, so interrupts and resumes behave as in a plain process.

A job runs here only when that gives what a fresh process would: the request comes from the same user, the
same Python environment (the socket's name is derived from it), and the same values of every environment
variable read at import time (threads, allocator, Python, locale, Hugging Face, Lightning); and no module
the daemon imported has changed on disk since (an edited source file, a reinstalled package). Otherwise the
script says why in one line and runs the command itself, as it would without a daemon. ``SWEEPLAB_DAEMON=0``
bypasses the daemon.

This module imports only the standard library at its top: the console scripts import it before anything else.

    sweeplab-daemon start [--idle-minutes 120]   # warm one in the background (its log: ``status`` says where)
    sweeplab-daemon status
    sweeplab-daemon stop                         # running jobs finish; new commands run in their own process
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

PROG = "sweeplab-daemon"

# The console scripts a daemon runs, and the module whose main() each one calls.
ENTRIES = {
    "sweeplab-train": "sweeplab.train",
    "sweeplab-eval": "sweeplab.eval",
    "sweeplab-generate": "sweeplab.generate",
    "sweeplab-compare": "sweeplab.compare",
    "sweeplab-search": "sweeplab.search",
}

# Imported once by the daemon: what every job needs before its first line of work. Not here on purpose:
# `datasets` / `huggingface_hub` (they read HF_* at import; few runs use them) and `caustics` (lensing only).
PRELOAD = (
    "torch",
    "pytorch_lightning",
    "torchmetrics",
    "hydra",
    "omegaconf",
    *ENTRIES.values(),
    "sweeplab.config.preflight",
    "sweeplab.api",
    "sweeplab.runs.run",
    "sweeplab.runs.fit",
    "sweeplab.runs.builders",
    "sweeplab.runs.callbacks",
    "sweeplab.runs.plots",
    "sweeplab.tasks.language_model",
    "sweeplab.tasks.classifier",
    "sweeplab.data.names",
    "matplotlib.pyplot",
)

# Environment variables read when these modules are imported (so a job cannot take them from its caller):
# a job runs in the daemon only if the caller's values of all of them equal the daemon's.
IMPORT_TIME_ENV = (
    "OMP_",
    "MKL_",
    "KMP_",
    "GOMP_",
    "OPENBLAS_",
    "TORCH",
    "PYTORCH_",
    "CUDA_",
    "NCCL_",
    "MALLOC_",
    "GLIBC_TUNABLES",
    "LD_",
    "PYTHON",
    "LANG",
    "LC_",
    "HF_",
    "TRANSFORMERS_",
    "PL_",
    "LIGHTNING_",
    "MPL",
    "TRITON_",
)
# A process's rank, which Lightning reads at import: a DDP launcher's second process runs by itself, quietly.
RANK_ENV = (
    "RANK",
    "LOCAL_RANK",
    "NODE_RANK",
    "GROUP_RANK",
    "WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
    "MASTER_",
    "SLURM_",
    "JSM_",
    "PMI_",
    "OMPI_",
)
IMPORT_TIME_ENV += RANK_ENV
NOT_COMPARED = {"PYTHONUNBUFFERED"}  # applied to the job's own stdout instead
FORWARDED = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGWINCH", "SIGCONT")
ANSWER_S = 30  # how long a caller waits for the daemon to take or refuse its command
LIMITS = ("RLIMIT_AS", "RLIMIT_DATA", "RLIMIT_CPU", "RLIMIT_NOFILE", "RLIMIT_CORE", "RLIMIT_FSIZE")


# ------------------------------------------------------------------------------------------- where it lives
def home() -> Path:
    """This user's directory for daemon sockets and logs (private: mode 0700)."""
    if os.environ.get("SWEEPLAB_DAEMON_DIR"):
        return Path(os.environ["SWEEPLAB_DAEMON_DIR"])
    if os.environ.get("XDG_RUNTIME_DIR"):
        return Path(os.environ["XDG_RUNTIME_DIR"]) / "sweeplab"
    return Path(f"/tmp/sweeplab-{os.getuid()}")


def private_home(create: bool = True) -> Path | None:
    """``home()`` (created if need be and ``create``); None when it is missing, belongs to someone else, or
    others may write to it."""
    d = home()
    try:
        if create:
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = d.stat()
    except OSError:
        return None
    return d if st.st_uid == os.getuid() and not st.st_mode & 0o022 else None


def identity() -> str:
    """A name for this Python environment and this sweeplab: one daemon serves one of each."""
    here = Path(__file__).resolve().parent
    key = f"{os.path.realpath(sys.executable)}\0{sys.prefix}\0{here}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def socket_path(d: Path) -> Path:
    return d / f"daemon-{identity()}.sock"


def log_path(d: Path) -> Path:
    return d / f"daemon-{identity()}.log"


def import_time_env(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith(IMPORT_TIME_ENV) and k not in NOT_COMPARED}


def env_mismatch(daemon_env: dict[str, str], caller_env: dict[str, str]) -> list[str]:
    """The import-time variables whose values differ between the daemon and a caller, sorted."""
    a, b = import_time_env(daemon_env), import_time_env(caller_env)
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def module_files() -> dict[str, int]:
    """Every imported module's file and its modification time: what the daemon's code is made of."""
    files = {}
    for m in list(sys.modules.values()):
        f = getattr(m, "__file__", None)
        if f:
            try:
                files[f] = os.stat(f).st_mtime_ns
            except OSError:
                continue
    return files


def changed_file(snapshot: dict[str, int]) -> str | None:
    """The first file of ``snapshot`` modified or removed since it was taken, or None."""
    for f, mtime in snapshot.items():
        try:
            if os.stat(f).st_mtime_ns != mtime:
                return f
        except OSError:
            return f
    return None


# -------------------------------------------------------------------------------------------------- wire
def send(conn: socket.socket, msg: dict) -> None:
    conn.sendall(json.dumps(msg).encode() + b"\n")


class Lines:
    """Newline-delimited JSON messages from a stream socket."""

    def __init__(self, conn: socket.socket, first: bytes = b""):
        self.conn, self.buf = conn, first

    def next(self) -> dict | None:
        while b"\n" not in self.buf:
            chunk = self.conn.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return json.loads(line)


# ------------------------------------------------------------------------------------------------ client
def _connect(d: Path, timeout: float | None = None) -> socket.socket | None:
    path = socket_path(d)
    if not path.exists():
        return None
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(str(path))
    except OSError:
        s.close()
        return None
    return s


def forward(prog: str, argv: list[str]) -> int | None:
    """Run ``argv`` (a console script's sys.argv) in the warm daemon and return its exit status; None when no
    daemon takes it (none runs, it serves another environment, its code is out of date): run it here then."""
    if os.environ.get("SWEEPLAB_DAEMON", "1") == "0":
        return None
    d = private_home(create=False)
    conn = _connect(d) if d is not None else None
    if conn is None:
        return None
    request = {
        "cmd": "run",
        "prog": prog,
        "argv": argv,
        "cwd": os.getcwd(),
        "env": dict(os.environ),
        "umask": _umask(),
        "path": list(sys.path),
        "limits": {name: resource_limit(name) for name in LIMITS},
    }
    conn.settimeout(ANSWER_S)
    try:
        data = json.dumps(request).encode() + b"\n"
        sent = socket.send_fds(conn, [data], [0, 1, 2])  # the descriptors travel with the first bytes
        conn.sendall(data[sent:])
        lines = Lines(conn)
        reply = lines.next()
    except TimeoutError:  # it may have started the job: running it here too could run it twice
        conn.close()
        print(
            f"{prog}: error: the daemon ({socket_path(d)}) did not answer in {ANSWER_S} s; "
            f"`{PROG} stop` it, or run with SWEEPLAB_DAEMON=0",
            file=sys.stderr,
        )
        return 1
    except OSError as e:
        reply = {"refused": f"the daemon ({socket_path(d)}) did not take the command: {e}"}
    conn.settimeout(None)
    if not reply or "pid" not in reply:
        conn.close()
        reply = reply or {}
        why = reply.get("refused") or f"the daemon ({socket_path(d)}) closed the connection without an answer"
        if not reply.get("quiet"):
            print(f"{prog}: running in this process: {why}", file=sys.stderr)
        return None
    return _wait(conn, lines, reply["pid"], prog)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def resource_limit(name: str) -> list[int] | None:
    import resource

    what = getattr(resource, name, None)
    return list(resource.getrlimit(what)) if what is not None else None


def _wait(conn: socket.socket, lines: Lines, pgid: int, prog: str) -> int:
    """Relay signals to the job's process group until the daemon reports how it ended."""

    def relay(signum, _frame):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signum)

    def suspend(_signum, _frame):  # Ctrl-Z: stop the job, then this process, as the terminal would both
        relay(signal.SIGSTOP, None)
        signal.signal(signal.SIGTSTP, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTSTP)
        signal.signal(signal.SIGTSTP, suspend)  # here once continued; SIGCONT is relayed to the job

    for name in FORWARDED:
        signal.signal(getattr(signal, name), relay)
    signal.signal(signal.SIGTSTP, suspend)
    try:
        end = lines.next()
    except OSError:
        end = None
    finally:
        conn.close()
    if end is None:
        print(f"{prog}: error: the daemon went away before the job (pid {pgid}) ended", file=sys.stderr)
        return 1
    code = int(end["exit"])
    if code < 0:  # ended by a signal: end this process the same way, so a caller sees what it would have
        sys.stdout.flush()
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        return 128 - code
    return code


# ------------------------------------------------------------------------------------------------ server
class Daemon:
    def __init__(self, d: Path, idle_s: float):
        self.dir, self.idle_s = d, idle_s
        self.path = socket_path(d)
        self.jobs: dict[int, socket.socket] = {}  # pid → the caller's connection
        self.served = 0
        self.started = time.time()
        self.listening = True
        self.env = dict(os.environ)

    # the daemon's own life ---------------------------------------------------------------------------
    def warm(self) -> float:
        t0 = time.perf_counter()
        import importlib
        import logging

        # Lightning gives its loggers a console handler of their own (and stops them propagating) when it is
        # imported where logging is not set up yet; in a job it is imported after Hydra set logging up, and its
        # lines go to the run's train.log. The placeholder makes the import here see what a job's sees.
        root, placeholder = logging.getLogger(), logging.NullHandler()
        root.addHandler(placeholder)
        # Anything asking torch.cuda.is_available() while importing asks NVML, not the CUDA driver: a process
        # that initialised the driver cannot hand CUDA to a forked child. Jobs see their caller's setting.
        nvml = "PYTORCH_NVML_BASED_CUDA_CHECK" not in os.environ
        if nvml:
            os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "1"
        try:
            for name in PRELOAD:
                importlib.import_module(name)
        finally:
            root.removeHandler(placeholder)
            if nvml:
                del os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"]
        self.warm_s = time.perf_counter() - t0
        cuda = [ln for ln in Path("/proc/self/maps").read_text().splitlines() if "libcuda.so" in ln]
        if cuda:  # a forked copy of a process that initialised CUDA cannot use it
            raise SystemExit(f"{PROG}: error: CUDA was initialised while importing; forked jobs could not use it")
        self.snapshot = module_files()
        return self.warm_s

    def run(self) -> None:
        self.sel = selectors.DefaultSelector()
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_w.setblocking(False)
        signal.set_wakeup_fd(self.wake_w.fileno())
        signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so the wakeup socket hears of each child
        signal.signal(signal.SIGTERM, lambda *_: self.close())
        signal.signal(signal.SIGINT, lambda *_: self.close())
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}")
        self.listener.bind(str(tmp))
        self.listener.listen(64)
        os.replace(tmp, self.path)  # ready at once, whole: a caller never finds a socket nobody listens on
        self.inode = os.stat(self.path).st_ino
        self.sel.register(self.listener, selectors.EVENT_READ, "accept")
        self.sel.register(self.wake_r, selectors.EVENT_READ, "wake")
        print(f"{PROG}: serving on {self.path} (pid {os.getpid()}, warm in {self.warm_s:.1f} s)", flush=True)
        last = time.monotonic()
        while self.listening or self.jobs:
            events = self.sel.select(timeout=5.0)
            for key, _ in events:
                if key.data == "accept":
                    conn, _ = self.listener.accept()
                    self.handle(conn)
                    last = time.monotonic()
                elif key.data == "wake":
                    self.wake_r.recv(4096)
                else:  # a caller's connection: it ended before its job did
                    self.caller_gone(key.data)
            self.reap()
            if self.jobs:
                last = time.monotonic()
            elif self.listening and time.monotonic() - last > self.idle_s:
                print(f"{PROG}: idle for {self.idle_s / 60:.0f} min; exiting", flush=True)
                self.close()
        print(f"{PROG}: stopped after {self.served} jobs", flush=True)

    def close(self) -> None:
        """Take no more commands (they run in their own process from now); exit once running jobs end."""
        if not self.listening:
            return
        self.listening = False
        try:  # only our own socket: a newer daemon may have taken the name since
            if os.stat(self.path).st_ino == self.inode:
                self.path.unlink()
        except OSError:
            pass
        self.sel.unregister(self.listener)
        self.listener.close()

    # commands --------------------------------------------------------------------------------------------
    def handle(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        try:
            uid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[1]
            if uid != os.getuid():
                conn.close()
                return
            data, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
            req = Lines(conn, data).next() if data else None
        except (OSError, ValueError):
            conn.close()
            return
        try:
            self.answer(conn, req or {}, fds)
        finally:
            for fd in fds:
                os.close(fd)

    def answer(self, conn: socket.socket, req: dict, fds: list[int]) -> None:
        cmd = req.get("cmd")
        if cmd == "status":
            send(conn, self.status())
            conn.close()
        elif cmd == "stop":
            send(conn, {"stopping": True, "running": len(self.jobs)})
            conn.close()
            self.close()
        elif cmd == "run":
            why, quiet = self.refusal(req, fds)
            if why:
                send(conn, {"refused": why, "quiet": quiet})
                conn.close()
                return
            self.fork(conn, req, fds)
        else:
            conn.close()

    def status(self) -> dict:
        return {
            "pid": os.getpid(),
            "python": sys.executable,
            "prefix": sys.prefix,
            "up_s": round(time.time() - self.started, 1),
            "warm_s": round(self.warm_s, 2),
            "served": self.served,
            "running": len(self.jobs),
            "log": str(log_path(self.dir)),
            "idle_minutes": round(self.idle_s / 60, 1),
            "import_time_env": import_time_env(self.env),
        }

    def refusal(self, req: dict, fds: list[int]) -> tuple[str | None, bool]:
        """Why this request must run in its caller's process (None: it may run here), and whether that is
        not worth telling the caller (a DDP launcher's worker process)."""
        if not self.listening:
            return "the daemon is stopping", False
        if req.get("prog") not in ENTRIES or len(fds) != 3:
            return f"the daemon cannot run {req.get('prog')!r}", False
        changed = changed_file(self.snapshot)
        if changed:  # a job would run the old code: stop serving, the next start imports the new
            self.close()
            return f"{changed} changed since the daemon started (it is stopping; `{PROG} start` warms a new one)", False
        differ = env_mismatch(self.env, req.get("env", {}))
        if differ and all(k.startswith(RANK_ENV) for k in differ):
            return f"{', '.join(differ)}: a launcher's worker process", True
        if differ:
            names = ", ".join(differ[:4]) + (" ..." if len(differ) > 4 else "")
            return (
                f"{names} differ{'s' if len(differ) == 1 else ''} from the daemon's, and torch reads them at import",
                False,
            )
        return None, False

    def fork(self, conn: socket.socket, req: dict, fds: list[int]) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            os._exit(self.child(conn, req, fds))
        with contextlib.suppress(OSError):  # the child does it too: whichever runs first, signals find the group
            os.setpgid(pid, pid)
        self.served += 1
        self.jobs[pid] = conn
        with contextlib.suppress(OSError):
            send(conn, {"pid": pid})
        self.sel.register(conn, selectors.EVENT_READ, conn)

    def caller_gone(self, conn: socket.socket) -> None:
        try:
            if conn.recv(4096):  # callers say nothing after their request; ignore it if one does
                return
        except OSError:
            pass
        self.sel.unregister(conn)
        for pid, c in self.jobs.items():
            if c is conn:  # killed without a word: end the job as a terminal's hang-up would, with its records
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGTERM)

    def reap(self) -> None:
        for pid in list(self.jobs):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
                code = os.waitstatus_to_exitcode(status) if done else None
            except ChildProcessError:  # reaped elsewhere: how it ended is not known
                done, code = pid, 1
            if not done:
                continue
            conn = self.jobs.pop(pid)
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(conn)
            with contextlib.suppress(OSError):
                send(conn, {"exit": code})
            conn.close()

    # the job -----------------------------------------------------------------------------------------------
    def child(self, conn: socket.socket, req: dict, fds: list[int]) -> int:
        """In the forked copy: become the caller's process (its terminal, directory, environment, limits) and
        run its command; the exit status that process would have had."""
        try:
            os.setpgid(0, 0)
            signal.set_wakeup_fd(-1)
            for name in ("SIGTERM", "SIGHUP", "SIGCHLD", "SIGUSR1", "SIGUSR2", "SIGQUIT", "SIGWINCH"):
                signal.signal(getattr(signal, name), signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            self.sel.close()
            for sock in (self.listener, self.wake_r, self.wake_w, conn, *self.jobs.values()):
                sock.close()
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
                os.close(fd)
            os.chdir(req["cwd"])
            os.environ.clear()
            os.environ.update(req["env"])
            time.tzset()  # the caller's TZ
            import tempfile

            tempfile.tempdir = None  # found again from the caller's TMPDIR
            os.umask(req["umask"])
            _set_limits(req.get("limits") or {})
            # sys.stdout / sys.stderr now write to the caller's descriptors; buffer them as Python would there
            tty = os.isatty(1)
            unbuffered = bool(os.environ.get("PYTHONUNBUFFERED"))
            sys.stdout.reconfigure(line_buffering=tty, write_through=unbuffered)
            sys.stderr.reconfigure(line_buffering=True, write_through=unbuffered)
            sys.argv = list(req["argv"])
            sys.path[:] = req.get("path") or sys.path
            sys.modules["__main__"] = script_main(sys.argv[0])
            if "numpy" in sys.modules:  # a fresh process draws numpy's global seed from the OS; so does each job
                sys.modules["numpy"].random.seed()
        except BaseException as e:
            os.write(2, f"{req.get('prog')}: error: the daemon could not start the job: {e}\n".encode())
            return 1
        return run_entry(ENTRIES[req["prog"]])


def script_main(path: str):
    """A ``__main__`` module like a console script's: what multiprocessing's spawn and Lightning's DDP launcher
    read to start a process running the same command (the daemon's own would run ``-m sweeplab.daemon``)."""
    import types

    main = types.ModuleType("__main__")
    main.__file__ = os.path.abspath(path)
    main.__spec__ = None
    main.__builtins__ = __builtins__
    return main


def _set_limits(limits: dict) -> None:
    import resource

    for name, value in limits.items():
        what = getattr(resource, name, None)
        if what is None or value is None:
            continue
        with contextlib.suppress(ValueError, OSError):  # above this process's hard limit: keep its own
            resource.setrlimit(what, tuple(value))


def run_entry(module: str) -> int:
    """Call ``module.main()`` as Python's own start-up would run a script: the same exit status, the same
    report of an uncaught exception, exit handlers run."""
    import atexit
    import importlib
    import threading

    code = 0
    try:
        importlib.import_module(module).main()
    except SystemExit as e:
        if e.code is None:
            code = 0
        elif isinstance(e.code, int):
            code = e.code
        else:
            print(e.code, file=sys.stderr)
            code = 1
    except KeyboardInterrupt:
        sys.excepthook(*sys.exc_info())
        code = 128 + signal.SIGINT
    except BaseException:
        sys.excepthook(*sys.exc_info())
        code = 1
    try:  # the interpreter's own exit, in its order: threads (and their exit hooks, e.g. joblib's), then atexit
        threading._shutdown()
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
    return code & 0xFF


# ---------------------------------------------------------------------------------------------- commands
def _ask(d: Path, cmd: str) -> dict | None:
    conn = _connect(d, timeout=10)
    if conn is None:
        return None
    try:
        send(conn, {"cmd": cmd})
        return Lines(conn).next()
    except (OSError, ValueError):
        return None
    finally:
        conn.close()


def start(d: Path, idle_minutes: float) -> int:
    running = _ask(d, "status")
    if running:
        print(f"{PROG}: already running (pid {running['pid']}, {running['served']} jobs served)")
        differ = env_mismatch(running.get("import_time_env", {}), import_time_env(dict(os.environ)))
        if differ:  # its jobs would all run in their own process from this shell
            print(f"{PROG}: its {', '.join(differ)} differ from this shell's: `{PROG} stop`, then start it here")
        return 0
    log = log_path(d)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sweeplab.daemon", "serve", "--idle-minutes", str(idle_minutes)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # not in the terminal's process group: Ctrl-C there does not reach it
            cwd=d,  # sys.path[0] of a `-m` process: jobs get their caller's sys.path anyway
            close_fds=True,
        )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        status = _ask(d, "status")
        if status and status["pid"] == proc.pid:
            print(
                f"{PROG}: ready (pid {status['pid']}, warm in {status['warm_s']:.1f} s); sweeplab-train, -eval, "
                f"-generate, -compare and -search run in it now (log: {log})"
            )
            return 0
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            print(f"{PROG}: error: the daemon exited ({proc.returncode}): {tail[0]}", file=sys.stderr)
            return 1
        time.sleep(0.1)
    proc.kill()
    print(f"{PROG}: error: the daemon did not answer within 300 s (log: {log})", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> None:
    from sweeplab.errors import OneLineParser

    ap = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("start", "serve"):
        what = "warm a daemon in the background" if name == "start" else "be the daemon, in the foreground"
        p = sub.add_parser(name, help=what)
        p.add_argument("--idle-minutes", type=float, default=120.0, help="exit after this long without a job")
    sub.add_parser("status", help="is one running, and what has it done")
    sub.add_parser("stop", help="stop taking commands; running jobs finish")
    args = ap.parse_args(argv)
    if getattr(args, "idle_minutes", 1) <= 0:
        ap.error(f"--idle-minutes must be > 0, got {args.idle_minutes}")
    d = private_home()
    if d is None:
        raise SystemExit(f"{PROG}: error: {home()} is not a private directory of this user (mode 0700)")
    if args.cmd == "start":
        raise SystemExit(start(d, args.idle_minutes))
    if args.cmd == "serve":
        daemon = Daemon(d, args.idle_minutes * 60)
        daemon.warm()
        daemon.run()
        return
    reply = _ask(d, args.cmd)
    if reply is None:
        print(f"{PROG}: not running")
        raise SystemExit(0 if args.cmd == "stop" else 3)
    if args.cmd == "stop":
        print(f"{PROG}: stopping; {reply['running']} running jobs finish first")
    else:
        print(json.dumps(reply, indent=1))


if __name__ == "__main__":
    main()
