"""Aggregate grid results over seeds into a leaderboard and render it (Markdown, LaTeX, CSV)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from .atomic import atomic_save, atomic_write_text
from .plots import plot_tradeoff, plot_training_curves
from .results import NUMERIC_COLUMNS, REF_ORDER, load_results, results_frame

KEYS = ["kind", "method_label", "benchmark", "split", "model"]
BLOCK = ["benchmark", "split", "model"]

# Which value of a column is best: "max", "min", "zero" (closest to 0) or "half" (closest to
# 0.5, i.e. an MIA AUC at chance).
BEST_DIRECTION: dict[str, str] = {
    "forget_quality": "max",
    "model_utility": "max",
    "forget_rougeL": "min",
    "retain_rougeL": "max",
    "forget_truth_ratio": "max",
    "retain_truth_ratio": "max",
    "mia_min_k_auc": "half",
    "privleak": "zero",
    "wall_time_s": "min",
    "tokens": "min",
    "peak_host_mem_mib": "min",
    "peak_accel_mem_mib": "min",
}
DISPLAY_COLUMNS = ["n_seeds", "forget_quality", "model_utility", "forget_rougeL", "retain_rougeL",
                   "forget_truth_ratio", "retain_truth_ratio", "mia_min_k_auc", "privleak",
                   "wall_time_s", "tokens", "peak_host_mem_mib", "peak_accel_mem_mib"]
_ALWAYS_SHOWN = {"n_seeds", "forget_quality", "model_utility"}
_ARROW_MD = {"max": " ↑", "min": " ↓", "zero": " →0", "half": " →0.5"}
_ARROW_TEX = {"max": r" $\uparrow$", "min": r" $\downarrow$", "zero": r" $\to 0$", "half": r" $\to 0.5$"}


def _sort_key(row: dict[str, Any]) -> tuple:
    block = tuple("" if pd.isna(row[c]) else str(row[c]) for c in BLOCK)
    if row["kind"] == "ref":
        name = row["method"] if row["method"] in REF_ORDER else row["method_label"]
        rank = REF_ORDER.index(name) if name in REF_ORDER else len(REF_ORDER)
        return (block, 0, rank, 0.0, str(row["method_label"]))
    fq = row["forget_quality"]
    return (block, 1, int(math.isnan(fq)), -fq if not math.isnan(fq) else 0.0, str(row["method_label"]))


def leaderboard_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Aggregate ``results_frame`` rows with status ok into one row per (kind, method_label, benchmark, split, model).

    Columns: ``kind, method, method_label, benchmark, split, model, n_seeds``, then for every
    numeric column its mean over seeds (NaNs skipped) followed by ``<col>_std`` (sample std,
    ddof=1; NaN when the group has a single seed). Within each benchmark/split/model block,
    references come first (target, retain, retain-seed2, then any other), then methods by
    forget quality descending (NaN last).
    """
    ok = frame[frame["status"] == "ok"]
    rows = []
    for keys, group in ok.groupby(KEYS, dropna=False, sort=False):
        row: dict[str, Any] = dict(zip(KEYS, keys))
        row["method"] = group["method"].iloc[0]
        row["n_seeds"] = len(group)
        for col in NUMERIC_COLUMNS:
            row[col] = float(group[col].mean())
            row[f"{col}_std"] = float(group[col].std()) if len(group) > 1 else math.nan
        rows.append(row)
    columns = ["kind", "method", "method_label", *BLOCK, "n_seeds"]
    columns += [c for col in NUMERIC_COLUMNS for c in (col, f"{col}_std")]
    return pd.DataFrame(sorted(rows, key=_sort_key), columns=columns).reset_index(drop=True)


def _score(values: pd.Series, direction: str) -> pd.Series:
    return {"max": values, "min": -values, "zero": -values.abs(),
            "half": -(values - 0.5).abs()}[direction]


