"""Cost of a run (docs/metrics.md §9): wall time, CPU time, tokens, steps, peak memory, world size."""

from __future__ import annotations

import sys
import time

import torch

from unlearnbench.parallel import rank_world

try:
    import resource
except ImportError:  # Windows has no resource module
    resource = None


def _peak_host_mem_mib() -> float | None:
    """Peak resident set size of this process in MiB (a lifetime peak: it cannot be reset)."""
    if resource is None:
        return None
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is KiB on Linux but bytes on macOS.
    return maxrss / (1024.0 * 1024.0) if sys.platform == "darwin" else maxrss / 1024.0


def _world_size() -> int:
    return rank_world()[1]


class CostTracker:
    """Context manager recording the cost of a block: wall time, tokens, steps, peak memory."""

    def __init__(self) -> None:
        self.tokens = 0
        self.steps = 0
        self.wall_time_s = 0.0
        # This process's CPU time (every thread, user + system): on a shared machine wall time
        # grows with the load while CPU time does not, so timing claims quote both.
        self.cpu_time_s = 0.0
        self.peak_accel_mem_mib: float | None = None
        self._start: float | None = None
        self._cuda = torch.cuda.is_available()

    def __enter__(self) -> CostTracker:
        if self._cuda:
            torch.cuda.reset_peak_memory_stats()
        self._start = time.perf_counter()
        self._cpu_start = time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall_time_s = time.perf_counter() - self._start
        self.cpu_time_s = time.process_time() - self._cpu_start
        self._start = None
        if self._cuda:
            self.peak_accel_mem_mib = torch.cuda.max_memory_allocated() / 2**20

    def add_tokens(self, n: int) -> None:
        """Count n more processed tokens."""
        self.tokens += int(n)

    def add_step(self) -> None:
        """Count one more optimiser step."""
        self.steps += 1

    def as_dict(self) -> dict:
        """Cost so far as a flat dict (inside the block, wall time and peaks are live values)."""
        wall, cpu, accel = self.wall_time_s, self.cpu_time_s, self.peak_accel_mem_mib
        if self._start is not None:
            wall = time.perf_counter() - self._start
            cpu = time.process_time() - self._cpu_start
            if self._cuda:
                accel = torch.cuda.max_memory_allocated() / 2**20
        return {
            "wall_time_s": wall,
            "cpu_time_s": cpu,
            "tokens": self.tokens,
            "steps": self.steps,
            "peak_host_mem_mib": _peak_host_mem_mib(),
            "peak_accel_mem_mib": accel,
            "world_size": _world_size(),
        }
