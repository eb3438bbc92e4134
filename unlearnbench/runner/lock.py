"""One grid per results directory, and no cell outliving its grid.

Two grids on one directory would each compute every cell and overwrite each other's logs;
a cell orphaned by a killed grid would race the re-run in its directory. The lock is an
``flock`` on ``<results>/.lock`` (which holds the PID of the grid that took it); each cell
process inherits the locked descriptor, so the lock is held while any cell of the grid is
alive, even one that outlived its grid. On Linux a cell also gets SIGTERM when its grid dies
(``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import signal
import sys
from pathlib import Path

LOCK_NAME = ".lock"


class ResultsLock:
    """``with ResultsLock(out_dir, wait=False):`` the grid's hold on ``out_dir``.

    Busy: ``wait`` blocks until the holder is done, else a ``GridError`` names its PID."""

    def __init__(self, out_dir: str | os.PathLike, wait: bool = False, log=print):
        self.path = Path(out_dir) / LOCK_NAME
        self.wait, self.log = wait, log
        self.fd: int | None = None

    def __enter__(self) -> "ResultsLock":
        from unlearnbench.runner.grid import GridError

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            if not self.wait:
                os.close(fd)
                raise GridError(f"{self.path.parent} is in use by another grid (PID {holder}); wait for it, "
                                "re-run with --wait to start when it is done, or use another --out") from None
            self.log(f"[grid] {self.path.parent} is in use by PID {holder}; waiting (--wait) ...")
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def _holder(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode().strip() or "unknown"
    except OSError:
        return "unknown"


_PR_SET_PDEATHSIG = 1


def die_with_parent():
    """A ``preexec_fn`` that makes the child receive SIGTERM when this process dies (Linux);
    ``None`` elsewhere. libc is loaded here, before the fork, not in the child."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def hook() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return hook
