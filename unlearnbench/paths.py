"""Where the harness keeps what it builds (stand-in data, tiny models, reference evals)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$UNLEARNBENCH_CACHE`` or ``~/.cache/unlearnbench``; tests point it at a tmp dir."""
    root = os.environ.get("UNLEARNBENCH_CACHE") or Path.home() / ".cache" / "unlearnbench"
    return Path(root)


def dir_fingerprint(path) -> list | None:
    """(file, size, mtime) of every file of a local directory, so that a directory
    overwritten with other contents (a model re-trained into it, a stand-in edited by hand)
    keys a new cache entry; ``None`` for anything that is not a directory (a hub id)."""
    path = Path(str(path))
    if not path.is_dir():
        return None
    return sorted((str(f.relative_to(path)), f.stat().st_size, f.stat().st_mtime_ns)
                  for f in path.rglob("*") if f.is_file())
