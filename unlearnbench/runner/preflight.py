"""Before a grid's first job: does every model and data reference it will read resolve?

Without it a grid learns that a hub id cannot be reached from the first cell's loader, after
``huggingface_hub``'s retries (about 52 s per job offline, minutes for a grid), and a broken
local model directory from a traceback deep inside ``from_pretrained``. ``check_jobs`` looks
at each reference once, in well under a second per reference, and raises ``PreflightError``
with one line naming the first that does not resolve:

* a local model directory must hold a ``config.json`` that parses and names a ``model_type``,
  weights (``*.safetensors``, each with a readable safetensors header, or an index whose
  shards are all present), and a tokenizer (``tokenizer.json``, ``tokenizer.model`` or GPT-2's
  ``vocab.json`` + ``merges.txt``);
* a hub id (model or dataset) must be in the local Hugging Face cache, or the hub must be
  reachable: with ``HF_HUB_OFFLINE`` set it is refused at once, otherwise one TCP connection to
  the hub's host (3 s timeout) decides;
* a local data directory must exist (its layout is the benchmark's loader's to check).

Tiny models and stand-in data are built by the harness and are not checked. A reference that
a benchmark cannot name at all (a local model without its retain checkpoint in
``unlearnbench.json``) is left to the cell, which fails alone with its own one-line message.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from unlearnbench.benchmarks.base import BenchmarkError, get_benchmark
from unlearnbench.errors import UserError
from unlearnbench.models.specs import ModelSpec
from unlearnbench.report.schema import Kind
from unlearnbench.runner.grid import GridError

if TYPE_CHECKING:
    from unlearnbench.runner.jobs import Job


class PreflightError(GridError):
    """A model or data reference of the grid does not resolve (one line; the CLI exits 2)."""


_TRUE = {"1", "true", "yes", "on"}
_NETWORK: dict[str, bool] = {}  # host -> reachable, asked once per process


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in _TRUE


def _hub_reachable(timeout: float = 3.0) -> bool:
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    if host not in _NETWORK:
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            _NETWORK[host] = True
        except OSError:
            _NETWORK[host] = False
    return _NETWORK[host]


def _in_hf_cache(repo: str, repo_type: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    name = "config.json" if repo_type == "model" else "README.md"
    try:
        return isinstance(try_to_load_from_cache(repo, name, repo_type=repo_type), str)
    except Exception:  # an id that is not a valid repo name
        return False


def check_hub(repo: str, repo_type: str, used_by: str) -> None:
    if _in_hf_cache(repo, repo_type):
        return
    if offline():
        raise PreflightError(f"{used_by} needs the hub {repo_type} {repo!r}, but HF_HUB_OFFLINE is set and it is "
                             "not in the local Hugging Face cache: download it first, or give a local directory")
    if not _hub_reachable():
        raise PreflightError(f"{used_by} needs the hub {repo_type} {repo!r}, but the hub cannot be reached "
                             "(no network) and it is not in the local Hugging Face cache: download it first, "
                             "or give a local directory")


def check_model_dir(path: Path, used_by: str) -> None:
    """A local model directory, whole (``models.local.check_model_dir``), named with its job."""
    from unlearnbench.models.local import check_model_dir as check_local

    try:
        check_local(path)
    except UserError as exc:
        raise PreflightError(f"{used_by}: {exc}") from None


def check_model(ref: str, used_by: str) -> None:
    from unlearnbench.registry import models

    if ref in models:  # a registered name, e.g. a local fine-tune's recorded base
        spec = models.get(ref)
        if spec.is_tiny or not spec.hub_id:
            return
        ref = spec.hub_id
    path = Path(ref).expanduser()
    if path.is_dir():
        return check_model_dir(path, used_by)
    if ref.startswith(("/", "./", "../", "~")) or ref.count("/") != 1:
        raise PreflightError(f"{used_by}: model {ref!r} is neither an existing directory nor a hub id (owner/name)")
    check_hub(ref, "model", used_by)


def check_data(bench, used_by: str) -> None:
    if bench.recipe() is not None or not bench.path:  # a stand-in: the harness writes it
        return
    path = Path(str(bench.path)).expanduser()
    if path.exists():
        return
    if str(bench.path).startswith(("/", "./", "../", "~")) or str(bench.path).count("/") != 1:
        raise PreflightError(f"{used_by}: data directory {bench.path} does not exist")
    check_hub(str(bench.path), "dataset", used_by)


def _roles(job: Job) -> list[tuple[str, int]]:
    if job.kind is Kind.REF:
        return [(job.config["role"], int(job.config.get("ref_seed", 0)))]
    if job.config.get("start_from"):  # a chain step starts from the previous step's model
        return []
    return [("target", 0)]


class Benchmarks:
    """The grid's benchmarks, each built once from its (name, data directory): a stand-in's data
    is generated (or found) on first use. The checks, the data keys of the results and the
    jobs' inputs all read these."""

    def __init__(self) -> None:
        self._built: dict = {}
        self._inputs: dict = {}

    def get(self, name: str, data_dir: str | None):
        if (name, data_dir) not in self._built:
            self._built[(name, data_dir)] = get_benchmark(name, data_dir)
        return self._built[(name, data_dir)]

    def with_inputs(self, job: Job) -> Job:
        """``job`` with what it reads resolved here (``Benchmark.inputs``, once per benchmark, data
        directory, model and split), or unchanged where its benchmark or model does not resolve:
        its own process then fails on it with its own one-line error in its result."""
        key = (job.benchmark, job.data_dir, job.model, job.split)
        if key not in self._inputs:
            try:
                bench = self.get(job.benchmark, job.data_dir)
                self._inputs[key] = bench.inputs(ModelSpec.from_name(job.model), job.split)
            except (UserError, OSError, KeyError, ValueError):
                self._inputs[key] = None
        return job.with_inputs(self._inputs[key])


def check_jobs(jobs: list[Job], benches: Benchmarks | None = None) -> int:
    """Check every reference of ``jobs`` (of ``runner.run.plan``); the number checked."""
    benches = benches or Benchmarks()
    seen: set = set()
    for job in jobs:
        if job.kind is Kind.ATTACK:
            continue  # attacks read the models their parent jobs wrote
        bench = benches.get(job.benchmark, job.data_dir)
        used_by = job.id
        if ("data", bench.name, str(bench.path)) not in seen:
            seen.add(("data", bench.name, str(bench.path)))
            check_data(bench, used_by)
        spec = ModelSpec.from_name(job.config["model"])
        if spec.is_tiny:
            continue
        for role, seed in _roles(job):
            try:
                ref = bench.checkpoint(spec, role, bench.eval_split(job.config["split"]), seed)
            except BenchmarkError:
                continue  # the cell reports it in its own line
            if ("model", ref) not in seen:
                seen.add(("model", ref))
                check_model(ref, used_by)
    return len(seen)
