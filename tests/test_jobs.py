"""The grid's job type (runner.jobs) and the result format (report.schema).

A committed results directory is compared with the grid by each job's cell.json
(``runner.run.cell_state``), so the dicts a ``Job`` writes are pinned here key by key, in
order (a regenerated directory stays byte-identical): the literals are the cell.json files of
results/default as the grid wrote them before the type existed.
"""

from __future__ import annotations

import json
import textwrap

import pytest

from unlearnbench.benchmarks.base import Reference
from unlearnbench.report.schema import Kind, Status, is_attack, is_cell, is_ref
from unlearnbench.runner.grid import Cell
from unlearnbench.runner.jobs import Job, execute

EVAL = {"batch_size": 32, "max_new_tokens": 200}
PARAMS = {"lr": 0.0003, "weight_decay": 0.01, "epochs": 5, "warmup_epochs": 1, "batch_size": 16, "grad_clip": 1.0}
CELL = Cell("altpo__tofu-synth-forget10__tiny__s42", "altpo", "altpo", "tofu-synth", "forget10", "tiny", 42,
            dict(PARAMS), eval=dict(EVAL), keep_model=True, entry="altpo")

REF_JSON = {"cell_id": "retain-seed2__tofu-synth-forget10__tiny", "kind": "ref", "method": "retain-seed2",
            "label": "retain-seed2", "role": "retain", "ref_seed": 1, "ref_order": 2, "benchmark": "tofu-synth",
            "split": "forget10", "model": "tiny", "seed": 1, "eval": EVAL, "data_dir": None, "select": False,
            "plugins": []}
CELL_JSON = {"cell_id": "altpo__tofu-synth-forget10__tiny__s42", "method": "altpo", "label": "altpo",
             "benchmark": "tofu-synth", "split": "forget10", "model": "tiny", "seed": 42, "params": PARAMS,
             "strategy": "single", "devices": 1, "num_nodes": 1, "eval": EVAL, "keep_model": True,
             "start_from": None, "chain": None, "step": None, "data_dir": None, "logger": {}, "select": False,
             "entry": "altpo", "kind": "cell", "plugins": []}
REF_ATTACK_JSON = {"benchmark": "tofu-synth", "split": "forget10", "model": "tiny", "seed": 1,
                   "method": "retain-seed2", "label": "retain-seed2", "role": "retain", "ref_seed": 1,
                   "eval": EVAL, "data_dir": None, "plugins": [], "params": None, "start_from": None,
                   "select": False, "cell_id": "retain-seed2__tofu-synth-forget10__tiny__relearn",
                   "kind": "attack", "attack": "relearn", "attack_params": {},
                   "parent": "retain-seed2__tofu-synth-forget10__tiny", "parent_kind": "ref"}
CELL_ATTACK_JSON = {"benchmark": "tofu-synth", "split": "forget10", "model": "tiny", "seed": 42,
                    "method": "altpo", "label": "altpo", "role": None, "ref_seed": None, "eval": EVAL,
                    "data_dir": None, "plugins": [], "params": PARAMS, "start_from": None, "select": False,
                    "cell_id": "altpo__tofu-synth-forget10__tiny__s42__quant4", "kind": "attack",
                    "attack": "quant4", "attack_params": {}, "parent": "altpo__tofu-synth-forget10__tiny__s42",
                    "parent_kind": "cell"}


def _same_json(job: Job, expected: dict) -> None:
    assert json.dumps(job.to_json()) == json.dumps(expected)  # keys, values and their order


def test_each_kind_writes_the_cell_json_the_committed_results_hold():
    ref = Job.reference(Reference("retain-seed2", "retain", 1), 2, CELL, "forget10", [])
    cell = Job.method_cell(CELL, [])
    _same_json(ref, REF_JSON)
    _same_json(cell, CELL_JSON)
    _same_json(Job.attack(ref, "relearn", {}), REF_ATTACK_JSON)
    _same_json(Job.attack(cell, "quant4", {}), CELL_ATTACK_JSON)
    assert Job.from_json(json.loads(json.dumps(cell.to_json()))) == cell  # read back as written


def test_what_a_job_runs_and_reads():
    ref, cell = Job.from_json(REF_JSON), Job.from_json(CELL_JSON)
    attack, step = Job.from_json(CELL_ATTACK_JSON), Job.from_json({**CELL_JSON, "start_from": "altpo-1"})
    assert [j.module for j in (ref, cell, attack)] == ["unlearnbench.runner.cell"] * 2 + ["unlearnbench.runner.attack"]
    assert attack.reads() == {CELL.cell_id} and step.reads() == {"altpo-1"} and cell.reads() == set()
    # A chain step starts from its previous step's kept model, an attack from its cell's; an
    # attack on a reference reads a checkpoint no job keeps.
    assert attack.model_source == CELL.cell_id and step.model_source == "altpo-1"
    assert Job.from_json(REF_ATTACK_JSON).model_source is None and cell.model_source is None
    legacy = {k: v for k, v in CELL_JSON.items() if k != "kind"}  # the first results had no kind
    assert Job.from_json(legacy).kind is Kind.CELL
    with pytest.raises(ValueError, match="kind 'ref'"):
        Job(Kind.REF, CELL_JSON)


def test_a_failed_result_names_the_job_and_an_attack_names_what_it_attacked():
    failed = Job.from_json(CELL_JSON).failed("RuntimeError: boom", "Traceback ...")
    assert list(failed) == ["cell_id", "kind", "method", "method_label", "benchmark", "split", "model", "seed",
                            "config", "status", "error", "traceback"]
    assert failed["status"] == "failed" and failed["method_label"] == "altpo" and failed["config"] == CELL_JSON
    na = Job.from_json(CELL_ATTACK_JSON).failed(None, status=Status.NOT_APPLICABLE, reason="not applicable: x")
    assert (na["attack"], na["parent"], na["status"], na["error"], na["reason"]) == (
        "quant4", CELL.cell_id, "not_applicable", None, "not applicable: x")
    assert is_attack(na) and not is_cell(na) and is_ref(REF_JSON) and is_cell({"cell_id": "no kind"})
    assert not is_ref({"kind": "something else"})  # the report reads odd files without raising


@pytest.mark.parametrize("config", [CELL_JSON, CELL_ATTACK_JSON], ids=["cell", "attack"])
def test_every_kind_records_an_exception_as_a_failed_result(tmp_path, config):
    plugin = tmp_path / "broken_plugin.py"
    plugin.write_text(textwrap.dedent("""
        raise RuntimeError("this plugin is broken")
    """))
    job_dir = tmp_path / "job"
    Job.from_json({**config, "plugins": [str(plugin)]}).write(job_dir)
    assert execute(job_dir / "cell.json") == 1
    result = json.loads((job_dir / "result.json").read_text())
    assert result["status"] == "failed" and result["kind"] == config["kind"]
    assert "this plugin is broken" in result["error"] and "broken_plugin.py" in result["traceback"]
    assert result["elapsed_s"] >= 0 and result["provenance"]["unlearnbench"]
    assert result["config"]["plugins"] == [str(plugin)]
