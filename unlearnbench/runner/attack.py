"""One attack on one grid job, in its own process: attack the job's model, re-evaluate, write
``result.json``.

``python -m unlearnbench.runner.attack <attack.json>``. The attacked model is a method cell's
kept unlearned model (``work/model``) or a reference's checkpoint (target, retain: the
anchors). Whatever happens, a result is written atomically, like a cell's.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path

from unlearnbench.atomic import atomic_write_json
from unlearnbench.runner.cell import TRACEBACK_TAIL, _context, _described, _write_items


def attacked_source(job: dict, parent_dir: Path, bench, spec) -> str:
    """The checkpoint the attack starts from: the cell's unlearned model, or a reference's."""
    if job["parent_kind"] == "ref":
        return bench.checkpoint(spec, job["role"], bench.eval_split(job["split"]), job.get("ref_seed", 0))
    model = parent_dir / "work" / "model"
    if not (model / "config.json").exists():
        raise FileNotFoundError(f"attack {job['attack']!r} needs the unlearned model of {parent_dir.name}, "
                                f"which is not at {model}; run the grid again (it re-runs that cell)")
    return str(model)


def run_attack(job: dict, job_dir: Path) -> dict:
    import torch

    from unlearnbench.data.collate import encoder_for
    from unlearnbench.models.loading import load_model, load_tokenizer
    from unlearnbench.registry import attacks

    bench, spec, compare = _context(job)
    parent_dir = job_dir.parents[1]
    source = attacked_source(job, parent_dir, bench, spec)
    attack = attacks.get(job["attack"])(**job.get("attack_params", {}))
    torch.manual_seed(job.get("seed") or 0)
    tok = load_tokenizer(source, spec)
    encoder = encoder_for(bench, spec, tok)
    device = f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else None
    # Attacks modify weights: fp32 on every device, as training does.
    model = load_model(source, spec, dtype=torch.float32, device=device)
    start = time.perf_counter()
    model = attack.apply(model, tokenizer=tok, encoder=encoder, bench=bench, split=job["split"], spec=spec,
                         seed=int(job.get("seed") or 0), source=source)
    attack_time = time.perf_counter() - start
    options = bench.check_eval_options(dict(job["eval"]))

    def models(role: str, seed: int = 0):
        return load_model(bench.checkpoint(spec, role, job["split"], seed), spec, device=device)

    summary, records = bench.evaluate(model.eval(), encoder, job["split"], reference=compare, models=models, **options)
    _write_items(job_dir, records)
    cost = dict(summary.get("cost", {}))
    cost["attack_wall_time_s"] = attack_time
    return {"summary": summary, "cost": cost, "source": source, "attack_backend": getattr(attack, "used", None),
            "eval_split": bench.eval_split(job["split"]), **_described(bench, summary, job, records, compare)}


def execute(job_file: str | Path) -> int:
    from unlearnbench.numerics import pin_threads
    from unlearnbench.registry import load_plugin
    from unlearnbench.runner.provenance import provenance

    pin_threads()  # the same floats on any machine, whatever its core count (numerics)
    job_file = Path(job_file)
    job = json.loads(job_file.read_text())
    job_dir = job_file.parent
    base = {"cell_id": job["cell_id"], "kind": "attack", "attack": job["attack"], "parent": job["parent"],
            "method": job.get("method"), "method_label": job.get("label"), "benchmark": job["benchmark"],
            "split": job["split"], "model": job["model"], "seed": job.get("seed"), "config": job}
    start = time.time()
    try:
        for plugin in job.get("plugins", []):
            load_plugin(plugin)
        result = {**base, "status": "ok", "error": None, **run_attack(job, job_dir)}
    except BaseException as exc:  # noqa: BLE001 — any failure is recorded, never lost
        result = {**base, "status": "failed", "error": f"{type(exc).__name__}: {exc}",
                  "traceback": traceback.format_exc()[-TRACEBACK_TAIL:]}
        if isinstance(exc, KeyboardInterrupt):
            raise
    result["elapsed_s"] = time.time() - start
    result["provenance"] = provenance()
    atomic_write_json(job_dir / "result.json", result)
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(execute(sys.argv[1]))
