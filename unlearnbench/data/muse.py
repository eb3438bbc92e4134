"""MUSE (Shi et al. 2024): the hub datasets ``muse-bench/MUSE-{News,Books}`` or a local copy.

One code path: ``datasets.load_dataset(path, subset, split=split)`` where ``path`` is the hub
name or a directory holding the same files (the stand-in ``muse-synth`` is written that way,
and so is a mirror of the hub for machines without internet: ``<subset>/<split>-*.parquet``
plus a README whose YAML ``configs:`` header declares them).
"""

from __future__ import annotations

from pathlib import Path

from unlearnbench.data.hub_layout import local_cache_dir
from unlearnbench.data.schema import SchemaError

HUB = {"muse-news": "muse-bench/MUSE-News", "muse-books": "muse-bench/MUSE-Books"}

_TEXT = {"text": str}
_QA = {"question": str, "answer": str}
_FOLDS = tuple(f"forget_{i}" for i in range(1, 5))

# subset -> split -> fields (docs/benchmarks.md, MUSE). ``train`` is not in MUSE's paper table but
# is on the hub for both corpora: the documents the target model was fine-tuned on
# (News: train/forget = scal/forget_4, i.e. every fold of the scalability study).
SUBSETS: dict[str, dict[str, dict[str, type]]] = {
    "raw": {s: _TEXT for s in ("forget", "retain1", "retain2", "holdout")},
    "verbmem": {"forget": {"prompt": str, "gt": str}},
    "knowmem": {s: _QA for s in ("forget_qa", "retain_qa", "forget_qa_icl", "retain_qa_icl")},
    "privleak": {s: _TEXT for s in ("forget", "retain", "holdout")},
    "scal": {s: _TEXT for s in _FOLDS},
    "sust": {s: _TEXT for s in _FOLDS},
    "train": {s: _TEXT for s in ("forget", "retain1", "retain2")},
}
NEWS_ONLY = ("scal", "sust")  # MUSE-Books has no scalability / sustainability folds


def _is_local(path) -> bool:
    return Path(str(path)).is_dir()


def _where(path, subset: str, split: str) -> str:
    return f"MUSE {path} subset {subset!r} split {split!r}"


def available_subsets(path) -> list[str]:
    """Subsets (hub configs) that ``path`` holds."""
    import datasets

    if not _is_local(path) and str(path) in HUB.values():
        books = str(path) == HUB["muse-books"]
        return [s for s in SUBSETS if not (books and s in NEWS_ONLY)]
    return list(datasets.get_dataset_config_names(str(path)))


def has_subset(path, subset: str) -> bool:
    """Whether ``path`` (hub name or local directory) has ``subset`` (Books has no scal/sust)."""
    return subset in available_subsets(path)


def validate(rows, path, subset: str, split: str) -> None:
    """Raise SchemaError naming the path, subset, split, field and row of the first problem."""
    where = _where(path, subset, split)
    if len(rows) == 0:
        raise SchemaError(f"{where} is empty; regenerate or re-download it")
    fields = SUBSETS.get(subset, {}).get(split)
    if fields is None:
        raise SchemaError(f"{where} is not part of MUSE; known subsets and splits: "
                          + "; ".join(f"{s}: {', '.join(sp)}" for s, sp in SUBSETS.items()))
    missing = [f for f in fields if f not in rows.column_names]
    if missing:
        raise SchemaError(f"{where} lacks field(s) {missing}; it has {rows.column_names}")
    for i, row in enumerate(rows.select_columns(list(fields))):
        for name, kind in fields.items():
            value = row[name]
            if not isinstance(value, kind):
                raise SchemaError(f"{where}, row {i}: field {name!r} should be {kind.__name__}, "
                                  f"got {type(value).__name__}: {value!r:.80}")
            if not value.strip():
                raise SchemaError(f"{where}, row {i}: field {name!r} is an empty string")


def load_split(path, subset: str, split: str):
    """One MUSE split as a validated ``datasets.Dataset`` (hub name or local directory)."""
    import datasets

    path = str(path)
    if subset not in SUBSETS:
        raise SchemaError(f"unknown MUSE subset {subset!r}; choose one of {', '.join(SUBSETS)}")
    if split not in SUBSETS[subset]:
        raise SchemaError(f"unknown split {split!r} of MUSE subset {subset!r}; "
                          f"choose one of {', '.join(SUBSETS[subset])}")
    if _is_local(path) or path in HUB.values():
        have = available_subsets(path)
        if subset not in have:
            raise SchemaError(f"{path} has no subset {subset!r} (it has {', '.join(have)}); "
                              + ("MUSE-Books has no scal/sust folds, use MUSE-News"
                                 if subset in NEWS_ONLY else "regenerate or re-download it"))
    try:
        cache = local_cache_dir(path)
        rows = datasets.load_dataset(path, subset, split=split, cache_dir=cache)
    except datasets.exceptions.DatasetGenerationError as exc:
        cause = str(exc.__cause__ or exc)
        if "BatchSize must be greater than 0" in cause:  # a parquet file with no rows
            raise SchemaError(f"{_where(path, subset, split)} is empty; "
                              "regenerate or re-download it") from exc
        raise SchemaError(f"{_where(path, subset, split)} could not be read ({cause}); "
                          "regenerate or re-download it") from exc
    except ValueError as exc:
        msg = str(exc)
        if "Unknown split" in msg:
            have = datasets.get_dataset_split_names(path, subset)
            raise SchemaError(f"{_where(path, subset, split)} does not exist (the subset has "
                              f"{', '.join(have)}); regenerate or re-download it") from exc
        if "no data" in msg:  # an empty `[]` file
            raise SchemaError(f"{_where(path, subset, split)} is empty; "
                              "regenerate or re-download it") from exc
        raise
    validate(rows, path, subset, split)
    return rows
