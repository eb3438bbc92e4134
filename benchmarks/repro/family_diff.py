"""Where does a float difference between two machines (or CPU code paths) enter the tiny family?

    UNLEARNBENCH_CACHE=A .venv/bin/unlearnbench train --model tiny      # one build
    UNLEARNBENCH_NATIVE_CPU=1 UNLEARNBENCH_CACHE=B .venv/bin/unlearnbench train --model tiny
    .venv/bin/python benchmarks/repro/family_diff.py A B

Compares, stage by stage, what the two builds produced: the tokenizer (bytes), then the
weights of the base, target and retain models (largest absolute and relative difference),
then the reference evaluations the leaderboard starts from. Prints a Markdown table.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path


def _stage(path: Path) -> str:
    return path.name.split("-")[1] + ("" if "-ft-" not in path.name else "")


def _weights(d: Path):
    from safetensors.torch import load_file

    return load_file(str(d / "model.safetensors"))


def main(a: str, b: str) -> int:
    import torch

    rows = []
    ma, mb = Path(a) / "models", Path(b) / "models"
    for da in sorted(ma.glob("tiny-*")):
        db = mb / da.name
        if not db.exists():
            rows.append((da.name, "missing in B", "", ""))
            continue
        if (da / "model.safetensors").exists():
            wa, wb = _weights(da), _weights(db)
            diff = max(float((wa[k] - wb[k]).abs().max()) for k in wa)
            rel = max(float((wa[k] - wb[k]).norm() / wa[k].norm().clamp(min=1e-12)) for k in wa)
            same = all(torch.equal(wa[k], wb[k]) for k in wa)
            rows.append((da.name, "identical" if same else "differ", f"{diff:.3g}", f"{rel:.3g}"))
        else:
            h = [hashlib.sha256((d / "tokenizer.json").read_bytes()).hexdigest()[:12] for d in (da, db)]
            rows.append((da.name, "identical" if h[0] == h[1] else "differ", "", ""))
    print("| artefact | A vs B | max abs weight diff | max relative (per tensor, L2) |")
    print("|:---|:---|---:|---:|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
