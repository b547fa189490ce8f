"""One owner per run dir and per sweep dir: an OS file lock (flock) on ``<dir>/.lock``.

The kernel releases the lock when its process dies, however it dies (SIGKILL included), so a stale lock
never blocks a rerun. The file says who holds it (PID and host), for the message a second launch gets.
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path

from sweeplab.errors import RunDirError

LOCK_FILE = ".lock"


class DirLock:
    """``with DirLock(dir, what="run dir"):`` — or ``acquire()`` / ``release()``; re-entrant per process."""

    _held: dict[Path, tuple[int, int]] = {}  # resolved dir -> (fd, depth), for this process

    def __init__(self, directory: Path, what: str = "run dir"):
        self.dir, self.what = Path(directory), what
        self._key: Path | None = None

    def acquire(self) -> DirLock:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise RunDirError(f"cannot use {self.what} {self.dir}: a file is in the way") from None
        except OSError as e:
            raise RunDirError(f"cannot create {self.what} {self.dir}: {e.strerror}") from None
        key = self.dir.resolve()
        if key in self._held:
            fd, depth = self._held[key]
            self._held[key] = (fd, depth + 1)
            self._key = key
            return self
        path = key / LOCK_FILE
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise RunDirError(f"cannot lock {self.what} {self.dir}: {e.strerror} ({path})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _read_owner(fd)
            os.close(fd)
            raise RunDirError(
                f"{self.what} {self.dir} is in use by {owner}; wait for it to finish, stop it, or choose another dir"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"pid {os.getpid()} on host {socket.gethostname()}\n".encode())
        except OSError:
            pass  # a full disk: the lock itself holds, only its note of the owner is missing
        self._held[key] = (fd, 1)
        self._key = key
        return self

    def release(self) -> None:
        key, self._key = self._key, None
        if key is None or key not in self._held:
            return
        fd, depth = self._held[key]
        if depth > 1:
            self._held[key] = (fd, depth - 1)
            return
        del self._held[key]
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def __enter__(self) -> DirLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_owner(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    return text or "another process"


def owner_of(directory: Path) -> str | None:
    """Who holds ``directory``'s lock now, or None when nobody does (the check takes and drops the lock)."""
    path = Path(directory) / LOCK_FILE
    if not path.is_file():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_owner(fd)
    finally:
        os.close(fd)
    return None
