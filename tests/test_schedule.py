"""Which grid jobs may start, how many at once, and the lock that lets two of them need the
same tiny model (runner.schedule, models.tiny); the end-to-end equality of side-by-side and
one-at-a-time runs is tests/test_runner.py's."""

from __future__ import annotations

import threading
import time

import pytest

from unlearnbench import cli
from unlearnbench.models.tiny import _build_atomically
from unlearnbench.numerics import cpu_threads
from unlearnbench.runner import schedule
from unlearnbench.runner.jobs import Job


def job(kind: str, cid: str, **extra) -> Job:
    return Job.from_json({"cell_id": cid, "kind": kind, **extra})


def test_attacks_wait_for_their_cell_chains_for_their_step_and_cells_for_the_references():
    jobs = [job("ref", "target"), job("ref", "retain"),
            job("attack", "target__relearn", parent="target", parent_kind="ref"),
            job("cell", "ga"), job("attack", "ga__quant4", parent="ga", parent_kind="cell"),
            job("cell", "ga-step2", start_from="ga"),
            job("cell", "npo", start_from="npo-done-earlier")]
    deps = schedule.dependencies(jobs)
    assert deps["target"] == set() and deps["retain"] == set()
    assert deps["target__relearn"] == {"target"}
    assert deps["ga"] == {"target", "retain"}
    assert deps["ga__quant4"] == {"ga"}
    assert deps["ga-step2"] == {"ga", "target", "retain"}
    assert deps["npo"] == {"target", "retain"}  # a step already done is nothing to wait for


def test_one_job_per_core_for_tiny_models_on_a_cpu_else_one(monkeypatch):
    monkeypatch.setattr(schedule, "_has_accelerator", lambda: False)
    monkeypatch.setattr(schedule, "usable_cores", lambda: 8)
    monkeypatch.delenv("UNLEARNBENCH_CPU_THREADS", raising=False)
    tiny = {"model": "tiny", "strategy": "single", "devices": 1}
    assert schedule.default_workers([tiny, tiny]) == 8
    monkeypatch.setenv("UNLEARNBENCH_CPU_THREADS", "2")
    assert schedule.default_workers([tiny]) == 4
    assert schedule.default_workers([tiny, {**tiny, "strategy": "ddp", "devices": 2}]) == 1
    assert schedule.default_workers([tiny, {**tiny, "model": "llama2-7b"}]) == 1
    assert schedule.default_workers([]) == 1
    monkeypatch.setattr(schedule, "_has_accelerator", lambda: True)
    assert schedule.default_workers([tiny]) == 1


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_a_bad_thread_count_is_one_line_before_anything_runs(monkeypatch, capsys, value):
    monkeypatch.setenv("UNLEARNBENCH_CPU_THREADS", value)
    with pytest.raises(ValueError, match="UNLEARNBENCH_CPU_THREADS"):
        cpu_threads()
    assert cli.main(["grid", "benchmarks/default.yaml", "--out", "/nonexistent/never-written"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "UNLEARNBENCH_CPU_THREADS" in err and "whole number" in err


def test_jobs_below_one_are_refused(capsys):
    assert cli.main(["grid", "benchmarks/default.yaml", "--jobs", "0", "--out", "/nonexistent/x"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--jobs 0" in err


def test_a_model_two_jobs_need_at_once_is_built_once(tmp_path):
    builds: list[str] = []
    entered = threading.Event()

    def build(tmp):
        builds.append(threading.current_thread().name)
        entered.set()
        time.sleep(0.5)  # the second job asks while this build runs
        (tmp / "config.json").write_text("{}")

    out = tmp_path / "models" / "tiny-base-0123"
    first = threading.Thread(target=_build_atomically, args=(out, build), name="first")
    first.start()
    assert entered.wait(10)
    second = threading.Thread(target=_build_atomically, args=(out, build), name="second")
    second.start()
    first.join(10)
    second.join(10)
    assert builds == ["first"]
    assert (out / "config.json").exists()
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".") and not p.name.endswith(".lock")] == []


def test_a_tiny_model_is_built_on_the_pinned_thread_count_whatever_command_builds_it(tmp_path, monkeypatch):
    # `unlearnbench train`, `eval` or a script run on torch's default (a thread per core); a model
    # built there would differ from a grid job's and be cached under the same key.
    import torch

    monkeypatch.delenv("UNLEARNBENCH_NATIVE_CPU", raising=False)
    monkeypatch.setenv("UNLEARNBENCH_CPU_THREADS", "1")
    seen = []

    def build(tmp):
        seen.append(torch.get_num_threads())
        (tmp / "config.json").write_text("{}")

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        _build_atomically(tmp_path / "models" / "tiny-base-0456", build)
        assert seen == [1] and torch.get_num_threads() == 2  # pinned inside, restored after
    finally:
        torch.set_num_threads(before)