def best_mask(table: pd.DataFrame) -> pd.DataFrame:
    """Boolean frame (table's index × BEST_DIRECTION columns present): True where a method row holds
    the best mean in its column within its benchmark/split/model block. References never win;
    tied winners are all marked, but a column where every method ties marks none."""
    cols = [c for c in BEST_DIRECTION if c in table.columns]
    mask = pd.DataFrame(False, index=table.index, columns=cols)
    methods = table[table["kind"] != "ref"]
    for _, block in methods.groupby(BLOCK, dropna=False, sort=False):
        for col in cols:
            score = _score(block[col].astype(float), BEST_DIRECTION[col]).dropna()
            hit = np.isclose(score, score.max(), rtol=1e-9, atol=0.0) if len(score) else []
            # When several methods all tie (e.g. same token budget) nobody is "best".
            if len(score) and (len(score) == 1 or not hit.all()):
                mask.loc[score.index[hit], col] = True
    return mask


def _fmt(value: Any, sci: bool = False) -> str:
    if isinstance(value, str):
        return value
    if value is None or pd.isna(value):
        return "n/a"
    v = float(value)
    if sci:
        return f"{v:.1e}"
    a = abs(v)
    if a == 0:
        return "0"
    if a >= 1e4:  # token counts and the like: 123k, 1.23M
        for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
            if a >= div:
                return f"{v / div:.3g}{unit}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 1e-3:
        return f"{v:.3g}"
    return f"{v:.2e}"


def _cell(row: pd.Series, col: str, pm: str, esc: Callable[[str], str]) -> str:
    if col == "n_seeds":
        return str(int(row[col]))
    sci = col == "forget_quality"
    text = esc(_fmt(row[col], sci))
    std = row.get(f"{col}_std")
    if std is not None and not pd.isna(std) and not pd.isna(row[col]):
        text += pm + esc(_fmt(std, sci))
    return text


def _display_columns(table: pd.DataFrame, published: dict | None) -> list[str]:
    extra = {c for vals in (published or {}).values() for c in vals}
    cols = [c for c in DISPLAY_COLUMNS
            if c in _ALWAYS_SHOWN or c in extra or (c in table and table[c].notna().any())]
    return cols + sorted(c for c in extra if c not in cols)


def _is_multi(table: pd.DataFrame) -> bool:
    return len(table.drop_duplicates(BLOCK)) > 1


def _rows(table: pd.DataFrame, cols: list[str], esc: Callable[[str], str],
          bold: Callable[[str], str], pm: str) -> list[list[str]]:
    mask = best_mask(table)
    multi = _is_multi(table)
    out = []
    for idx, row in table.iterrows():
        label = esc(str(row["method_label"])) + (" (ref)" if row["kind"] == "ref" else "")
        cells = [label] + ([esc(_fmt(row[c])) for c in BLOCK] if multi else [])
        for col in cols:
            text = _cell(row, col, pm, esc) if col in table else ""
            cells.append(bold(text) if col in mask and mask.at[idx, col] else text)
        out.append(cells)
    return out


