"""Writing an evaluation: ``summary.json`` and ``items.jsonl``, both atomically."""

from __future__ import annotations

import json
from pathlib import Path

from unlearnbench.files import atomic_write_json, atomic_write_text


def write_eval(out: Path, summary: dict, records: list[dict], meta: dict | None = None) -> None:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    atomic_write_text(out / "items.jsonl", lines)
    atomic_write_json(out / "summary.json", {**(meta or {}), **summary})
