"""What a grid resolves once for each job (``Benchmark.inputs``, written to the job's
``inputs.json``) and how the job's process uses it: its benchmark built once from them, nothing
of the stand-in located, generated or keyed again, and a job without them (or whose cache was
wiped since) resolving everything itself as before."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml

from unlearnbench.benchmarks import base
from unlearnbench.benchmarks.tofu import TofuSynthBenchmark
from unlearnbench.models.specs import ModelSpec
from unlearnbench.models.tiny import TinyFamily
from unlearnbench.runner.grid import parse_grid
from unlearnbench.runner.jobs import Job, benchmark_of
from unlearnbench.runner.preflight import Benchmarks, check_jobs
from unlearnbench.runner.run import plan


def test_inputs_name_the_checkpoints_where_the_tiny_family_builds_them(tiny_family):
    bench, spec = TofuSynthBenchmark(), tiny_family["spec"]
    inputs = bench.inputs(spec, "forget10")
    assert inputs["data_path"] == bench.path
    assert inputs["data_key"] == bench.data_key() == "825814c6be66"
    checkpoints = inputs["checkpoints"]
    assert checkpoints["tiny-test/target/forget10/0"] == tiny_family["target"]
    assert checkpoints["tiny-test/retain/forget10/0"] == tiny_family["retain"]


def test_a_pinned_benchmark_derives_nothing_of_the_stand_in_again(tiny_family, monkeypatch):
    spec = tiny_family["spec"]
    inputs = TofuSynthBenchmark().inputs(spec, "forget10")
    pinned = TofuSynthBenchmark(path=inputs["data_path"]).pin(inputs)
    monkeypatch.setattr(TofuSynthBenchmark, "recipe", lambda self: pytest.fail("the recipe was derived again"))
    monkeypatch.setattr(TofuSynthBenchmark, "default_path", lambda self: pytest.fail("the stand-in was located again"))
    assert pinned.data_key() == "825814c6be66"
    assert pinned.checkpoint(spec, "target", "forget10") == tiny_family["target"]
    assert pinned.checkpoint(spec, "retain", "forget10", 0) == tiny_family["retain"]


def test_a_pinned_checkpoint_not_built_yet_is_resolved_as_without_inputs(tiny_family, tmp_path, monkeypatch):
    # The family's first job builds it: the pin is a path, not a promise that it exists.
    spec = tiny_family["spec"]
    inputs = {"data_path": TofuSynthBenchmark().path, "data_key": "825814c6be66",
              "checkpoints": {"tiny-test/target/forget10/0": str(tmp_path / "not-built")}}
    monkeypatch.setattr(TinyFamily, "checkpoint", lambda self, role, split, seed=0: f"built {role} {split} {seed}")
    pinned = TofuSynthBenchmark().pin(inputs)
    assert pinned.checkpoint(spec, "target", "forget10") == "built target forget10 0"


def test_a_job_builds_its_benchmark_from_its_inputs_or_else_by_name(tmp_path, monkeypatch):
    built = []
    monkeypatch.setattr("unlearnbench.runner.jobs.get_benchmark",
                        lambda name, data_dir=None: built.append((name, data_dir)) or "by name")
    config = {"cell_id": "c", "kind": "ref", "benchmark": "tofu-synth", "split": "forget01", "model": "tiny-test",
              "data_dir": None}
    data = tmp_path / "data"
    data.mkdir()
    inputs = {"data_path": str(data), "data_key": "k", "checkpoints": {}}
    bench = benchmark_of(Job.from_json(config).with_inputs(inputs))
    assert isinstance(bench, TofuSynthBenchmark) and bench.path == str(data) and bench.data_key() == "k"
    assert built == []
    # Without inputs, or with a data directory that is gone (a cache wiped since): by name.
    assert benchmark_of(Job.from_json(config)) == "by name"
    gone = {**inputs, "data_path": str(tmp_path / "gone")}
    assert benchmark_of(Job.from_json(config).with_inputs(gone)) == "by name"
    assert built == [("tofu-synth", None)] * 2


def test_inputs_travel_beside_the_cell_json_which_stays_as_committed(tmp_path):
    config = {"cell_id": "c", "kind": "ref", "benchmark": "tofu-synth", "split": "forget01", "model": "tiny-test"}
    inputs = {"data_path": "/somewhere", "data_key": "k", "checkpoints": {"tiny-test/target/forget01/0": "/m"}}
    Job.from_json(config).with_inputs(inputs).write(tmp_path)
    assert json.loads((tmp_path / "cell.json").read_text()) == config  # no machine's paths in it
    again = Job.read(tmp_path / "cell.json")
    assert again.config == config and again.inputs == inputs
    Job.from_json(config).write(tmp_path)  # a job written without inputs leaves none behind
    assert Job.read(tmp_path / "cell.json").inputs is None


GRID = textwrap.dedent("""\
    name: once
    benchmark: tofu-synth
    splits: [forget01]
    models: [tiny-test]
    seeds: [1, 2]
    defaults: {lr: 1.0e-3, epochs: 1, batch_size: 4}
    methods: [ga, npo]
