"""Curves of cells evaluated during unlearning (``eval_every``), and the kept-against-last table.

A cell's ``result.json`` holds ``curve`` (one entry per evaluation on the validation items:
``step``, ``metrics`` — every leaderboard column —, ``eval_wall_time_s``), ``kept`` (the keep
rule and the step kept) and, with ``keep: best``, ``last`` (the last model's test metrics).
``training_curves.png`` gains, per benchmark block, one panel per ranking metric (or trade-off
axis): each method's mean over seeds against the step, ± one standard deviation, with the
reference models' validation values as horizontal lines (p-value columns on a log axis, their
mean and band taken over log10 values).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import pandas as pd

from .schema import is_cell, is_ref


BLOCK = ("benchmark", "split", "model")


def _label(r: dict) -> str:
    return str(r.get("method_label") or r.get("method"))


def curve_frame(results: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per (cell, evaluation): block, method label, seed, step and every metric."""
    rows = []
    for r in results:
        if not is_cell(r) or r.get("status") != "ok":
            continue
        for e in r.get("curve") or []:
            rows.append({**{k: r.get(k) for k in BLOCK}, "method_label": _label(r), "seed": r.get("seed"),
                         "step": e["step"], **{k: (math.nan if v is None else v) for k, v in e["metrics"].items()}})
    return pd.DataFrame(rows)


def _panel_columns(meta: dict) -> list[str]:
    rule = meta.get("ranking") or {}
    cols = [rule.get("forget"), rule.get("utility")] if rule else list(meta.get("tradeoff") or [])[::-1]
    return [c for c in cols if c]


def curve_panels(results: list[dict[str, Any]]) -> list[tuple[str, Callable]]:
    """``(title, draw(ax))`` per (benchmark block, metric) with curves; empty without any."""
    frame = curve_frame(results)
    if frame.empty:
        return []
    metas = {r.get("benchmark"): r.get("benchmark_meta") for r in results if r.get("benchmark_meta")}
    refs = [r for r in results if is_ref(r) and r.get("status") == "ok"]
    multi = len(frame.drop_duplicates(list(BLOCK))) > 1
    panels = []
    for keys, block in frame.groupby(list(BLOCK), sort=False):
        meta = metas.get(keys[0]) or {}
        sci = {c["name"] for c in meta.get("columns", []) if c.get("sci")}
        for col in _panel_columns(meta):
            if col not in block or block[col].isna().all():
                continue
            lines = {_label(r): (r.get("validation_metrics") or {}).get(col) for r in refs
                     if (r.get("benchmark"), r.get("eval_split") or r.get("split"), r.get("model")) == keys}
            title = f"{col} (validation) during unlearning" + (f" [{'/'.join(map(str, keys))}]" if multi else "")
            panels.append((title, _drawer(block, col, col in sci, lines)))
    return panels


def _drawer(block: pd.DataFrame, col: str, log: bool, lines: dict) -> Callable:
    """A p-value column (``log``) is averaged as log10 and its band is 10^(mean ± std of log10):
    a band of ± one std in linear units reaches below zero and fills the axis down to the clip."""
    import numpy as np
    from matplotlib import colormaps

    palette = colormaps["tab20"]

    def draw(ax):
        for i, (label, runs) in enumerate(block.groupby("method_label", sort=True)):
            values = np.log10(runs[col].clip(lower=1e-300)) if log else runs[col]
            stats = values.groupby(runs["step"]).agg(["mean", "std", "count"]).reset_index()
            colour = palette(i % 20)
            mean, std = stats["mean"], stats["std"].fillna(0.0)
            low, high = mean - std, mean + std
            if log:
                mean, low, high = 10 ** mean, 10 ** low, 10 ** high
            ax.plot(stats["step"], mean, color=colour, marker=".", lw=1,
                    label=f"{label} (n={stats['count'].max()})")
            ax.fill_between(stats["step"], low, high, color=colour, alpha=0.12)
        for j, (name, value) in enumerate(sorted(lines.items())):
            if value is not None and math.isfinite(float(value)):
                ax.axhline(float(value), color="k", ls=("--", ":", "-.")[j % 3], lw=1, label=f"{name} (ref)")
        if log:
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(col)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=5, ncol=2)
    return draw


def kept_markdown(results: list[dict[str, Any]]) -> str:
    """A Markdown section: per method with ``keep: best``, the step kept and the test metrics of
    the ranking rule at the kept step against the last step (mean ± std over seeds); "" if none."""
    cells = [r for r in results if is_cell(r) and r.get("status") == "ok"
             and (r.get("kept") or {}).get("keep") == "best"]
    if not cells:
        return ""
    out = ["", "## Kept checkpoints (`keep: best`)", "",
           "Each cell was evaluated on the validation items during unlearning and kept the checkpoint its "
           "rule prefers; the leaderboard's numbers are that checkpoint's, on the test items. Here, the "
           "same test metrics at the last step, for comparison (mean ± std over seeds)."]
    blocks: dict[tuple, list[dict]] = {}
    for r in cells:
        blocks.setdefault(tuple(r.get(k) for k in BLOCK), []).append(r)
    for keys, rs in blocks.items():
        cols = _panel_columns(rs[0].get("benchmark_meta") or {})
        out += ["", f"### {'/'.join(map(str, keys))}", "",
                "| method | rule | kept step | last step | " + " | ".join(f"{c} kept | {c} last" for c in cols) + " |",
                "|---" * (4 + 2 * len(cols)) + "|"]
        by_label: dict[str, list[dict]] = {}
        for r in rs:
            by_label.setdefault(_label(r), []).append(r)
        for label, group in sorted(by_label.items()):
            def stat(values):
                s = pd.Series([math.nan if v is None else float(v) for v in values], dtype=float)
                if s.isna().all():
                    return "–"
                text = f"{s.mean():.4g}"
                return text + (f" ± {s.std():.2g}" if s.count() > 1 else "")

            last = [(r.get("last") or {}) for r in group]
            last_metrics = [r["metrics"] if end.get("same_as_kept") else (end.get("metrics") or {})
                            for r, end in zip(group, last)]
            row = [label, str(group[0]["kept"].get("rule")), stat([r["kept"].get("step") for r in group]),
                   stat([end.get("step") for end in last])]
            for c in cols:
                row += [stat([r["metrics"].get(c) for r in group]), stat([m.get(c) for m in last_metrics])]
            out.append("| " + " | ".join(row) + " |")
    return "\n".join(out) + "\n"

