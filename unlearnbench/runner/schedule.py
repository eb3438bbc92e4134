"""How many of a grid's jobs run at once, and which may start.

Each job (a reference, a cell, an attack) is its own process running a fixed number of
intra-op threads (``numerics.cpu_threads``, default 1), so its floats do not depend on the
machine's core count. A tiny model cannot keep more than one core busy, so on a CPU the grid
runs several such processes side by side, one per core. Jobs that need a whole accelerator,
several processes (DDP / FSDP) or a real model's memory run one at a time unless ``--jobs``
says otherwise.

A job waits for what it reads: an attack for its cell's model, a chained step for the
previous step's model, and every method cell for the references, whose evaluation it compares
against (and whose first job builds the tiny family that the cells load).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from unlearnbench.report.schema import Kind

if TYPE_CHECKING:
    from unlearnbench.runner.jobs import Job


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_workers(cells: list[dict]) -> int:
    """Jobs at once when the user does not say: cores / threads per job for single-process
    jobs on tiny models without an accelerator, else 1."""
    from unlearnbench.numerics import cpu_threads

    if not cells or _has_accelerator():
        return 1
    for cell in cells:
        if cell.get("strategy", "single") != "single" or cell.get("devices", 1) not in (1, None):
            return 1
        if not _is_tiny(cell.get("model")):
            return 1
    return max(1, usable_cores() // cpu_threads())


def _has_accelerator() -> bool:
    import torch

    return torch.cuda.is_available()


def _is_tiny(model) -> bool:
    from unlearnbench.registry import models

    return isinstance(model, str) and model in models and models.get(model).is_tiny


def dependencies(jobs: list[Job]) -> dict[str, set[str]]:
    """``job id -> ids it waits for`` among ``jobs`` (in plan order); a job outside ``jobs``
    is already done, so nothing waits for it."""
    ids = {job.id for job in jobs}
    refs = {job.id for job in jobs if job.kind is Kind.REF}
    deps = {}
    for job in jobs:
        needs = job.reads() & ids
        if job.kind is Kind.CELL:
            needs |= refs
        deps[job.id] = needs
    return deps
