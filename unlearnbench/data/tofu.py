"""TOFU's data: configs and their schema, read from the hub or the stand-in, one code path.

Both sources are read with ``datasets.load_dataset(path, config, split="train")``: the
hub name ``locuslab/TOFU`` or a local directory with the same files (the stand-in, or a
mirror of the hub for machines without internet). The benchmark itself (data module,
evaluator, references) is ``unlearnbench.benchmarks.tofu``.
"""

from __future__ import annotations


from unlearnbench.data.schema import SchemaError

HUB_PATH = "locuslab/TOFU"
FORGET_SPLITS = ("forget01", "forget05", "forget10")

_QA = {"question": str, "answer": str}
_PERTURBED = {**_QA, "paraphrased_answer": str, "paraphrased_question": str, "perturbed_answer": list}
_KNOWN_PERTURBED = {**_QA, "perturbed_answer": list}
_OPTIONS = {**_QA, **{f"option{i}": str for i in range(1, 5)}}


def schema_for(config: str) -> dict[str, type]:
    """Fields (and their types) a TOFU config must have."""
    if config in ("real_authors", "world_facts"):
        return _OPTIONS
    if config in ("real_authors_perturbed", "world_facts_perturbed"):
        return _KNOWN_PERTURBED
    if config.endswith("_perturbed"):
        return _PERTURBED
    return _QA


def validate(rows, config: str, source: str) -> None:
    """Raise SchemaError naming the config, field and row of the first problem."""
    if len(rows) == 0:
        raise SchemaError(f"TOFU config {config!r} from {source} is empty; regenerate or re-download it")
    fields = schema_for(config)
    missing = [f for f in fields if f not in rows.column_names]
    if missing:
        raise SchemaError(f"TOFU config {config!r} from {source} lacks field(s) {missing}; "
                          f"it has {rows.column_names}")
    for i, row in enumerate(rows):
        for name, kind in fields.items():
            value = row[name]
            if not isinstance(value, kind) or (kind is list and not all(isinstance(v, str) for v in value)):
                raise SchemaError(f"TOFU config {config!r} from {source}, row {i}: field {name!r} "
                                  f"should be {kind.__name__}{' of str' if kind is list else ''}, "
                                  f"got {type(value).__name__}: {value!r:.80}")
            if kind is str and not value.strip():
                raise SchemaError(f"TOFU config {config!r} from {source}, row {i}: field {name!r} is empty")


def load_config(path: str, config: str):
    """One TOFU config as a ``datasets.Dataset``, validated."""
    import datasets

    try:
        from unlearnbench.data.hub_layout import local_cache_dir

        rows = datasets.load_dataset(str(path), config, split="train", cache_dir=local_cache_dir(path))
    except StopIteration as exc:  # datasets' JSON builder on an empty file
        raise SchemaError(f"TOFU config {config!r} from {path} is empty; "
                          "regenerate or re-download it") from exc
    except ValueError as exc:  # `[]`: 'Instruction "train" corresponds to no data!'
        if "no data" not in str(exc):
            raise
        raise SchemaError(f"TOFU config {config!r} from {path} is empty ({exc}); "
                          "regenerate or re-download it") from exc
    validate(rows, config, str(path))
    return rows
