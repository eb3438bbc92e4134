"""Read a grid's ``result.json`` files (references and cells) into rows and a flat DataFrame."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

# Reference models in the order they are shown (and the method names the runner gives them).
REF_ORDER = ("target", "retain", "retain-seed2")

# Flat column -> key path into a result dict.
_FIELDS: dict[str, tuple[str, ...]] = {
    "forget_quality": ("summary", "forget_quality"),
    "log10_forget_quality": ("summary", "log10_forget_quality"),
    "model_utility": ("summary", "model_utility"),
    "forget_rougeL": ("summary", "forget", "rougeL_recall"),
    "retain_rougeL": ("summary", "retain", "rougeL_recall"),
    "forget_truth_ratio": ("summary", "forget", "truth_ratio"),
    "retain_truth_ratio": ("summary", "retain", "truth_ratio"),
    "forget_probability": ("summary", "forget", "probability"),
    "mia_min_k_auc": ("summary", "mia", "min_k"),
    "privleak": ("summary", "privleak"),
    "wall_time_s": ("cost", "wall_time_s"),
    "tokens": ("cost", "tokens"),
    "steps": ("cost", "steps"),
    "peak_host_mem_mib": ("cost", "peak_host_mem_mib"),
    "peak_accel_mem_mib": ("cost", "peak_accel_mem_mib"),
}
NUMERIC_COLUMNS: tuple[str, ...] = tuple(_FIELDS)
ID_COLUMNS: tuple[str, ...] = (
    "cell_id", "kind", "method", "method_label", "benchmark", "split", "model", "seed", "status", "error",
)
COLUMNS: tuple[str, ...] = ID_COLUMNS + NUMERIC_COLUMNS


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
    for sub, kind in (("refs", "ref"), ("cells", "cell")):
        for path in sorted((grid / sub).glob("*/result.json")):
            rows.append(_read_one(path, kind))
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


def _flatten(result: dict[str, Any]) -> dict[str, Any]:
    row = {col: result.get(col) for col in ID_COLUMNS}
    row["method_label"] = row["method_label"] or row["method"]
    if not row["status"]:
        row["status"] = "ok" if isinstance(result.get("summary"), dict) else "failed"
    for col, keys in _FIELDS.items():
        row[col] = _number(_dig(result, keys))
    fq = row["forget_quality"]
    if math.isnan(row["log10_forget_quality"]) and fq > 0:
        row["log10_forget_quality"] = math.log10(fq)
    return row


def results_frame(results: list[dict[str, Any]]) -> pd.DataFrame:
    """Flatten loaded results into one row per result with the columns in ``COLUMNS``.

    Identity columns (``cell_id, kind, method, method_label, benchmark, split, model, seed,
    status, error``) come first, then the float metric/cost columns in ``NUMERIC_COLUMNS``,
    NaN wherever the value is missing or null. ``method_label`` falls back to ``method``;
    ``seed`` is a nullable integer column.
    """
    frame = pd.DataFrame.from_records([_flatten(r) for r in results], columns=list(COLUMNS))
    for col in NUMERIC_COLUMNS:
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
    seed = pd.to_numeric(frame["seed"], errors="coerce").astype(float)
    frame["seed"] = seed.where(seed == seed.round()).astype("Int64")
    return frame
