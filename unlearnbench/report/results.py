"""Read a grid's ``result.json`` files (references and cells) into rows and a flat DataFrame.

Each ok result carries its benchmark's flat ``metrics`` and ``benchmark_meta`` (the
leaderboard columns with their better direction, the trade-off axes, the ranking rule), so
the report needs no knowledge of any benchmark; results written before those fields existed
are read through the benchmark registry instead.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

from .schema import NOT_APPLICABLE, Kind, Status, is_attack, is_ref

# Cost of every cell (docs/metrics.md §9): flat column -> key path, all "lower is better".
COST_FIELDS: dict[str, tuple[str, ...]] = {
    "wall_time_s": ("cost", "wall_time_s"),
    "tokens": ("cost", "tokens"),
    "steps": ("cost", "steps"),
    "peak_host_mem_mib": ("cost", "peak_host_mem_mib"),
    "peak_accel_mem_mib": ("cost", "peak_accel_mem_mib"),
}
# Columns only results of cells evaluated during unlearning have (runner.periodic_eval); a
# results directory without them keeps its columns.
OPTIONAL_FIELDS: dict[str, tuple[str, ...]] = {
    "periodic_eval_wall_time_s": ("cost", "periodic_eval_wall_time_s"),
    "kept_step": ("kept", "step"),
}
ID_COLUMNS: tuple[str, ...] = (
    "cell_id", "kind", "method", "method_label", "benchmark", "split", "model", "seed", "status", "error",
    "chain", "step", "ref_order", "entry", "eval_split",
)
VALIDATION = "val:"  # prefix of the metrics measured on the validation items (sweep selection)


def _read_one(path: Path, kind: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    # Deliberately broad: one bad file (partial write, bad encoding, odd nesting) must become
    # a visible failed row, not hide every other result of the grid.
    except Exception as exc:  # noqa: BLE001
        return {
            "cell_id": path.parent.name, "kind": kind, "status": "failed",
            "error": f"unreadable result file {path}: {type(exc).__name__}: {exc}",
            "result_path": str(path),
        }
    data.setdefault("cell_id", path.parent.name)
    data.setdefault("kind", kind)
    data["result_path"] = str(path)
    return data


def load_results(grid_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Load ``refs/*/result.json`` then ``cells/*/result.json`` under ``grid_dir``.

    Each dict is the parsed file plus ``result_path`` (where it was read from). A file that
    cannot be read or parsed yields ``{"cell_id", "kind", "status": "failed", "error",
    "result_path"}`` with the path in the error message; this function never raises for bad
    files. Missing ``refs/`` or ``cells/`` directories simply contribute nothing.
    """
    grid = Path(grid_dir)
    rows: list[dict[str, Any]] = []
    for kind in (Kind.REF, Kind.CELL):
        for path in sorted((grid / kind.group).glob("*/result.json")):
            rows.append(_read_one(path, kind.value))
    for kind in (Kind.REF, Kind.CELL):  # robustness attacks, each beside the job it attacked
        for path in sorted((grid / kind.group).glob("*/attacks/*/result.json")):
            rows.append(_read_one(path, Kind.ATTACK.value))
    return rows


