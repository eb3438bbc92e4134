"""Reference evaluations (target, retain, retain from another seed), computed once.

Forget quality compares a model's forget truth ratios with the retain model's; those are
computed by the harness itself and cached on disk under a key of everything they depend on.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from unlearnbench.paths import cache_root
from unlearnbench.report.atomic import atomic_write_json


def _key(**parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _fingerprint(checkpoint) -> list | None:
    """(file, size, mtime) of every file of a local checkpoint directory, so that a
    directory overwritten with another model (``eval --model DIR`` after re-running
    ``train --out DIR``) is a new cache entry; ``None`` for a hub id."""
    path = Path(str(checkpoint))
    if not path.is_dir():
        return None
    return sorted((str(f.relative_to(path)), f.stat().st_size, f.stat().st_mtime_ns)
                  for f in path.rglob("*") if f.is_file())


def evaluate_checkpoint(checkpoint: str, spec, datamodule, *, retain_truth_ratios=None,
                        retain_mia_auc=None, eval_kwargs=None, device=None):
    """Load ``checkpoint`` and run the TOFU suite on it."""
    from unlearnbench.data.collate import Encoder
    from unlearnbench.eval.tofu import evaluate_tofu
    from unlearnbench.models.loading import load_model, load_tokenizer

    import torch

    if device is None and torch.cuda.is_available():
        device = f"cuda:{torch.cuda.current_device()}"  # each DDP rank's own GPU
    tok = load_tokenizer(checkpoint, spec)
    model = load_model(checkpoint, spec, device=device)
    enc = Encoder(tok, spec.template, max_len=512)
    datamodule.encoder = enc
    return evaluate_tofu(model, enc, datamodule, retain_truth_ratios=retain_truth_ratios,
                         retain_mia_auc=retain_mia_auc, **(eval_kwargs or {}))


def cached_eval(checkpoint: str, spec, datamodule, *, retain_ref=None, eval_kwargs=None,
                device=None) -> tuple[dict, list[dict]]:
    """``evaluate_checkpoint`` memoised on disk (checkpoint, data, split, settings)."""
    key = _key(ckpt=str(checkpoint), files=_fingerprint(checkpoint), data=datamodule.path,
               split=datamodule.split, template=spec.template, eval=eval_kwargs or {},
               retain=retain_ref[0].get("retain_key") if retain_ref else None)
    path = cache_root() / "evals" / f"{key}.json"
    blob = _read_on_rank_zero(path)
    if blob is not None:
        return blob["summary"], blob["records"]
    tr = auc = None
    if retain_ref is not None:
        tr = [r["truth_ratio"] for r in retain_ref[1] if r["task"] == "forget"]
        auc = retain_ref[0].get("mia", {}).get("min_k")
    summary, records = evaluate_checkpoint(checkpoint, spec, datamodule, retain_truth_ratios=tr,
                                           retain_mia_auc=auc, eval_kwargs=eval_kwargs, device=device)
    summary["retain_key"] = key
    if _rank() == 0:  # every rank holds the same gathered records; one writer
        atomic_write_json(path, {"summary": summary, "records": records})
    return summary, records


def _rank() -> int:
    import torch

    dist = torch.distributed
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _read_on_rank_zero(path: Path) -> dict | None:
    """The cached blob as rank 0 sees it, on every rank.

    Ranks must agree on hit or miss (a miss is a collective evaluation), and another
    process may write the file between two ranks' looks, or ranks may not share a disk.
    """
    import torch

    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()):
        return json.loads(path.read_text()) if path.exists() else None
    blob = [json.loads(path.read_text()) if dist.get_rank() == 0 and path.exists() else None]
    dist.broadcast_object_list(blob, src=0)
    return blob[0]


def retain_reference(spec, datamodule, seed: int = 0, eval_kwargs=None, device=None):
    """(summary, records) of the retain model for the datamodule's forget split."""
    from unlearnbench.models.loading import resolve_checkpoint

    ckpt = resolve_checkpoint(spec, "retain", datamodule.split, seed)
    return cached_eval(ckpt, spec, datamodule, eval_kwargs=eval_kwargs, device=device)


def retain_truth_ratios(ref) -> list[float]:
    return [r["truth_ratio"] for r in ref[1] if r["task"] == "forget"]
