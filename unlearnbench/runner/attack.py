"""What an attack job does: attack a grid job's model, then re-evaluate it.

``python -m unlearnbench.runner.attack <attack.json>`` runs one in its own process
(``runner.jobs.execute``, as every job: whatever happens, a result is written atomically).
The attacked model is a method cell's kept unlearned model (``work/model``) or a reference's
checkpoint (target, retain: the anchors).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from unlearnbench.report.schema import Kind
from unlearnbench.runner.jobs import Job, context, described, execute, write_items


def attacked_source(job: Job, parent_dir: Path, bench, spec) -> str:
    """The checkpoint the attack starts from: the cell's unlearned model, or a reference's."""
    if job.parent_kind is Kind.REF:
        return bench.checkpoint(spec, job.config["role"], bench.eval_split(job.split), job.config.get("ref_seed", 0))
    model = parent_dir / "work" / "model"
    if not (model / "config.json").exists():
        raise FileNotFoundError(f"attack {job.config['attack']!r} needs the unlearned model of {parent_dir.name}, "
                                f"which is not at {model}; run the grid again (it re-runs that cell)")
    return str(model)


def run_attack(job: Job, job_dir: Path) -> dict:
    """Attack the model of ``job``'s parent, then evaluate it as the parent was evaluated."""
    import torch

    from unlearnbench.data.collate import encoder_for
    from unlearnbench.models.specs import load_model, load_tokenizer
    from unlearnbench.registry import attacks

    bench, spec, compare = context(job)
    parent_dir = job_dir.parents[1]
    source = attacked_source(job, parent_dir, bench, spec)
    attack = attacks.get(job.config["attack"])(**job.config.get("attack_params", {}))
    torch.manual_seed(job.seed)
    tok = load_tokenizer(source, spec)
    encoder = encoder_for(bench, spec, tok)
    device = f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else None
    # Attacks modify weights: fp32 on every device, as training does.
    model = load_model(source, spec, dtype=torch.float32, device=device)
    start = time.perf_counter()
    model = attack.apply(model, tokenizer=tok, encoder=encoder, bench=bench, split=job.split, spec=spec,
                         seed=job.seed, source=source)
    attack_time = time.perf_counter() - start
    options = bench.check_eval_options(job.eval_options)

    def models(role: str, seed: int = 0):
        return load_model(bench.checkpoint(spec, role, job.split, seed), spec, device=device)

    summary, records = bench.evaluate(model.eval(), encoder, job.split, reference=compare, models=models, **options)
    write_items(job_dir, records)
    cost = dict(summary.get("cost", {}))
    cost["attack_wall_time_s"] = attack_time
    return {"summary": summary, "cost": cost, "source": source, "attack_backend": getattr(attack, "used", None),
            "eval_split": bench.eval_split(job.split), **described(bench, summary, job, records, compare)}


if __name__ == "__main__":
    sys.exit(execute(sys.argv[1]))
