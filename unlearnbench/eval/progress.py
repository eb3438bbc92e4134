"""Progress of an evaluation on stderr: items done / total and items per second.

On a terminal it is a tqdm bar (redrawn at most every 0.5 s); in a file (a grid cell's
``log.txt``, a redirected ``eval``) one line at most every 10 s and a last line at the end,
so that logs stay short. Only rank 0 of a distributed evaluation writes; it counts its own
share of the items (``rows[rank::world]``), which is what it waits on.
"""

from __future__ import annotations

import sys
import time

from unlearnbench.parallel import rank_world


class Progress:
    """``with Progress("tofu-synth forget10", total) as p: ... p.update(n)``."""

    def __init__(self, desc: str, total: int, *, stream=None, every_s: float = 10.0):
        rank, world = rank_world()
        self.desc = desc if world == 1 else f"{desc} (rank 0 of {world}, its share)"
        self.total, self.done, self.every_s = total, 0, every_s
        self.stream = stream or sys.stderr
        self.on = rank == 0
        self.start = self.last = time.perf_counter()
        self.bar = None
        if self.on and getattr(self.stream, "isatty", lambda: False)():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="item", file=self.stream, mininterval=0.5,
                            dynamic_ncols=True)

    def line(self) -> str:
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        return (f"[eval] {self.desc}: {self.done}/{self.total} items, {self.done / elapsed:.1f} items/s, "
                f"{elapsed:.0f}s")

    def update(self, n: int = 1) -> None:
        self.done += n
        if not self.on:
            return
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.perf_counter()
        if now - self.last >= self.every_s:
            self.last = now
            print(self.line(), file=self.stream, flush=True)

    def close(self) -> None:
        if not self.on:
            return
        if self.bar is not None:
            self.bar.close()
        else:
            print(self.line(), file=self.stream, flush=True)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
