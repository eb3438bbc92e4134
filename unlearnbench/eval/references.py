"""Evaluations of checkpoints, and of the reference models a benchmark declares, cached.

Forget quality compares a model's forget truth ratios with the retain model's, PrivLeak its
MIA AUC with the retrain model's: a benchmark's ``compare_to`` reference is evaluated once
by the harness itself and cached on disk under a key of everything it depends on.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from unlearnbench.data.collate import encoder_for
from unlearnbench.files import atomic_write_json, cache_root, dir_fingerprint
from unlearnbench.numerics import pinned_threads
from unlearnbench.parallel import initialized, is_rank_zero


def _key(**parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def evaluate_checkpoint(checkpoint: str, spec, bench, split: str, *, reference=None, options=None,
                        device=None) -> tuple[dict, list[dict]]:
    """Load ``checkpoint`` and run ``bench``'s evaluation of ``split`` on it.

    ``reference`` is the ``(summary, records)`` of the benchmark's ``compare_to`` reference;
    ``options`` the evaluation options (validated against the benchmark's).
    """
    import torch

    from unlearnbench.models.specs import load_model, load_tokenizer

    options = bench.check_eval_options(dict(options or {}))
    if device is None and torch.cuda.is_available():
        device = f"cuda:{torch.cuda.current_device()}"  # each DDP rank's own GPU
    tok = load_tokenizer(checkpoint, spec)
    model = load_model(checkpoint, spec, dtype=bench.eval_dtype(options), device=device)

    def models(role: str, seed: int = 0):
        return load_model(bench.checkpoint(spec, role, split, seed), spec, device=device)

    return bench.evaluate(model, encoder_for(bench, spec, tok), split, reference=reference,
                          models=models, **options)


def cached_eval(checkpoint: str, spec, bench, split: str, *, reference=None, options=None,
                device=None) -> tuple[dict, list[dict]]:
    """``evaluate_checkpoint`` memoised on disk (checkpoint files, data, split, options, reference)."""
    from unlearnbench import __version__

    key = _key(ckpt=str(checkpoint), files=dir_fingerprint(checkpoint), **bench.fingerprint(split), version=__version__,
               template=bench.template_for(spec), eval=bench.check_eval_options(dict(options or {})),
               reference=reference[0].get("reference_key") if reference else None)
    path = cache_root() / "evals" / f"{key}.json"
    blob = _read_on_rank_zero(path)
    if blob is not None:
        return blob["summary"], blob["records"]
    with pinned_threads():  # cached and read by every later job: not on this command's thread count
        summary, records = evaluate_checkpoint(checkpoint, spec, bench, split, reference=reference,
                                               options=options, device=device)
    summary["reference_key"] = key
    if is_rank_zero():  # every rank holds the same gathered records; one writer
        atomic_write_json(path, {"summary": summary, "records": records})
    return summary, records


def _read_on_rank_zero(path: Path) -> dict | None:
    """The cached blob as rank 0 sees it, on every rank.

    Ranks must agree on hit or miss (a miss is a collective evaluation), and another
    process may write the file between two ranks' looks, or ranks may not share a disk.
    """
    import torch

    dist = torch.distributed
    if not initialized():
        return json.loads(path.read_text()) if path.exists() else None
    blob = [json.loads(path.read_text()) if dist.get_rank() == 0 and path.exists() else None]
    dist.broadcast_object_list(blob, src=0)
    return blob[0]


def compare_reference(bench, spec, split: str, options=None, device=None):
    """``(summary, records)`` of the reference every evaluation of ``bench`` is scored against
    (TOFU: the retain model), computed once and cached; ``None`` when it has none."""
    if bench.compare_to is None:
        return None
    ref = reference_by_name(bench, bench.compare_to)
    ckpt = bench.checkpoint(spec, ref.role, bench.eval_split(split), ref.seed)
    return cached_eval(ckpt, spec, bench, split, options=options, device=device)


def reference_by_name(bench, name: str):
    for ref in bench.references:
        if ref.name == name:
            return ref
    raise ValueError(f"benchmark {bench.name!r} has no reference {name!r}; "
                     f"it has {[r.name for r in bench.references]}")
