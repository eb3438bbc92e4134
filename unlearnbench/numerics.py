"""The numeric environment every harness process runs in, so results are portable across CPUs.

Float results of a training run depend on the CPU's instruction set through two libraries:
oneMKL's GEMM kernels (an Intel Xeon runs its AVX-512 branch; on AMD processors oneMKL runs
its AVX2 branch) and ATen's own vectorised kernels (softmax, norms, reductions, AdamW),
dispatched to AVX-512, AVX2 or scalar code by what the CPU supports. A 1M-parameter model
trained for thousands of steps amplifies those last-bit differences into visibly different
numbers, so the same grid gave different leaderboards on two machines. Pinning both to
their AVX2 code paths — which every x86-64 CPU of the last decade has — makes the float
operations the same on every such machine (oneMKL documents this as Conditional Numerical
Reproducibility). The pins only affect CPU math; set ``UNLEARNBENCH_NATIVE_CPU=1`` to run
with the fastest native kernels instead.

Environment variables only take effect before torch loads its libraries, so
``unlearnbench/__init__.py`` applies them first thing; each grid cell is a new process.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

PORTABLE_CPU = {
    "MKL_CBWR": "AVX2",  # oneMKL: the AVX2 code branch on every CPU (CNR mode)
    "ATEN_CPU_CAPABILITY": "avx2",  # ATen's vectorised kernels: the AVX2 build
    "DNNL_MAX_CPU_ISA": "AVX2",  # oneDNN (bf16 / some fused ops): at most AVX2
}


def native_cpu() -> bool:
    """Whether the user opted out of the pins (``UNLEARNBENCH_NATIVE_CPU`` set, not 0)."""
    return os.environ.get("UNLEARNBENCH_NATIVE_CPU", "") not in ("", "0")


def pin_cpu_numerics() -> dict[str, str]:
    """Set the portable CPU settings unless the user set them (or opted out); returns them."""
    if native_cpu():
        return {}
    applied = {}
    for key, value in PORTABLE_CPU.items():
        applied[key] = os.environ.setdefault(key, value)
    return applied


# A run's floats also depend on how many threads split its reductions and matrix products:
# the same cell at 1 and at 2 threads differs in the last bits, and training amplifies that.
# Every grid job (a cell, a reference, an attack, the tiny family it builds) therefore runs a
# fixed number of intra-op threads, not "as many as this machine has cores"; the grid runs
# several jobs side by side instead (runner.schedule).
CPU_THREADS_ENV = "UNLEARNBENCH_CPU_THREADS"


def cpu_threads() -> int:
    """The intra-op threads of one grid job: ``UNLEARNBENCH_CPU_THREADS``, default 1."""
    raw = os.environ.get(CPU_THREADS_ENV, "").strip() or "1"
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{CPU_THREADS_ENV}={raw!r} is not a thread count; set it to a whole number >= 1 "
                         "(or unset it: 1 thread per job)")
    return int(raw)


def pin_threads() -> int:
    """Run this process's torch ops on ``cpu_threads()`` threads (unless the user opted out of
    the pins with ``UNLEARNBENCH_NATIVE_CPU``); returns the count torch uses now."""
    import torch

    if not native_cpu():
        torch.set_num_threads(cpu_threads())
    return torch.get_num_threads()


@contextmanager
def pinned_threads():
    """``pin_threads`` for a block, the previous count restored after: what the block builds (a
    tiny family's model, cached and shared by every later command) does not depend on the
    command that built it."""
    import torch

    before = torch.get_num_threads()
    pin_threads()
    try:
        yield
    finally:
        torch.set_num_threads(before)


def numeric_environment() -> dict:
    """What decides a run's floats on this machine, for a result's provenance."""
    import torch

    return {"cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "torch_threads": torch.get_num_threads(),
            **{k: os.environ.get(k) for k in PORTABLE_CPU},
            "native_cpu": os.environ.get("UNLEARNBENCH_NATIVE_CPU")}
