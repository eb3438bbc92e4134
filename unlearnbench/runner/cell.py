"""What a method cell and a reference job do: unlearn and evaluate, or evaluate a reference.

``python -m unlearnbench.runner.cell <cell.json>`` runs one such job in its own process
(``runner.jobs.execute``) — a crash, an OOM or a NaN in one cell cannot take the grid down,
and DDP (which re-executes ``sys.argv``) re-runs this same command on every rank. Whatever
happens, a result is written atomically: ``ok`` with the summary, or ``failed`` with the
error and the traceback's tail.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import torch

from unlearnbench.eval.references import cached_eval, evaluate_checkpoint, reference_by_name
from unlearnbench.parallel import barrier, is_rank_zero
from unlearnbench.registry import methods
from unlearnbench.runner.jobs import Job, context, described, execute, write_items
from unlearnbench.runner.memory import model_shape, plan


def run_reference(job: Job, cell_dir: Path) -> dict:
    """Evaluate a reference model (target, retain, ...) once for the grid."""
    bench, spec, compare = context(job)
    ref = reference_by_name(bench, job.method)
    if ref.name == bench.compare_to:
        summary, records = compare  # a model against itself says nothing: evaluated alone
    else:
        ckpt = bench.checkpoint(spec, ref.role, bench.eval_split(job.split), ref.seed)
        summary, records = cached_eval(ckpt, spec, bench, job.split, reference=compare,
                                       options=job.eval_options)
    write_items(cell_dir, records)
    reference = None if ref.name == bench.compare_to else compare
    return {"summary": summary, "cost": summary.get("cost", {}), "eval_split": bench.eval_split(job.split),
            **described(bench, summary, job, records, reference)}


def start_model(job: Job, cell_dir: Path) -> str | None:
    """The model a sequential chain's step starts from: the previous step's unlearned model."""
    prev = job.config.get("start_from")
    if not prev:
        return None
    model = cell_dir.parent / prev / "work" / "model"
    if not (model / "config.json").exists():
        raise FileNotFoundError(f"chain step {job.split!r} starts from the model of cell {prev!r}, "
                                f"which is not at {model}; run the grid again (it re-runs that step)")
    return str(model)


def run_method(job: Job, cell_dir: Path) -> dict:
    """Unlearn the cell's target (or a chain's previous model) with its method, then evaluate."""
    # Lightning loads in a method cell only: a reference or an attack job never trains.
    from unlearnbench.runner.train import unlearn

    cell = job.config
    bench, spec, compare = context(job)
    work = cell_dir / "work"
    params, placement = place(job, job.method_params, cell_dir, bench, spec)
    periodic = None
    if job.params.get("eval_every") is not None:  # evaluation during unlearning (its keep: too)
        from unlearnbench.runner import periodic_eval

        periodic = periodic_eval.callback_for(cell, cell_dir, bench, spec, compare, start_model(job, cell_dir))
    info = unlearn(job.method, spec, bench, split=job.split,
                   out_dir=work, seed=cell["seed"], params=params,
                   strategy=(placement or {}).get("strategy", cell["strategy"]), devices=cell["devices"],
                   num_nodes=cell["num_nodes"], start=start_model(job, cell_dir),
                   logger=cell.get("logger"), log_dir=cell_dir / "logs", callbacks=[periodic] if periodic else None)
    barrier()  # rank 0 saved the model; every rank evaluates its share of the items
    last = None
    if periodic is not None and periodic.best is not None and periodic.kept_step() != info["steps"]:
        # The last model on the test items too, for the leaderboard's best-against-last table.
        summary, records = evaluate_checkpoint(str(work / "model"), spec, bench, job.split,
                                               reference=compare, options=job.eval_options)
        last = {"step": info["steps"], "eval_wall_time_s": summary.get("cost", {}).get("wall_time_s"),
                "metrics": described(bench, summary, job, records, compare)["metrics"]}
    if periodic is not None:
        periodic.adopt_best(work)  # keep: best -> the test items see the kept checkpoint
    summary, records = evaluate_checkpoint(str(work / "model"), spec, bench, job.split,
                                           reference=compare, options=job.eval_options)
    cost = dict(info["cost"])
    cost["eval_wall_time_s"] = summary.get("cost", {}).get("wall_time_s")
    cost["eval_cpu_time_s"] = summary.get("cost", {}).get("cpu_time_s")
    during = periodic.summary() if periodic is not None else {}
    if periodic is not None:
        cost["periodic_eval_wall_time_s"] = during.pop("periodic_eval_wall_time_s")
        cost["periodic_eval_cpu_time_s"] = during.pop("periodic_eval_cpu_time_s")
        cost["keep_save_wall_time_s"] = periodic.save_wall_time_s
        if periodic.best is not None:  # the kept step's test numbers are the cell's; the last step's apart
            during["last"] = last or {"step": info["steps"], "same_as_kept": True}
    if is_rank_zero():
        write_items(cell_dir, records)
        if (work / "history.csv").exists():
            shutil.move(str(work / "history.csv"), str(cell_dir / "history.csv"))
        if not cell.get("keep_model"):
            shutil.rmtree(work / "model", ignore_errors=True)
    return {"summary": summary, "cost": cost, "history_file": "history.csv", "target": info["target"],
            "batching": info["batching"], "placement": placement, "eval_split": bench.eval_split(job.split),
            **during, **described(bench, summary, job, records, compare)}


def place(job: Job, params: dict, cell_dir: Path, bench, spec) -> tuple[dict, dict | None]:
    """The cell's method ``params`` after the memory plan (a real model on GPUs only): LoRA when
    full fine-tuning cannot fit, a clear refusal when nothing can (runner.memory)."""
    params = dict(params)
    if spec.is_tiny or not torch.cuda.is_available():
        return params, None
    cell = job.config
    source = start_model(job, cell_dir) or bench.checkpoint(spec, "target", job.split)
    devices = torch.cuda.device_count() if cell.get("devices") == -1 else max(1, int(cell.get("devices", 1)))
    world = devices * int(cell.get("num_nodes", 1))
    strategy = cell.get("strategy")
    out = plan(methods.get(job.method), params, model_shape(source),
               device_bytes=torch.cuda.get_device_properties(0).total_memory, world=world,
               sharded=strategy in ("fsdp", "fsdp1"))
    placement = {k: v for k, v in out.items() if k != "params"}
    if out["lora_fallback"] and strategy in ("fsdp", "fsdp1"):
        # LoRA adapters are small: replicated (DDP, or one device) rather than sharded.
        placement["strategy"] = "ddp" if world > 1 else "single"
    return out["params"], placement


if __name__ == "__main__":
    sys.exit(execute(sys.argv[1]))
