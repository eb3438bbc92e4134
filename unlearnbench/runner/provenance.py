"""Where a result came from: versions, commit, device, world size, time."""

from __future__ import annotations

import datetime
import importlib.metadata
import platform
import subprocess
from pathlib import Path

from unlearnbench.parallel import rank_world

LIBRARIES = ("torch", "lightning", "transformers", "datasets", "tokenizers", "torchmetrics",
             "rouge-score", "sacrebleu", "scipy", "pandas", "peft", "lm-eval")


def git_commit() -> str | None:
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        dirty = subprocess.run(["git", "--no-optional-locks", "-C", str(root), "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() + ("+dirty" if dirty else "")) if out.returncode == 0 else None


def provenance() -> dict:
    import torch

    from unlearnbench import __version__

    versions = {}
    for lib in LIBRARIES:
        try:
            versions[lib] = importlib.metadata.version(lib)
        except importlib.metadata.PackageNotFoundError:
            versions[lib] = None
    world = rank_world()[1]
    device = (torch.cuda.get_device_name(0) if torch.cuda.is_available()
              else f"cpu ({platform.processor() or platform.machine()})")
    from unlearnbench.numerics import numeric_environment

    return {"unlearnbench": __version__, "git_commit": git_commit(), "libraries": versions,
            "python": platform.python_version(), "device": device, "world_size": world,
            "numerics": numeric_environment(),
            "host": platform.node(), "time": datetime.datetime.now(datetime.timezone.utc).isoformat()}
