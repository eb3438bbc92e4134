"""Leaderboard plots: forget/utility trade-off, per-method training curves, chains of requests."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from .atomic import atomic_save

FQ_FLOOR = 1e-30  # forget quality can be exactly 0; a log axis cannot show that
_REF_STYLE = {"target": ("*", "tab:red"), "retain": ("D", "tab:green"), "retrain": ("D", "tab:green"),
              "base": ("*", "tab:red")}
_LINESTYLES = ("-", "--", ":", "-.")


def _figure(figsize: tuple[float, float]):
    import matplotlib

    # Only pick the backend when nobody has: switching under an already-imported pyplot
    # (e.g. a notebook's inline backend) would break the caller's own figures.
    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    from matplotlib.figure import Figure

    # A bare Figure (no pyplot) is never registered globally, so nothing leaks or needs closing.
    return Figure(figsize=figsize, layout="constrained")


def _save_png(fig, path: str | os.PathLike) -> Path:
    # format= is required: the temp name does not end in .png.
    return atomic_save(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _ref_name(row: pd.Series) -> str:
    return str(row.get("method") or row.get("method_label"))


def _block_suffix(row: pd.Series, multi: bool) -> str:
    if not multi:
        return ""
    return f" [{row.get('benchmark')}/{row.get('split')}/{row.get('model')}]"


def _tradeoff_panel(ax, table: pd.DataFrame, x_col: str, y_col: str, multi: bool, log: bool) -> None:
    """One benchmark's panel; ``log`` for a p-value axis (forget quality spans decades)."""
    floor = FQ_FLOOR if log else -math.inf
    if log:
        ax.set_yscale("log")
    for _, row in table.iterrows():
        x, y = row.get(x_col), row.get(y_col)
        label = str(row.get("method_label")) + _block_suffix(row, multi)
        if row.get("kind") == "ref":
            name = _ref_name(row)
            if name.endswith("-seed2"):  # the noise ceiling: a retain model of another seed
                if _finite(y):
                    ax.axhline(max(y, floor), ls="--", color="tab:gray", label=f"noise ceiling ({label})")
                continue
            marker, color = _REF_STYLE.get(name, ("s", "tab:gray"))
            if _finite(x) and _finite(y):
                ax.scatter([x], [max(y, floor)], marker=marker, s=160, color=color,
                           edgecolors="black", zorder=4, label=f"{label} (ref)")
                ax.annotate(label, (x, max(y, floor)), textcoords="offset points",
                            xytext=(6, -12), fontsize=8, color=color)
            elif _finite(x):
                ax.axvline(x, ls="-.", color=color, label=f"{label} (ref) {x_col}")
            continue
        if not (_finite(x) and _finite(y)):
            continue
        y = max(y, floor)
        xs, ys = row.get(f"{x_col}_std"), row.get(f"{y_col}_std")
        xerr = xs if _finite(xs) else None
        # Asymmetric on a log axis so the lower bar never crosses zero.
        yerr = ([[min(ys, y - floor)], [ys]] if log else ys) if _finite(ys) else None
        ax.errorbar([x], [y], xerr=xerr, yerr=yerr, fmt="o", capsize=3, zorder=3)
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(6, 6), fontsize=8)
    if log:
        ax.axhline(0.05, ls=":", color="black", label="p = 0.05")
    ax.margins(x=0.1)  # room for the point labels at the edges
    ax.set_xlabel(x_col)
    ax.set_ylabel(y_col + (" (log scale)" if log else ""))
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")


