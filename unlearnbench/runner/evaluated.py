"""What every job that evaluates a model (a reference, a method cell, an attack) shares: its
context, what its result says besides the summary, and its per-item records.

Its own module so that an attack job (runner.attack) uses it without reaching into the
method cell's (runner.cell).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from unlearnbench.atomic import atomic_write_text
from unlearnbench.benchmarks.base import get_benchmark
from unlearnbench.eval.references import compare_reference
from unlearnbench.models.specs import ModelSpec
from unlearnbench.registry import benchmarks
from unlearnbench.runner.jobs import Job


def benchmark_of(job: Job):
    """The job's benchmark, built once: from what the grid resolved for it (``Job.inputs``), so
    that this process neither generates nor keys the stand-in again, or else by name."""
    inputs = job.inputs
    data = Path(inputs["data_path"]) if inputs else None
    if data is None or (data.is_absolute() and not data.exists()):  # no inputs, or a cache since wiped
        return get_benchmark(job.benchmark, job.data_dir)
    return benchmarks.get(job.benchmark)(path=inputs["data_path"]).pin(inputs)


def context(job: Job):
    """(benchmark, model spec, the compare-to reference's evaluation) of a job."""
    bench = benchmark_of(job)
    spec = ModelSpec.from_name(job.model)
    # Before training, so before DDP/FSDP re-launch this command on the other ranks:
    # rank 0 evaluates (or finds) the reference alone and the others find it cached.
    compare = compare_reference(bench, spec, job.split, options=job.eval_options)
    return bench, spec, compare


def described(bench, summary: dict, job: Job | None = None, records=None, compare=None) -> dict:
    """What the report needs besides the summary: flat metrics and the benchmark's columns.

    A grid that selects sweeps on validation items (``select``) reports the test items:
    ``metrics`` then come from them, ``validation_metrics`` from the validation items."""
    shared = {"benchmark_meta": benchmark_meta(bench), "data_key": bench.data_key()}
    if job is not None and job.select:
        options = job.eval_options
        test = bench.summarise_records(records, compare, "test", options)
        validation = bench.summarise_records(records, compare, "validation", options)
        return {"metrics": bench.metrics(test), "validation_metrics": bench.metrics(validation),
                "parts": {"test": test, "validation": validation}, **shared}
    return {"metrics": bench.metrics(summary), **shared}


def benchmark_meta(bench) -> dict:
    """The benchmark as the report reads it: its columns, trade-off axes, ranking rule, references."""
    return {"columns": bench.column_meta(), "tradeoff": bench.tradeoff,
            "headline_forget": bench.headline_forget,
            "ranking": asdict(bench.ranking) if bench.ranking else None,
            "references": [r.name for r in bench.references], "shape": bench.shape,
            "published": bench.published}


def write_items(cell_dir: Path, records: list[dict]) -> None:
    """``items.jsonl``: one evaluated item a line, for the report's per-job pages."""
    atomic_write_text(cell_dir / "items.jsonl", "".join(json.dumps(r) + "\n" for r in records))

