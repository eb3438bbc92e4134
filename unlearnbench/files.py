"""Files: where the harness keeps what it builds (stand-in data, tiny models, reference evals),
a local directory's fingerprint, and atomic writes: readers (and a crash mid-write) never see
a half-written file."""

from __future__ import annotations

import json
import math
import os
import uuid
from pathlib import Path
from typing import Any, Callable


# -- where the harness keeps what it builds ----------------------------------------------------
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


# -- atomic writes ------------------------------------------------------------------------------
def atomic_save(path: str | os.PathLike, writer: Callable[[Path], Any]) -> Path:
    """Call ``writer(tmp_path)`` to write a temp file next to ``path``, then rename it onto ``path``.

    The temp file lives in the same directory so ``os.replace`` is an atomic rename on one
    filesystem. If ``writer`` raises, the temp file is removed and ``path`` is left untouched.
    Returns ``path`` as a ``Path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Hidden, unique name: concurrent writers never share a temp file, and globs like
    # cells/*/result.json never pick it up. Created by the writer, so the umask applies.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        writer(tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass  # (read-only directory, say) the writer's error is the one to report, not this
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write ``text`` (UTF-8) to ``path``; the data is fsynced before the rename."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())

    return atomic_save(path, write)


def _jsonable(obj: Any) -> Any:
    # Strict JSON has no NaN/Infinity; null is what "missing number" means in result.json.
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def _default(obj: Any) -> Any:
    # numpy / torch scalars and arrays, Paths: anything else is a bug worth a TypeError.
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    for attr in ("tolist", "item"):
        if hasattr(obj, attr):
            return _jsonable(getattr(obj, attr)())
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically write ``obj`` as indented JSON; NaN and ±inf become ``null`` rather than failing."""
    text = json.dumps(_jsonable(obj), indent=2, sort_keys=False, allow_nan=False, default=_default)
    return atomic_write_text(path, text + "\n")