def plot_tradeoff(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Each benchmark's forget metric against its utility metric (its ``tradeoff`` axes, e.g.
    TOFU's forget quality on a log axis vs model utility), one labelled point per row.

    Methods get error bars from ``<col>_std`` when present; target and retain references get
    distinct markers (a reference without a forget value, like retain itself, becomes a
    vertical line at its utility); retain-seed2 becomes a dashed "noise ceiling" line, and a
    p-value axis gets a dotted line at p = 0.05. One panel per benchmark; writes a PNG
    (dpi 120) atomically and returns its path.
    """
    metas = table.attrs.get("metas", {})
    panels = [(b, metas[b]["tradeoff"]) for b in dict.fromkeys(table["benchmark"].dropna())
              if b in metas and metas[b].get("tradeoff")] if len(table) else []
    fig = _figure((7.5 * max(1, len(panels)), 5.5))
    axes = fig.subplots(1, max(1, len(panels)), squeeze=False).ravel()
    if not panels:
        axes[0].text(0.5, 0.5, "no successful results", transform=axes[0].transAxes, ha="center")
    for ax, (bench, (x_col, y_col)) in zip(axes, panels):
        part = table[table["benchmark"] == bench]
        multi = len(part.drop_duplicates(["benchmark", "split", "model"])) > 1
        log = any(c["name"] == y_col and c.get("sci") for c in metas[bench]["columns"])
        _tradeoff_panel(ax, part, x_col, y_col, multi, log)
        ax.set_title(f"{bench}: {y_col} vs {x_col}")
    return _save_png(fig, path)


def plot_chains(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Each shown metric against the step of a chain of unlearning requests (MUSE's
    scalability / sustainability): one line per method (mean ± std over seeds), the
    references as horizontal lines. Writes a PNG atomically and returns its path."""
    metas = table.attrs.get("metas", {})
    chained = table[table["chain"].notna() & (table["kind"] != "ref")]
    bench = chained["benchmark"].iloc[0]
    cols = [c["name"] for c in metas.get(bench, {"columns": []})["columns"]
            if c.get("shown", True) and c["name"] in chained and chained[c["name"]].notna().any()]
    n = max(1, len(cols))
    fig = _figure((4.6 * min(n, 3), 3.6 * math.ceil(n / 3)))
    axes = fig.subplots(math.ceil(n / 3), min(n, 3), squeeze=False).ravel()
    for ax in axes[len(cols):]:
        ax.set_axis_off()
    refs = table[(table["kind"] == "ref") & (table["benchmark"] == bench)]
    for ax, col in zip(axes, cols):
        for label, rows in chained.groupby("method_label", sort=True):
            rows = rows.sort_values("step")
            ax.errorbar(rows["step"].astype(float), rows[col], yerr=rows.get(f"{col}_std"),
                        marker="o", capsize=3, label=str(label))
        for _, ref in refs.drop_duplicates("method_label").iterrows():
            if _finite(ref.get(col)):
                ax.axhline(ref[col], ls="--", lw=1, color=_REF_STYLE.get(_ref_name(ref), ("", "tab:gray"))[1],
                           label=f"{ref['method_label']} (ref)")
        ax.set_title(col, fontsize=9)
        ax.set_xlabel(f"{chained['chain'].iloc[0]} step")
        ax.grid(alpha=0.3)
    if len(cols):
        axes[0].legend(fontsize=7)
    fig.suptitle(f"{bench}: each criterion after each unlearning request")
    return _save_png(fig, path)


def plot_robustness(table: pd.DataFrame, panels: list, path: str | os.PathLike) -> Path:
    """Per benchmark, the headline forget metric of each row before and after each attack
    (grouped bars, mean ± std over seeds). Writes a PNG atomically and returns its path."""
    import numpy as np

    fig = _figure((max(7.0, 1.2 * len(table)), 4.2 * len(panels)))
    axes = fig.subplots(len(panels), 1, squeeze=False).ravel()
    for ax, (bench, cols) in zip(axes, panels):
        part = table[table["benchmark"] == bench]
        head = cols[1]
        bars = [head] + [c for c in cols if c.startswith(f"{head}@")]
        x = np.arange(len(part))
        width = 0.8 / len(bars)
        for i, col in enumerate(bars):
            label = "unlearned" if col == head else f"after {col.split('@', 1)[1]}"
            ax.bar(x + i * width, part[col], width, yerr=part.get(f"{col}_std"), capsize=2, label=label)
        ax.set_xticks(x + 0.4 - width / 2)
        ax.set_xticklabels([str(m) + (" (ref)" if k == "ref" else "") for m, k in zip(part["method_label"], part["kind"])],
                           rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(head)
        ax.set_title(f"{bench}: {head} before and after each attack")
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=8)
    return _save_png(fig, path)


def _cell_dir(grid_dir: Path, result: dict[str, Any]) -> Path:
    if result.get("result_path"):
        return Path(result["result_path"]).parent
    sub = "refs" if result.get("kind") == "ref" else "cells"
    return grid_dir / sub / str(result.get("cell_id"))


def _read_history(path: Path) -> pd.DataFrame | None:
    try:
        return pd.read_csv(path)
    except Exception:  # noqa: BLE001 - a bad history shows up as a note in its panel
        return None


def _seed_key(result: dict[str, Any]) -> float:
    return float(result["seed"]) if _finite(result.get("seed")) else math.inf


def plot_training_curves(grid_dir: str | os.PathLike, results: list[dict[str, Any]],
                         path: str | os.PathLike) -> Path:
    """Plot every loss-term column of each ok cell's history CSV against ``step``.

    ``results`` are the dicts from ``load_results``; only ``kind == "cell"`` results with
    status ok and a ``history_file`` (relative to the cell directory) are used. One subplot
    per method label, seeds distinguished by line style. Writes a PNG atomically.
    """
    grid = Path(grid_dir)
    cells = [r for r in results if r.get("kind", "cell") == "cell" and r.get("status") == "ok"
             and r.get("history_file")]
    multi = len({(r.get("benchmark"), r.get("split"), r.get("model")) for r in cells}) > 1
    panels: dict[str, list[tuple[Any, pd.DataFrame | None]]] = {}
    for r in sorted(cells, key=lambda r: (str(r.get("method_label") or r.get("method")), _seed_key(r))):
        title = str(r.get("method_label") or r.get("method"))
        if multi:
            title += f" [{r.get('benchmark')}/{r.get('split')}/{r.get('model')}]"
        panels.setdefault(title, []).append((r.get("seed"), _read_history(_cell_dir(grid, r) / r["history_file"])))

    # One colour per loss term across all panels, so "retain" looks the same everywhere.
    terms: list[str] = []
    for runs in panels.values():
        for _, hist in runs:
            if hist is not None:
                terms += [c for c in hist.select_dtypes("number").columns if c != "step" and c not in terms]
    colours = {t: f"C{i % 10}" for i, t in enumerate(terms)}

    from .curves import curve_panels

    evals = curve_panels(results)  # cells evaluated during unlearning: metric against step
    n = max(len(panels) + len(evals), 1)
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig = _figure((4.8 * ncols, 3.4 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[len(panels) + len(evals):]:
        ax.set_axis_off()
    for ax, (title, draw) in zip(axes[len(panels):], evals):
        draw(ax)
        ax.set_title(title, fontsize=9)
    if not panels and not evals:
        axes[0].text(0.5, 0.5, "no training histories", ha="center", transform=axes[0].transAxes)
    for ax, (title, runs) in zip(axes, panels.items()):
        for i, (seed, hist) in enumerate(runs):
            if hist is None:
                ax.text(0.02, 0.95 - 0.08 * i, f"seed {seed}: history unreadable", fontsize=7,
                        transform=ax.transAxes, va="top")
                continue
            x = hist["step"] if "step" in hist else hist.index
            suffix = f" s{seed}" if len(runs) > 1 else ""
            for term in hist.select_dtypes("number").columns:
                if term != "step":
                    ax.plot(x, hist[term], ls=_LINESTYLES[i % len(_LINESTYLES)],
                            color=colours[term], label=f"{term}{suffix}")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle("Training loss terms per method")
    return _save_png(fig, path)
