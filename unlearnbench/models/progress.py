"""Progress of long one-off builds (the tiny family): stage lines and a per-epoch bar with ETA.

Lines start with a prefix (``[family]``) so that a grid, which captures each cell's output
in its log, can also show them: the family's build runs inside the first reference's
process and takes minutes, during which the grid would otherwise print nothing.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import lightning as L


def _fmt(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s"


def bar(done: int, total: int, width: int = 20) -> str:
    filled = round(width * done / total) if total else width
    return "[" + "#" * filled + "." * (width - filled) + "]"


@contextmanager
def stage(prefix: str, name: str):
    """Print when a build stage starts and how long it took."""
    t0 = time.time()
    print(f"{prefix} {name}: building", flush=True)
    yield
    print(f"{prefix} {name}: done in {_fmt(time.time() - t0)}", flush=True)


class EpochProgress(L.Callback):
    """One line per epoch (at most one per ``every`` seconds, and always the last): a bar,
    the epoch count, the time so far and the ETA from the mean epoch time."""

    def __init__(self, prefix: str, desc: str, every: float = 5.0):
        self.prefix, self.desc, self.every = prefix, desc, every
        self.t0 = self.last = 0.0

    def on_train_start(self, trainer, pl_module) -> None:
        self.t0 = time.time()
        self.last = 0.0

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        done, total = trainer.current_epoch + 1, trainer.max_epochs
        now = time.time()
        if now - self.last < self.every and done < total:
            return
        self.last = now
        elapsed = now - self.t0
        eta = elapsed / done * (total - done)
        print(f"{self.prefix} {self.desc}: {bar(done, total)} epoch {done}/{total}, "
              f"{_fmt(elapsed)} elapsed, ETA {_fmt(eta)}", flush=True)
