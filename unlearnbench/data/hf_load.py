"""``datasets.load_dataset`` for hub names and local copies, without stale local caches.

datasets 5.2 keys the Arrow cache of a *local directory* by the directory's base name,
the config and a hash of the README's relative ``data_files`` patterns, not by the files:
two different directories both named ``wmdp`` (two stand-ins, a test fixture, an edited
mirror) share one cache entry, and the second load silently returns the first one's
rows. For local sources this module passes a ``cache_dir`` keyed by the data files'
absolute paths, sizes and modification times, so a different or changed file is always
re-read. Hub datasets keep the default cache (their hash includes the commit).
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def _fingerprint_dir(files: list[str]) -> str:
    import datasets

    h = hashlib.sha256()
    for f in sorted(files):
        st = Path(f).stat()
        h.update(f"{Path(f).resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return str(Path(datasets.config.HF_DATASETS_CACHE) / "unlearnbench-local" / h.hexdigest()[:20])


def local_cache_dir(path: str | Path, config: str | None = None) -> str | None:
    """``cache_dir`` for ``load_dataset(path, config)`` keyed by the local data files; None for the hub."""
    from unlearnbench.data import hub_layout

    p = Path(path)
    if p.is_file():
        return _fingerprint_dir([str(p)])
    return hub_layout.local_cache_dir(p)  # a directory: keyed by every file in it


def load_table(path: str | Path, config: str | None = None, split: str = "train"):
    """One split of a hub dataset, a local directory in the hub's layout, or a local file.

    A ``.json``/``.jsonl``/``.parquet`` file is read with the matching packaged builder.
    """
    import datasets

    p = Path(path)
    if p.is_file():
        kind = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}.get(p.suffix)
        if kind is None:
            raise ValueError(f"{p}: expected a .json, .jsonl or .parquet file, or a dataset directory")
        return datasets.load_dataset(kind, data_files=str(p), split="train", cache_dir=local_cache_dir(p))
    return datasets.load_dataset(str(path), config, split=split, cache_dir=local_cache_dir(p, config))
