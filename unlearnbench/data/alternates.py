"""Alternate answers for AltPO, in open-unlearning's file format.

open-unlearning's ``community/methods/AltPO/generate.py`` (locuslab/open-unlearning @d3d7cf9)
writes JSON lines ``{"question", "answer", "alternate"}``, one line per generated alternate
(5 per question with its default ``repeats: 5``), and its ``QAwithAlternateDataset`` reads the
``alternate`` field. This module reads such a file (JSON lines, or one JSON list of the same
objects) and lines its alternates up with a benchmark's forget rows.
"""

from __future__ import annotations

import json
from pathlib import Path

from unlearnbench.data.schema import SchemaError


def read_alternates(path: str | Path) -> list[dict]:
    """The rows of an alternate-answer file; a bad row is one line naming the file and row."""
    path = Path(path)
    if not path.is_file():
        raise SchemaError(f"alternate-answer file {path} does not exist; generate it with open-unlearning's "
                          "community/methods/AltPO/generate.py or point alternate_file at it")
    text = path.read_text()
    try:
        rows = json.loads(text) if text.lstrip().startswith("[") else \
            [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise SchemaError(f"alternate-answer file {path}: not JSON lines ({exc})") from exc
    for i, r in enumerate(rows):
        bad = [k for k in ("question", "alternate") if not isinstance(r.get(k) if isinstance(r, dict) else None, str)]
        if bad:
            raise SchemaError(f"alternate-answer file {path}, row {i}: field(s) {bad} missing or not text; "
                              "each row is {\"question\", \"answer\", \"alternate\"}")
    return rows


def align(forget_rows: list[dict], rows: list[dict], source: str) -> list[list[str]]:
    """Per forget row, its alternates: matched on (question, answer), else on the question
    alone (a file generated from another copy of the answers); empty alternates are dropped."""
    by_pair: dict[tuple, list[str]] = {}
    by_question: dict[str, list[str]] = {}
    for r in rows:
        alt = r["alternate"].strip()
        if alt:
            by_pair.setdefault((r["question"], r.get("answer")), []).append(alt)
            by_question.setdefault(r["question"], []).append(alt)
    out = []
    for f in forget_rows:
        alts = by_pair.get((f["question"], f["answer"])) or by_question.get(f["question"])
        if not alts:
            raise SchemaError(f"alternate-answer file {source} has no alternate for the forget question "
                              f"{f['question']!r:.80}; generate it for this split")
        out.append(alts)
    return out