def _dig(obj: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _number(value: Any) -> float:
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def registry_meta(benchmark: str) -> dict | None:
    """The report metadata of a registered benchmark (for results without ``benchmark_meta``)."""
    from dataclasses import asdict

    from unlearnbench.registry import RegistryError, benchmarks

    try:
        cls = benchmarks.get(benchmark)
    except (RegistryError, KeyError):
        return None
    return {"columns": [asdict(c) for c in cls.columns], "tradeoff": cls.tradeoff,
            "headline_forget": cls.headline_forget,
            "ranking": asdict(cls.ranking) if cls.ranking else None,
            "references": [r.name for r in cls.references], "shape": cls.shape,
            "published": cls.published}


def benchmark_metas(results: list[dict[str, Any]]) -> dict[str, dict]:
    """benchmark name -> report metadata (columns, trade-off axes, ranking, references)."""
    metas: dict[str, dict] = {}
    for r in results:
        name = r.get("benchmark")
        if name is None or name in metas:
            continue
        meta = r.get("benchmark_meta") or registry_meta(name)
        if meta is not None:
            metas[name] = meta
    return metas


def metric_columns(metas: dict[str, dict]) -> list[str]:
    """Every benchmark's columns, in declaration order, without repeats."""
    out: list[str] = []
    for meta in metas.values():
        out += [c["name"] for c in meta["columns"] if c["name"] not in out]
    return out


def _flatten(result: dict[str, Any], metas: dict[str, dict]) -> dict[str, Any]:
    row = {col: result.get(col) for col in ID_COLUMNS}
    cfg = result.get("config") or {}
    for col in ("chain", "step", "ref_order", "entry"):
        if row[col] is None:
            row[col] = cfg.get(col)
    row["eval_split"] = row["eval_split"] or row["split"]  # the split its references were evaluated on
    row["method_label"] = row["method_label"] or row["method"]
    if (result.get("placement") or {}).get("lora_fallback"):
        row["method_label"] = f"{row['method_label']} [lora]"  # ran LoRA to fit one GPU: not the same row
    if not row["status"]:
        row["status"] = "ok" if isinstance(result.get("summary"), dict) else "failed"
    if row["status"] == NOT_APPLICABLE and not row["error"]:
        row["error"] = result.get("reason")
    metrics = result.get("metrics")
    meta = metas.get(result.get("benchmark"))
    if metrics is None and meta is not None:  # an older result: read its summary by the columns
        metrics = {c["name"]: _dig(result.get("summary"), tuple(c["path"])) for c in meta["columns"]
                   if not c.get("gap_to")}
    for name, value in (metrics or {}).items():
        row[name] = _number(value)
    for name, value in (result.get("validation_metrics") or {}).items():
        row[VALIDATION + name] = _number(value)
    for col, keys in COST_FIELDS.items():
        row[col] = _number(_dig(result, keys))
    for col, keys in OPTIONAL_FIELDS.items():
        if _dig(result, keys) is not None:
            row[col] = _number(_dig(result, keys))
    return row


def attack_columns(meta: dict) -> list[str]:
    """The metrics re-measured after an attack: the benchmark's headline forget metric and its
    ranking's forget and utility metrics."""
    rule = meta.get("ranking") or {}
    return list(dict.fromkeys(c for c in (meta.get("headline_forget"), rule.get("forget"), rule.get("utility")) if c))


def _fold_attacks(rows: list[dict], attacks: list[dict], metas: dict) -> list[str]:
    """Put each ok attack's metrics on the row of the job it attacked, as ``<metric>@<attack>``,
    and ``recovery@<attack>`` of the headline metric (per seed, against the block's target)."""
    from unlearnbench.attacks.base import recovery

    by_id = {r["cell_id"]: r for r in rows}
    added: list[str] = []
    for a in attacks:
        parent, meta = by_id.get(a.get("parent")), metas.get(a.get("benchmark"), {})
        if parent is None or a.get("status") != "ok":
            continue
        for col in attack_columns(meta):
            name = f"{col}@{a['attack']}"
            parent[name] = _number((a.get("metrics") or {}).get(col))
            added.append(name)
        if meta.get("headline_forget"):
            added.append(f"recovery@{a['attack']}")
    target = {(r["benchmark"], r["split"], r["model"]): r for r in rows
              if is_ref(r) and r["method"] == "target"}
    for r in rows:
        head = (metas.get(r["benchmark"]) or {}).get("headline_forget")
        anchor = target.get((r["benchmark"], r["eval_split"], r["model"]))  # a chain step's: its eval split
        for name in [c for c in added if c.startswith("recovery@")]:
            after = r.get(f"{head}@{name.split('@', 1)[1]}")
            r[name] = (recovery(after, r.get(head), anchor.get(head)) if anchor is not None and after is not None
                       else math.nan)
    return list(dict.fromkeys(added))


def _fold_gaps(rows: list[dict], jobs: list[dict], metas: dict) -> None:
    """Fill each ``gap_to`` column (``Column.gap_to``): ``|x − x_ref|`` of the value at the
    column's path in a job's summary and in its block's reference ``gap_to`` (the mean over
    that reference's seeds, were there several). A chain step's block is its eval split's.
    NaN where either value is missing."""
    gaps = {name: [c for c in meta["columns"] if c.get("gap_to")] for name, meta in metas.items()}
    if not any(gaps.values()):
        return
    refs: dict[tuple, list[dict]] = {}
    for job, row in zip(jobs, rows):
        if is_ref(row) and row["status"] == Status.OK.value:
            refs.setdefault((row["benchmark"], row["split"], row["model"], row["method"]), []).append(job)
    for job, row in zip(jobs, rows):
        for col in gaps.get(row["benchmark"], ()):
            path = tuple(col["path"])
            anchor = [_number(_dig(r.get("summary"), path))
                      for r in refs.get((row["benchmark"], row["eval_split"], row["model"], col["gap_to"]), ())]
            anchor = [v for v in anchor if not math.isnan(v)]
            own = _number(_dig(job.get("summary"), path)) if row["status"] == "ok" else math.nan
            row[col["name"]] = abs(own - sum(anchor) / len(anchor)) if anchor else math.nan


def results_frame(results: list[dict[str, Any]]) -> pd.DataFrame:
    """Flatten loaded results into one row per result.

    Identity columns (``cell_id, kind, method, method_label, benchmark, split, model, seed,
    status, error, chain, step, ref_order``) come first, then every benchmark's metric
    columns, then the cost columns, as floats (NaN wherever a value is missing). Use
    ``numeric_columns(frame)`` for the metric and cost column names.
    """
    metas = benchmark_metas(results)
    jobs = [r for r in results if not is_attack(r)]
    attacks = [r for r in results if is_attack(r)]
    rows = [_flatten(r, metas) for r in jobs]
    _fold_gaps(rows, jobs, metas)
    attacked = _fold_attacks(rows, attacks, metas)
    # A failed attack is a failure to report; an ok one lives on its job's row.
    rows += [_flatten(a, metas) for a in attacks if a.get("status") != "ok"]
    validation = [VALIDATION + c for c in metric_columns(metas)
                  if any(VALIDATION + c in r for r in rows)]
    numeric = metric_columns(metas) + attacked + validation + list(COST_FIELDS)
    numeric += [c for c in OPTIONAL_FIELDS if any(c in r for r in rows)]
    frame = pd.DataFrame.from_records(rows, columns=list(ID_COLUMNS) + numeric)
    for col in numeric:
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
    for col in ("seed", "step", "ref_order"):
        value = pd.to_numeric(frame[col], errors="coerce").astype(float)
        frame[col] = value.where(value == value.round()).astype("Int64")
    frame.attrs["metas"] = metas
    frame.attrs["numeric"] = numeric
    return frame


def numeric_columns(frame: pd.DataFrame) -> list[str]:
    """The metric and cost columns of a ``results_frame``."""
    return list(frame.attrs.get("numeric", [c for c in frame.columns if c not in ID_COLUMNS]))
