"""A grid job (a reference, a method cell, an attack) and the one way every job process runs.

A job is what its ``cell.json`` says: the grid writes the file, the job's process
(``python -m <Job.module> cell.json``, which DDP re-executes on every rank) reads it back,
and its ``result.json`` keeps it as ``config``. A later grid compares that ``config`` with
the job it would run now (``runner.run.cell_state``), so the dict a ``Job`` serialises to
must keep its keys and values: committed results stay ``done``.

``execute`` is the skeleton every kind shares: whatever the job does, its process leaves a
``result.json`` (``ok`` with what it measured, or ``failed`` with the error and the
traceback's tail), written atomically, once (rank zero).
"""

from __future__ import annotations

import datetime
import importlib
import importlib.metadata
import json
import platform
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from unlearnbench.benchmarks.base import get_benchmark
from unlearnbench.files import atomic_write_json, atomic_write_text
from unlearnbench.models.specs import ModelSpec
from unlearnbench.numerics import numeric_environment, pin_threads
from unlearnbench.registry import benchmarks, load_plugin
from unlearnbench.report.schema import Kind, Result, Status, failed_result, result_base

if TYPE_CHECKING:
    from unlearnbench.runner.grid import Cell

# The traceback's tail a failed result keeps: enough for the raising frames, small enough
# for a results directory of hundreds of jobs.
TRACEBACK_TAIL = 4000

# What each kind runs: the module its process is started as, and the function there that
# does the work (``(Job, job directory) -> what the result adds``). References
# and cells share the cell module so that a reference needs no Lightning.
_RUNS = {Kind.REF: ("unlearnbench.runner.cell", "run_reference"),
         Kind.CELL: ("unlearnbench.runner.cell", "run_method"),
         Kind.ATTACK: ("unlearnbench.runner.attack", "run_attack")}

INPUTS_FILE = "inputs.json"  # a job's inputs (Job.inputs), beside its cell.json

# The keys of a cell's ``params`` that are the runner's, not its method's: evaluation during
# unlearning and which checkpoint to keep (runner.eval_every parses and checks them).
RUNNER_PARAMS = ("eval_every", "keep")

# The parent's keys an attack job copies: what the attacked model and its evaluation need.
_ATTACK_KEEPS = ("benchmark", "split", "model", "seed", "method", "label", "role", "ref_seed", "eval",
                 "data_dir", "plugins", "params", "start_from", "select")