""")


def test_the_grid_builds_each_benchmark_once_for_every_use(tiny_family, tmp_path, monkeypatch):
    grid = parse_grid(yaml.safe_load(GRID))
    real, calls = base.get_benchmark, []
    monkeypatch.setattr("unlearnbench.runner.preflight.get_benchmark",
                        lambda name, data_dir=None: calls.append(name) or real(name, data_dir))
    first = plan(grid, tmp_path)[0]  # a result on disk: planning reads the data keys too
    first.dir.mkdir(parents=True)
    (first.dir / "result.json").write_text(json.dumps({"status": "ok", "config": first.job.config}))
    benches = Benchmarks()
    calls.clear()
    jobs = [p.job for p in plan(grid, tmp_path, benches=benches)]
    check_jobs(jobs, benches)
    resolved = [benches.with_inputs(job) for job in jobs]
    assert len(jobs) > 4 and calls == ["tofu-synth"]
    assert all(job.inputs and job.inputs["data_key"] == "825814c6be66" for job in resolved)


STAND_INS = ("tofu-synth", "wmdp-synth", "muse-synth", "copyright-synth", "harmful-synth", "halueval-synth",
             "detox-synth")


@pytest.mark.parametrize("name", STAND_INS)
def test_each_stand_in_built_from_its_inputs_is_the_one_built_by_name(name, tmp_path, monkeypatch):
    """The job's benchmark (its class at the resolved path, pinned) against the grid's (by name):
    same data, config, data key and, for every role a job loads, the same checkpoint."""
    monkeypatch.setenv("UNLEARNBENCH_CACHE", str(tmp_path))  # the fake checkpoints below stay here
    monkeypatch.setattr("unlearnbench.models.tiny._build_atomically", lambda out, build, label="": out)  # no training
    spec = ModelSpec.from_name("tiny-test")
    by_name = base.get_benchmark(name)
    split = by_name.default_split
    inputs = by_name.inputs(spec, split)
    at_path = type(by_name)(path=inputs["data_path"])
    assert at_path.path == by_name.path and at_path.synth == by_name.synth
    assert at_path.data_key() == by_name.data_key() == inputs["data_key"]
    assert at_path.recipe().data_key == by_name.recipe().data_key
    for directory in inputs["checkpoints"].values():  # as if the family's first job had built them
        Path(directory).mkdir(parents=True, exist_ok=True)
        (Path(directory) / "config.json").write_text("{}")
    pinned = at_path.pin(inputs)
    roles = {(r.role, r.seed) for r in by_name.references} | {("target", 0), ("base", 0)}
    for s in {split, by_name.eval_split(split)}:
        for role, seed in sorted(roles):
            assert pinned.checkpoint(spec, role, s, seed) == by_name.checkpoint(spec, role, s, seed), (role, s, seed)
