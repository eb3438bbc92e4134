"""Where the harness keeps what it builds (stand-in data, tiny models, reference evals)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$UNLEARNBENCH_CACHE`` or ``~/.cache/unlearnbench``; tests point it at a tmp dir."""
    root = os.environ.get("UNLEARNBENCH_CACHE") or Path.home() / ".cache" / "unlearnbench"
    return Path(root)