@dataclass(frozen=True)
class Job:
    """One job of a grid: its ``kind`` and its ``config`` (the cell.json dict, ``kind``
    included). Build it with ``reference``, ``method_cell``, ``attack`` or ``from_json``.

    ``inputs``: what the grid resolved for it once (``Benchmark.inputs``: its data directory and
    key, its tiny checkpoints' directories), so that its process builds its benchmark from them
    and derives none of them again. They name this machine's caches, which no committed result
    should: they travel in ``inputs.json`` beside ``cell.json``, never in it, and the grid
    removes the file when the job has ended (a job run again by hand resolves everything itself)."""

    kind: Kind
    config: dict
    inputs: dict | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if Kind.of(self.config) is not self.kind:
            raise ValueError(f"job {self.config.get('cell_id')!r}: kind {self.kind.value!r} but "
                             f"cell.json says {self.config.get('kind')!r}")

    # -- building ---------------------------------------------------------------------------
    @classmethod
    def from_json(cls, config: dict) -> Job:
        """The job a cell.json dict describes (no ``kind``: a method cell, the first format)."""
        return cls(Kind.of(config), config)

    @classmethod
    def read(cls, path: str | Path) -> Job:
        """The job of a cell.json, with the ``inputs.json`` beside it if there is one."""
        path = Path(path)
        inputs = path.with_name(INPUTS_FILE)
        return replace(cls.from_json(json.loads(path.read_text())),
                       inputs=json.loads(inputs.read_text()) if inputs.exists() else None)

    @classmethod
    def reference(cls, ref, order: int, cell: Cell, split: str, plugins: list[str]) -> Job:
        """Reference ``ref`` (a ``benchmarks.base.Reference``, the ``order``-th its benchmark
        declares) of the block of ``cell`` (benchmark, evaluated ``split``, model)."""
        return cls(Kind.REF, {
            "cell_id": f"{ref.name}__{cell.benchmark}-{split}__{Path(cell.model).name}",
            "kind": Kind.REF.value, "method": ref.name, "label": ref.name, "role": ref.role,
            "ref_seed": ref.seed, "ref_order": order, "benchmark": cell.benchmark, "split": split,
            "model": cell.model, "seed": ref.seed, "eval": cell.eval, "data_dir": cell.data_dir,
            "select": cell.select, "plugins": list(plugins)})

    @classmethod
    def method_cell(cls, cell: Cell, plugins: list[str]) -> Job:
        return cls(Kind.CELL, {**cell.as_dict(), "label": cell.label, "kind": Kind.CELL.value,
                               "plugins": list(plugins)})

    @classmethod
    def attack(cls, parent: Job, name: str, params: dict) -> Job:
        """Attack ``name`` on the model of ``parent`` (a reference or a method cell)."""
        return cls(Kind.ATTACK, {
            **{k: parent.config.get(k) for k in _ATTACK_KEEPS}, "cell_id": f"{parent.id}__{name}",
            "kind": Kind.ATTACK.value, "attack": name, "attack_params": dict(params), "parent": parent.id,
            "parent_kind": parent.kind.value})

    # -- what it is -------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self.config["cell_id"]

    @property
    def benchmark(self) -> str:
        return self.config["benchmark"]

    @property
    def data_dir(self) -> str | None:
        return self.config.get("data_dir")

    @property
    def method(self) -> str:
        """A cell's method, a reference's name (target, retain, ...), an attacked job's method."""
        return self.config["method"]

    @property
    def model(self) -> str:
        return self.config["model"]

    @property
    def split(self) -> str:
        return self.config["split"]

    @property
    def seed(self) -> int:
        return int(self.config.get("seed") or 0)

    @property
    def eval_options(self) -> dict:
        """The benchmark's evaluation options the grid set (``eval:``)."""
        return dict(self.config.get("eval") or {})

    @property
    def params(self) -> dict:
        return dict(self.config.get("params") or {})

    def with_inputs(self, inputs: dict | None) -> Job:
        return replace(self, inputs=inputs)

    @property
    def method_params(self) -> dict:
        """``params`` less the runner's own keys (``RUNNER_PARAMS``): what the method is built with."""
        return {k: v for k, v in self.params.items() if k not in RUNNER_PARAMS}

    @property
    def select(self) -> str | None:
        """``validation`` when the grid chooses sweep settings on validation items."""
        return self.config.get("select")

    @property
    def plugins(self) -> list[str]:
        return list(self.config.get("plugins") or [])

    @property
    def parent_kind(self) -> Kind | None:
        """An attack's parent's kind (``None`` for other jobs)."""
        value = self.config.get("parent_kind")
        return Kind(value) if value else None

    @property
    def model_source(self) -> str | None:
        """The id of the job whose kept unlearned model this one starts from: a chain step's
        previous step, an attack's method cell (a reference's checkpoint is not kept by a job)."""
        if self.config.get("start_from"):
            return self.config["start_from"]
        return self.config.get("parent") if self.parent_kind is Kind.CELL else None

    def reads(self) -> set[str]:
        """The ids of the jobs whose output this one reads (``runner.schedule``)."""
        return {i for i in (self.config.get("start_from"), self.config.get("parent")) if i}

    # -- running ----------------------------------------------------------------------------
    @property
    def module(self) -> str:
        """The module its process runs as: ``python -m <module> cell.json``."""
        return _RUNS[self.kind][0]

    def runner(self) -> Callable[[Job, Path], dict]:
        module, name = _RUNS[self.kind]
        return getattr(importlib.import_module(module), name)

    def to_json(self) -> dict:
        return self.config

    def write(self, job_dir: Path) -> None:
        """``cell.json``, and ``inputs.json`` with the job's inputs (removed when it has none)."""
        atomic_write_json(job_dir / "cell.json", self.to_json())
        if self.inputs:
            atomic_write_json(job_dir / INPUTS_FILE, self.inputs)
        else:
            (job_dir / INPUTS_FILE).unlink(missing_ok=True)

    # -- its results ------------------------------------------------------------------------
    def result_base(self) -> dict[str, Any]:
        return result_base(self.config)

    def failed(self, error: str | None, traceback: str = "", status: Status = Status.FAILED,
               reason: str | None = None) -> Result:
        return failed_result(self.config, error, traceback, status, reason)


