"""Do two result directories agree within their stated spread? (``unlearnbench compare A B``)

The rule, per leaderboard row (method or reference) and metric column:

* each side's value is the mean over its seeds and its spread the sample std over seeds;
  p-value columns (``sci``, e.g. forget quality) are compared as log10, where they live;
* a method row agrees when ``|mean_A − mean_B| ≤ k · max(std_A, std_B) + atol``;
* a reference row is one model (no seeds): its tolerance is ``k`` times the median seed std
  of that column over the methods of the same block, i.e. the spread the leaderboard states
  for that column;
* ``atol`` (default 1e-6) covers columns every seed reproduces exactly;
* machine columns (wall time, peak memory) are never compared; token and step counts must
  match exactly.

Exit status 1 when any compared value disagrees, or a row is missing on one side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .leaderboard import KEYS
from .results import load_results, numeric_columns, results_frame
from .schema import Kind

MACHINE = {"wall_time_s", "peak_host_mem_mib", "peak_accel_mem_mib", "periodic_eval_wall_time_s"}
EXACT = {"tokens", "steps"}


@dataclass
class Row:
    key: tuple
    column: str
    mean_a: float
    std_a: float
    mean_b: float
    std_b: float
    tolerance: float
    agree: bool


def _per_seed(grid: Path) -> pd.DataFrame:
    frame = results_frame(load_results(grid))
    ok = frame[frame["status"] == "ok"].copy()
    ok.attrs = frame.attrs
    sci = {c["name"] for meta in frame.attrs.get("metas", {}).values() for c in meta["columns"] if c.get("sci")}
    for col in sci & set(ok.columns):  # p-values compared where they live: log10
        ok[col] = np.log10(ok[col].clip(lower=1e-300))
    return ok


def _stats(frame: pd.DataFrame, columns: list[str]) -> dict[tuple, dict[str, tuple[float, float, int]]]:
    out = {}
    for key, group in frame.groupby(KEYS, dropna=False, sort=False):
        out[key] = {c: (float(group[c].mean()), float(group[c].std()) if len(group) > 1 else math.nan,
                        len(group)) for c in columns}
    return out


def compare(a: str | Path, b: str | Path, k: float = 2.0, atol: float = 1e-6) -> tuple[list[Row], list[str]]:
    """Rows of the comparison of grid results ``a`` and ``b`` and the list of problems."""
    fa, fb = _per_seed(Path(a)), _per_seed(Path(b))
    columns = [c for c in numeric_columns(fa) if c in set(numeric_columns(fb)) and c not in MACHINE]
    sa, sb = _stats(fa, columns), _stats(fb, columns)
    problems = [f"row {key} only in {a}" for key in sa if key not in sb]
    problems += [f"row {key} only in {b}" for key in sb if key not in sa]
    # The spread each block states per column: the median seed std over its methods.
    block_spread: dict[tuple, dict[str, float]] = {}
    for key in sa:
        if key[0] == Kind.REF.value or key not in sb:
            continue
        spreads = block_spread.setdefault(key[2:], {})
        for c in columns:
            spreads.setdefault(c, [])
            spreads[c] += [s for s in (sa[key][c][1], sb[key][c][1]) if not math.isnan(s)]
    rows = []
    for key in (k_ for k_ in sa if k_ in sb):
        for c in columns:
            (ma, da, _), (mb, db, _) = sa[key][c], sb[key][c]
            if math.isnan(ma) and math.isnan(mb):
                continue
            if c in EXACT:
                tol = 0.0
            elif key[0] == Kind.REF.value:
                spread = block_spread.get(key[2:], {}).get(c) or []
                tol = k * float(np.median(spread)) if spread else 0.0
            else:
                tol = k * np.nanmax([da, db, 0.0])
            tol += 0.0 if c in EXACT else atol
            agree = (not (math.isnan(ma) or math.isnan(mb))) and abs(ma - mb) <= tol
            rows.append(Row(key, c, ma, da, mb, db, tol, bool(agree)))
    return rows, problems


def render(rows: list[Row], problems: list[str], a: str, b: str, k: float) -> str:
    """A Markdown report: one line per (row, column), then a verdict."""
    lines = [f"# compare `{a}` vs `{b}`", "",
             f"Rule: |mean_A − mean_B| ≤ {k:g} × spread (+1e-6); p-values as log10; references use the "
             "median seed std of their block's methods; token/step counts exactly.", "",
             "| row | column | A mean ± std | B mean ± std | abs diff | tolerance | agree |",
             "|:---|:---|---:|---:|---:|---:|:---:|"]
    for r in rows:
        label = f"{r.key[1]}{' (ref)' if r.key[0] == 'ref' else ''} [{r.key[2]}/{r.key[3]}]"
        lines.append(f"| {label} | {r.column} | {r.mean_a:.4g} ± {r.std_a:.2g} | {r.mean_b:.4g} ± {r.std_b:.2g} | "
                     f"{abs(r.mean_a - r.mean_b):.3g} | {r.tolerance:.3g} | {'yes' if r.agree else 'NO'} |")
    bad = [r for r in rows if not r.agree]
    lines += [""] + [f"- {p}" for p in problems]
    lines.append(f"**{len(rows) - len(bad)} of {len(rows)} values agree**"
                 + ("." if not bad and not problems else f"; {len(bad)} disagree."))
    return "\n".join(lines)