def _headers(table: pd.DataFrame, cols: list[str], arrows: dict[str, str],
             esc: Callable[[str], str]) -> list[str]:
    block = list(BLOCK) if _is_multi(table) else []
    return ["method", *block] + [esc(c) + arrows.get(BEST_DIRECTION.get(c, ""), "") for c in cols]


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(table: pd.DataFrame, failures: pd.DataFrame | None = None,
                    published: dict[str, dict[str, Any]] | None = None) -> str:
    """Render the leaderboard as a Markdown document.

    Numbers are compact (forget quality as ``1.2e-05``, others to 3 significant digits),
    ``mean ± std`` where a std exists, and the best method value per column in **bold**.
    ``published`` (method_label -> column -> value) adds rows labelled "(published)";
    a non-empty ``failures`` frame (failed ``results_frame`` rows) adds a "Failed cells" section.
    """
    cols = _display_columns(table, published)
    headers = _headers(table, cols, _ARROW_MD, str)
    lines = ["# Leaderboard", ""]
    if len(table) and not _is_multi(table):
        b, s, m = (_fmt(table[c].iloc[0]) for c in BLOCK)
        lines += [f"Benchmark `{b}` / split `{s}`, model `{m}`.", ""]
    lines += ["Mean ± sample std over seeds; best method per column in **bold** "
              "(references excluded); arrows give the better direction.", ""]
    if not len(table) and not published:
        lines += ["_No successful results._", ""]
    else:
        rows = _rows(table, cols, _md_escape, lambda t: f"**{t}**", " ± ")
        for label, vals in (published or {}).items():
            pad = [""] * (len(headers) - len(cols) - 1)
            cells = [_fmt(vals.get(c), c == "forget_quality") if c in vals else "" for c in cols]
            rows.append([f"{_md_escape(str(label))} (published)", *pad, *map(_md_escape, cells)])
        lines.append("| " + " | ".join(headers) + " |")
        lines.append("|" + "|".join([":---"] * (len(headers) - len(cols)) + ["---:"] * len(cols)) + "|")
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        lines.append("")
    if failures is not None and len(failures):
        lines += ["## Failed cells", "", "| cell | method | error |", "|:---|:---|:---|"]
        for _, row in failures.iterrows():
            error = str(row.get("error") if not pd.isna(row.get("error")) else "unknown error")
            error = error.strip().splitlines()[0] if error.strip() else "unknown error"
            method = row.get("method_label")
            lines.append(f"| `{_md_escape(str(row.get('cell_id')))}` | "
                         f"{_md_escape('n/a' if pd.isna(method) else str(method))} | {_md_escape(error)} |")
        lines.append("")
    return "\n".join(lines)


_TEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _tex_escape(text: str) -> str:
    return "".join(_TEX_SPECIAL.get(ch, ch) for ch in text)


def render_latex(table: pd.DataFrame) -> str:
    """Render the leaderboard as a LaTeX ``tabular`` (booktabs rules); best values in ``\\textbf{}``."""
    cols = _display_columns(table, None)
    # Cells are escaped piecewise before markup is added, so to_latex must not escape again.
    rows = _rows(table, cols, _tex_escape, lambda t: rf"\textbf{{{t}}}", r" $\pm$ ")
    headers = _headers(table, cols, _ARROW_TEX, _tex_escape)
    frame = pd.DataFrame(rows, columns=headers)
    n_left = len(headers) - len(cols)
    return frame.to_latex(index=False, escape=False, column_format="l" * n_left + "r" * len(cols))


def write_leaderboard(grid_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None,
                      published: dict[str, dict[str, Any]] | None = None) -> dict[str, Path]:
    """Load ``grid_dir``'s results and atomically write the leaderboard and plots into ``out_dir``.

    ``out_dir`` defaults to ``grid_dir``. Writes ``leaderboard.md`` (with failed cells and
    ``published`` numbers), ``leaderboard.csv``, ``leaderboard.tex``, ``tradeoff.png`` and
    ``training_curves.png``; returns them keyed ``markdown, csv, latex, tradeoff,
    training_curves``. Prints nothing.
    """
    grid = Path(grid_dir)
    out = Path(out_dir) if out_dir is not None else grid
    out.mkdir(parents=True, exist_ok=True)
    results = load_results(grid)
    frame = results_frame(results)
    table = leaderboard_table(frame)
    paths = {
        "markdown": out / "leaderboard.md",
        "csv": out / "leaderboard.csv",
        "latex": out / "leaderboard.tex",
        "tradeoff": out / "tradeoff.png",
        "training_curves": out / "training_curves.png",
    }
    atomic_write_text(paths["markdown"], render_markdown(table, frame[frame["status"] != "ok"], published))
    atomic_save(paths["csv"], lambda tmp: table.to_csv(tmp, index=False))
    atomic_write_text(paths["latex"], render_latex(table))
    plot_tradeoff(table, paths["tradeoff"])
    plot_training_curves(grid, results, paths["training_curves"])
    return paths
