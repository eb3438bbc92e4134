"""General text: documents that are neither a benchmark's forget data nor its retain data.

FLAT (Wang et al.) trains on forget data only: each forget example is paired with a "good"
example whose probability the loss raises. On question/answer data that is a template answer
(a refusal). Raw text has no question to refuse, and FLAT's public code
(UCSC-REAL/FLAT@bf2ef07, ``unlearn.py`` with ``forget_loss=cl`` and
``data_module.py``'s Harry Potter collator) pairs each forget passage with a random
``allenai/c4`` document, every token of it scored. The repository has no MUSE code (its README
defers to MUSE's own), so the harness does on MUSE what that code does on Harry Potter.

Where the general text comes from, in order:
- ``extras/general.jsonl`` (one ``{"text"}`` a line) in a local benchmark directory: the
  stand-ins write the text their tiny base model was pre-trained on there (sharing no entity
  with any split), the role C4 plays for a real model;
- otherwise the first ``n`` documents of C4's first English training shard on the hub (the
  same format: JSON lines with a ``text`` field).
"""

from __future__ import annotations

from pathlib import Path

GENERAL_FILE = "extras/general.jsonl"
C4 = ("allenai/c4", "en/c4-train.00000-of-01024.json.gz")
C4_DOCUMENTS = 2000  # enough that a forget set of MUSE's size rarely draws one twice in a row


def _json_lines(path: str, data_files: str | None = None, n: int | None = None) -> list[dict]:
    import datasets

    ds = (datasets.load_dataset("json", data_files=path, split="train") if data_files is None
          else datasets.load_dataset(path, data_files=data_files, split="train"))
    if "text" not in ds.column_names:
        raise ValueError(f"general text at {path}{f' ({data_files})' if data_files else ''} has no 'text' "
                         f"field (it has {', '.join(ds.column_names)})")
    if n is not None:
        ds = ds.select(range(min(n, len(ds))))
    return [{"text": t} for t in ds["text"] if t and t.strip()]


def general_rows(benchmark_path: str, n: int = C4_DOCUMENTS, c4: tuple[str, str] = C4) -> list[dict]:
    """General documents for the benchmark at ``benchmark_path`` (see the module docstring)."""
    local = Path(str(benchmark_path)) / GENERAL_FILE
    if local.is_file():
        return _json_lines(str(local))
    repo, files = c4
    if Path(repo).exists():  # a local copy of C4 (a file or a directory in the hub's layout)
        return _json_lines(str(Path(repo) / files) if Path(repo).is_dir() else repo, n=n)
    return _json_lines(repo, files, n)
