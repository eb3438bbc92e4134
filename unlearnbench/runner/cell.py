"""One grid cell, run in its own process: unlearn, evaluate, write ``result.json``.

``python -m unlearnbench.runner.cell <cell.json>`` — a crash, an OOM or a NaN in one cell
cannot take the grid down, and DDP (which re-executes ``sys.argv``) re-runs this same
command on every rank. Whatever happens, a result is written atomically: ``ok`` with the
summary, or ``failed`` with the error and the traceback's tail.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
import traceback
from pathlib import Path

from unlearnbench.report.atomic import atomic_write_json

TRACEBACK_TAIL = 4000


def _is_rank_zero() -> bool:
    import torch

    dist = torch.distributed
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def _datamodule(cell: dict):
    from unlearnbench.cli import make_datamodule

    return make_datamodule(cell["benchmark"], cell["split"], cell.get("data_dir"))


def run_reference(cell: dict, cell_dir: Path) -> dict:
    """Evaluate a reference model (target, retain, retain-seed2) once for the grid."""
    from unlearnbench.eval.references import cached_eval, retain_reference
    from unlearnbench.models.loading import resolve_checkpoint
    from unlearnbench.models.specs import ModelSpec

    spec = ModelSpec.from_name(cell["model"])
    dm = _datamodule(cell)
    ref = retain_reference(spec, dm, 0, eval_kwargs=cell["eval"])
    role, seed = cell["role"], cell.get("ref_seed", 0)
    if role == "retain" and seed == 0:
        summary, records = dict(ref[0]), ref[1]
        summary.pop("forget_quality", None)  # a model against itself says nothing
        summary.pop("log10_forget_quality", None)
    else:
        ckpt = resolve_checkpoint(spec, role, cell["split"], seed)
        summary, records = cached_eval(ckpt, spec, dm, retain_ref=ref, eval_kwargs=cell["eval"])
    _write_items(cell_dir, records)
    return {"summary": summary, "cost": summary.get("cost", {})}


def run_method(cell: dict, cell_dir: Path) -> dict:
    """Unlearn the cell's target with its method, then evaluate the result."""
    from unlearnbench.eval.references import evaluate_checkpoint, retain_reference, retain_truth_ratios
    from unlearnbench.methods.train import unlearn
    from unlearnbench.models.specs import ModelSpec

    spec = ModelSpec.from_name(cell["model"])
    work = cell_dir / "work"
    dm = _datamodule(cell)
    # Before training, so before DDP/FSDP re-launch this command on the other ranks:
    # rank 0 evaluates (or finds) the retain reference alone and the others find it cached.
    ref = retain_reference(spec, dm, 0, eval_kwargs=cell["eval"])
    info = unlearn(cell["method"], spec, benchmark=cell["benchmark"], split=cell["split"],
                   out_dir=work, seed=cell["seed"], params=cell["params"],
                   strategy=cell["strategy"], devices=cell["devices"], num_nodes=cell["num_nodes"],
                   data_dir=cell.get("data_dir"))
    _barrier()  # rank 0 saved the model; every rank evaluates its share of the items
    summary, records = evaluate_checkpoint(
        str(work / "model"), spec, dm, retain_truth_ratios=retain_truth_ratios(ref),
        retain_mia_auc=ref[0].get("mia", {}).get("min_k"), eval_kwargs=cell["eval"])
    cost = dict(info["cost"])
    cost["eval_wall_time_s"] = summary.get("cost", {}).get("wall_time_s")
    if _is_rank_zero():
        _write_items(cell_dir, records)
        if (work / "history.csv").exists():
            shutil.move(str(work / "history.csv"), str(cell_dir / "history.csv"))
        if not cell.get("keep_model"):
            shutil.rmtree(work / "model", ignore_errors=True)
    return {"summary": summary, "cost": cost, "history_file": "history.csv", "target": info["target"]}


def _barrier() -> None:
    import torch

    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _write_items(cell_dir: Path, records: list[dict]) -> None:
    from unlearnbench.report.atomic import atomic_write_text

    atomic_write_text(cell_dir / "items.jsonl", "".join(json.dumps(r) + "\n" for r in records))


def execute(cell_file: str | Path) -> int:
    from unlearnbench.registry import load_plugin
    from unlearnbench.runner.provenance import provenance

    cell_file = Path(cell_file)
    cell = json.loads(cell_file.read_text())
    cell_dir = cell_file.parent
    base = {"cell_id": cell["cell_id"], "kind": cell.get("kind", "cell"),
            "method": cell.get("method"), "method_label": cell.get("label"),
            "benchmark": cell["benchmark"], "split": cell["split"], "model": cell["model"],
            "seed": cell.get("seed"), "config": cell}
    start = time.time()
    try:
        for plugin in cell.get("plugins", []):
            load_plugin(plugin)
        run = run_reference if cell.get("kind") == "ref" else run_method
        out = run(cell, cell_dir)
        result = {**base, "status": "ok", "error": None, **out}
    except BaseException as exc:  # noqa: BLE001 — any failure is recorded, never lost
        result = {**base, "status": "failed", "error": f"{type(exc).__name__}: {exc}",
                  "traceback": traceback.format_exc()[-TRACEBACK_TAIL:]}
        if isinstance(exc, KeyboardInterrupt):
            raise
    result["elapsed_s"] = time.time() - start
    if _is_rank_zero():
        result["provenance"] = provenance()
        atomic_write_json(cell_dir / "result.json", result)
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(execute(sys.argv[1]))
