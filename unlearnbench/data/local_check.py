"""A local data path (``--data-dir``, a grid's ``data_dir``) checked before it is read.

``datasets`` reports a missing directory, a bad byte or a cut-off line as a generation
error without naming the file or row; this names both, and the fix, in one line, before any
model is built or evaluated.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

from unlearnbench.errors import UserError


def check_data_path(path: str | Path) -> None:
    """Raise a one-line ``UserError`` naming the file (and row) of the first problem."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"data path {p} does not exist; pass the directory (or file) holding the "
                        "benchmark's data (--data-dir, or the grid's data_dir)")
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))
    if not files:
        raise UserError(f"data directory {p} is empty; copy the benchmark's files there "
                        "(docs/benchmarks.md lists each benchmark's layout)")
    readme = p / "README.md"
    if p.is_dir() and readme.is_file():
        for name in _declared_files(readme):
            if not (p / name).is_file():
                raise UserError(f"data directory {p}: {readme.name} declares {name}, which is missing; "
                                "copy it there or remove it from the README's configs")
    stamp = tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    _check_files(stamp)


def _declared_files(readme: Path) -> list[str]:
    """The ``path:`` entries of a hub README's YAML header (its configs' data files)."""
    text = readme.read_text(encoding="utf-8", errors="replace")
    head = text.split("---")[1] if text.startswith("---") else ""
    return [m.strip().strip("'\"") for m in re.findall(r"^\s*path:\s*(\S+)\s*$", head, flags=re.M)
            if "*" not in m]


@lru_cache(maxsize=64)
def _check_files(stamp: tuple) -> None:
    for name, _, _ in stamp:
        f = Path(name)
        if f.suffix in (".json", ".jsonl", ".txt", ".md", ".csv"):
            _check_text(f)


def _check_text(f: Path) -> None:
    data = f.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        row = data[:exc.start].count(b"\n") + 1
        raise UserError(f"{f} row {row}: byte 0x{data[exc.start]:02x} is not UTF-8; save the file "
                        "as UTF-8") from None
    if f.suffix not in (".json", ".jsonl"):
        return
    if f.suffix == ".json":
        try:
            json.loads(text)
            return
        except ValueError as exc:
            first = next((line for line in text.splitlines() if line.strip()), "")
            try:
                json.loads(first)  # JSON lines in a .json file (the hub's layout allows both)
            except ValueError:
                raise UserError(f"{f} row {exc.lineno}: not valid JSON ({exc.msg}, column {exc.colno}); "
                                "the file is truncated or damaged: fix it or copy it again") from None
    for row, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                json.loads(line)
            except ValueError as exc:
                raise UserError(f"{f} row {row}: not valid JSON ({exc.msg}, column {exc.colno}); "
                                "the file is truncated or damaged: fix that row or copy the file again") from None
