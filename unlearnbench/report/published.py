"""Published numbers shown beside a leaderboard, keyed by (benchmark, split, model, source).

A grid's ``published:`` (and a benchmark's ``published`` attribute) is a list of groups::

    - benchmark: tofu
      split: forget05
      model: llama2-7b
      source: "open-unlearning docs/repro.md @d3d7cf9 (10 epochs, effective batch 32)"
      first_hand: true        # read in the source itself (false: from a secondary transcription)
      rows:
        target: {forget_quality: 5.87e-14, model_utility: 0.63, forget_truth_ratio: 0.51}

A leaderboard table shows a group's rows only in the block of its own benchmark, split and
model: numbers published for forget10 never sit beside a forget05 table, nor one model's
beside another's. A row without its source is refused: a number nobody can check is not
shown.
"""

from __future__ import annotations

from unlearnbench.errors import UserError

from numbers import Real

KEYS = ("benchmark", "split", "model", "source", "first_hand", "rows")
FORMAT = ("a list of groups, each with benchmark, split, model, source, first_hand (true if read "
          "in the source itself) and rows ({label: {column: value}})")


class PublishedError(UserError):
    """A published row that cannot be shown as given (no source, no key, not numbers)."""


def parse(groups, where: str = "published") -> list[dict]:
    """Validated rows, one per label: ``{benchmark, split, model, source, first_hand, label, values}``.

    ``None`` or an empty mapping/list has no rows (results written before rows were keyed
    carry ``{}``); anything else that is not the list form is refused in one line.
    """
    if not groups:
        return []
    if not isinstance(groups, (list, tuple)):
        raise PublishedError(f"{where}: rows keyed by label only would show beside every split and model; "
                             f"give {FORMAT}")
    rows = []
    for i, group in enumerate(groups):
        at = f"{where}[{i}]"
        if not isinstance(group, dict):
            raise PublishedError(f"{at}: expected a mapping; give {FORMAT}")
        unknown = sorted(set(group) - set(KEYS))
        if unknown:
            raise PublishedError(f"{at}: unknown key(s) {unknown}; known: {', '.join(KEYS)}")
        key = " ".join(str(group.get(k, "?")) for k in ("benchmark", "split", "model"))
        if not str(group.get("source") or "").strip():
            raise PublishedError(f"{at} ({key}): no source; say where the numbers come from "
                                 "(source: 'owner/repo@commit:file' or the paper and its table)")
        missing = [k for k in KEYS if k not in group]
        if missing:
            raise PublishedError(f"{at} ({key}): missing {', '.join(missing)}; give {FORMAT}")
        if not isinstance(group["first_hand"], bool):
            raise PublishedError(f"{at} ({key}): first_hand must be true or false, got {group['first_hand']!r}")
        if not isinstance(group["rows"], dict) or not group["rows"]:
            raise PublishedError(f"{at} ({key}): rows must map each label to {{column: value}}")
        for label, values in group["rows"].items():
            bad = ([] if isinstance(values, dict) else [values]) or \
                [c for c, v in values.items() if isinstance(v, bool) or not isinstance(v, Real)]
            if bad:
                raise PublishedError(f"{at} ({key}) row {label!r}: values must be numbers by column, "
                                     f"got {values!r}")
            rows.append({**{k: group[k] for k in KEYS[:5]}, "benchmark": str(group["benchmark"]),
                         "split": str(group["split"]), "model": str(group["model"]),
                         "label": str(label), "values": dict(values)})
    return rows


def rows_for(rows: list[dict], benchmark, blocks) -> list[dict]:
    """The rows of ``benchmark`` whose (split, model) is one of ``blocks``, in their order."""
    wanted = {(str(s), str(m)) for s, m in blocks}
    return [r for r in rows if r["benchmark"] == benchmark and (r["split"], r["model"]) in wanted]


def source_note(row: dict) -> str:
    return f"{row['source']} ({'first-hand' if row['first_hand'] else 'secondary'})"