def execute(job_file: str | Path) -> int:
    """Run the job of ``job_file`` (its cell.json) and write its ``result.json`` beside it;
    exit status 0 when ok. Every failure is recorded, except an interrupt: the grid that
    stopped the job removes what it left, and its next run computes the job again."""
    from unlearnbench.parallel import is_rank_zero  # torch: not imported by a grid's own process

    pin_threads()  # the same floats on any machine, whatever its core count (numerics)
    job_file = Path(job_file)
    job = Job.read(job_file)
    start = time.time()
    try:
        for plugin in job.plugins:
            load_plugin(plugin)
        out = job.runner()(job, job_file.parent)
        result = {**job.result_base(), "status": Status.OK.value, "error": None, **out}
    except BaseException as exc:  # noqa: BLE001 — any failure is recorded, never lost
        result = job.failed(f"{type(exc).__name__}: {exc}", traceback.format_exc()[-TRACEBACK_TAIL:])
        if isinstance(exc, KeyboardInterrupt):
            raise
    result["elapsed_s"] = time.time() - start
    if is_rank_zero():  # DDP runs this on every rank; one result
        # inputs_from_grid: whether the job read what its grid resolved (Job.inputs) or resolved it all itself.
        result["provenance"] = {**provenance(), "inputs_from_grid": job.inputs is not None}
        atomic_write_json(job_file.parent / "result.json", result)
    return 0 if result["status"] == Status.OK.value else 1



# -- what every job that evaluates a model (a reference, a method cell, an attack) shares -----
# its benchmark and context, what its result says besides the summary, and its per-item records
def benchmark_of(job: Job):
    """The job's benchmark, built once: from what the grid resolved for it (``Job.inputs``), so
    that this process neither generates nor keys the stand-in again, or else by name."""
    inputs = job.inputs
    # Not a local directory (a hub dataset: nothing to locate), or one wiped since: by name.
    if not inputs or not inputs["data_path"] or not Path(inputs["data_path"]).exists():
        return get_benchmark(job.benchmark, job.data_dir)
    return benchmarks.get(job.benchmark)(path=inputs["data_path"]).pin(inputs)


def context(job: Job):
    """(benchmark, model spec, the compare-to reference's evaluation) of a job."""
    bench = benchmark_of(job)
    spec = ModelSpec.from_name(job.model)
    from unlearnbench.eval.references import compare_reference  # torch: never in a grid's own process

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


# -- where a result came from ---------------------------------------------------------------
LIBRARIES = ("torch", "lightning", "transformers", "datasets", "tokenizers", "torchmetrics",
             "rouge-score", "sacrebleu", "scipy", "pandas", "peft", "lm-eval")


def git_commit() -> str | None:
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        dirty = subprocess.run(["git", "--no-optional-locks", "-C", str(root), "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() + ("+dirty" if dirty else "")) if out.returncode == 0 else None


def provenance() -> dict:
    """Where a result came from: versions, commit, device, world size, numerics, time."""
    import torch

    from unlearnbench import __version__
    from unlearnbench.parallel import rank_world

    versions = {}
    for lib in LIBRARIES:
        try:
            versions[lib] = importlib.metadata.version(lib)
        except importlib.metadata.PackageNotFoundError:
            versions[lib] = None
    world = rank_world()[1]
    device = (torch.cuda.get_device_name(0) if torch.cuda.is_available()
              else f"cpu ({platform.processor() or platform.machine()})")
    return {"unlearnbench": __version__, "git_commit": git_commit(), "libraries": versions,
            "python": platform.python_version(), "device": device, "world_size": world,
            "numerics": numeric_environment(),
            "host": platform.node(), "time": datetime.datetime.now(datetime.timezone.utc).isoformat()}


if __name__ == "__main__":
    sys.exit(execute(sys.argv[1]))
