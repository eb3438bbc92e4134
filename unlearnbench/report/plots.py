"""Leaderboard plots: forget/utility trade-off, per-method training curves, chains of requests."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from unlearnbench.files import atomic_save

from .schema import Kind, is_cell, is_ref

FQ_FLOOR = 1e-30  # forget quality can be exactly 0; a log axis cannot show that
DPI = 120
# Each reference its own marker and colour; a "-seed2" reference (the noise ceiling) also
# gets a dashed line. References not named here take the next of _OTHER_REFS.
_REF_STYLE = {"target": ("*", "tab:red"), "base": ("P", "tab:purple"), "retain": ("D", "tab:green"),
              "retrain": ("D", "tab:green")}
_SEED2_STYLE = ("d", "tab:olive")
_OTHER_REFS = (("X", "tab:brown"), ("h", "tab:pink"), ("8", "tab:gray"))
# Methods: colour and marker cycles of coprime lengths, so up to 70 methods differ in both.
_METHOD_MARKERS = ("o", "s", "^", "v", "<", ">", "p")
_LINESTYLES = ("-", "--", ":", "-.")


def _figure(figsize: tuple[float, float]):
    import matplotlib

    # Only pick the backend when nobody has: switching under an already-imported pyplot
    # (e.g. a notebook's inline backend) would break the caller's own figures.
    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    from matplotlib.figure import Figure

    # A bare Figure (no pyplot) is never registered globally, so nothing leaks or needs closing.
    return Figure(figsize=figsize, dpi=DPI, layout="constrained")


def _save_png(fig, path: str | os.PathLike) -> Path:
    # format= is required: the temp name does not end in .png.
    return atomic_save(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI))


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


def ref_style(name: str, others: list[str] | None = None) -> tuple[str, str]:
    """(marker, colour) of a reference: its own for the known ones, a "-seed2" copy its own
    too, and the others in turn from a short list (``others`` holds the names seen so far)."""
    if name in _REF_STYLE:
        return _REF_STYLE[name]
    if name.endswith("-seed2"):
        return _SEED2_STYLE
    if others is None:
        return _OTHER_REFS[0]
    if name not in others:
        others.append(name)
    return _OTHER_REFS[others.index(name) % len(_OTHER_REFS)]


def method_style(i: int) -> tuple[str, str]:
    """(marker, colour) of the ``i``-th method of a panel."""
    return _METHOD_MARKERS[i % len(_METHOD_MARKERS)], f"C{i % 10}"


def geometric_spread(values) -> tuple[float, float]:
    """(geometric mean, geometric standard deviation factor) of positive values over seeds:
    ``exp(mean(ln v))`` and ``exp(std(ln v))`` (sample std, ddof=1; NaN for one value).
    Values below ``FQ_FLOOR`` (a p-value of exactly 0) count as ``FQ_FLOOR``. On a log axis
    the interval ``[g / s, g * s]`` is symmetric and never reaches zero."""
    logs = [math.log(max(float(v), FQ_FLOOR)) for v in values if _finite(v)]
    if not logs:
        return math.nan, math.nan
    mean = sum(logs) / len(logs)
    if len(logs) < 2:
        return math.exp(mean), math.nan
    var = sum((v - mean) ** 2 for v in logs) / (len(logs) - 1)
    return math.exp(mean), math.exp(math.sqrt(var))


def spread_key(row) -> str:
    """The key of a leaderboard row in ``table.attrs["log_spread"]``."""
    return "\x1f".join(str(row.get(k)) for k in ("kind", "method_label", "benchmark", "split", "model"))


def _log_point(row: pd.Series, col: str, spreads: dict) -> tuple[float, tuple[float, float] | None]:
    """A row's y on a log axis and its bar's (low, high): the geometric mean ×/÷ its geometric
    std when the table holds the per-seed spread, else the mean ± std with the low end kept
    at a tenth of the point (a bar to zero would run off a log axis)."""
    found = spreads.get(spread_key(row), {}).get(col)
    if found is not None and _finite(found[0]):
        g, s = found
        return g, ((max(g / s, FQ_FLOOR), g * s) if _finite(s) else None)
    y, std = max(float(row[col]), FQ_FLOOR), row.get(f"{col}_std")
    if not _finite(std):
        return y, None
    return y, (max(y - float(std), 0.1 * y), y + float(std))


def _tradeoff_panel(ax, table: pd.DataFrame, x_col: str, y_col: str, multi: bool, log: bool,
                    spreads: dict) -> list[tuple[float, float, str, str]]:
    """Draw one benchmark's points, bars and reference lines; returns the points to label."""
    labels: list[tuple[float, float, str, str]] = []
    others: list[str] = []
    n_method = 0
    for _, row in table.iterrows():
        x, y = row.get(x_col), row.get(y_col)
        label = str(row.get("method_label")) + _block_suffix(row, multi)
        if is_ref(row):
            marker, colour = ref_style(_ref_name(row), others)
            size, zorder, kind = 150, 4, " (ref)"
        else:
            marker, colour = method_style(n_method)
            n_method += 1
            size, zorder, kind = 40, 3, ""
        if not _finite(x):
            continue
        if not _finite(y):
            if kind:  # a reference without a forget value (retain itself): its utility as a line
                ax.axvline(x, ls="-.", color=colour, label=f"{label}{kind}: {x_col}")
            continue
        std, xs = row.get(f"{y_col}_std"), row.get(f"{x_col}_std")
        if log:
            # Drawn by its ends: an interval spanning more than ~16 decades cannot be written
            # as y - err in floating point (the low end would round to zero).
            y, bar = _log_point(row, y_col, spreads)
            if bar is not None:
                ax.vlines([x], [bar[0]], [bar[1]], colors=colour, lw=1, zorder=zorder - 1)
                ax.plot([x, x], list(bar), ls="none", marker="_", ms=6, color=colour, zorder=zorder - 1)
            std = None
        if _finite(xs) or _finite(std):
            ax.errorbar([x], [y], xerr=float(xs) if _finite(xs) else None,
                        yerr=float(std) if _finite(std) else None, fmt="none",
                        ecolor=colour, capsize=3, lw=1, zorder=zorder - 1)
        ax.scatter([x], [y], marker=marker, s=size, color=colour, edgecolors="black",
                   linewidths=0.6 if not kind else 1.0, zorder=zorder, label=label + kind)
        if kind and _ref_name(row).endswith("-seed2"):
            ax.axhline(y, ls="--", lw=1, color=colour, label=f"noise ceiling ({label})")
        labels.append((float(x), float(y), label, colour))
    if log:
        ax.set_yscale("log")  # after the points: a log axis with no data yet warns on the first
        ax.axhline(0.05, ls=":", color="black", label="p = 0.05")
    ax.margins(x=0.08, y=0.08)
    ax.set_xlabel(x_col)
    ax.set_ylabel(y_col + (" (log scale; geometric mean ×/÷ geometric std over seeds)" if log else ""))
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    return labels


def tradeoff_figure(table: pd.DataFrame):
    """The trade-off figure (see ``plot_tradeoff``), laid out and labelled, ready to save."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from .labels import place_labels

    metas = table.attrs.get("metas", {})
    spreads = table.attrs.get("log_spread", {})
    panels = [(b, metas[b]["tradeoff"]) for b in dict.fromkeys(table["benchmark"].dropna())
              if b in metas and metas[b].get("tradeoff")] if len(table) else []
    fig = _figure((9.5 * max(1, len(panels)), 6.0))
    axes = fig.subplots(1, max(1, len(panels)), squeeze=False).ravel()
    if not panels:
        axes[0].text(0.5, 0.5, "no successful results", transform=axes[0].transAxes, ha="center")
    points = []
    for ax, (bench, (x_col, y_col)) in zip(axes, panels):
        part = table[table["benchmark"] == bench]
        multi = len(part.drop_duplicates(["benchmark", "split", "model"])) > 1
        log = any(c["name"] == y_col and c.get("sci") for c in metas[bench]["columns"])
        points.append((ax, _tradeoff_panel(ax, part, x_col, y_col, multi, log, spreads)))
        ax.set_title(f"{bench}: {y_col} vs {x_col}")
    # Labels go where there is room once the layout has fixed every axis; the layout is then
    # frozen so that saving does not move the axes from under them.
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw_without_rendering()
    for ax, pts in points:
        place_labels(ax, pts, renderer)
    fig.set_layout_engine("none")
    return fig


def plot_tradeoff(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Each benchmark's forget metric against its utility metric (its ``tradeoff`` axes, e.g.
    TOFU's forget quality on a log axis vs model utility), one point per row.

    Every point has its own marker and colour, named in the legend beside the axes, and a
    label placed where it overlaps no other label or marker (``labels.place_labels``).
    Methods get error bars from ``<col>_std``; on a log axis the point is the geometric mean
    over seeds with a ×/÷ geometric-std bar (``table.attrs["log_spread"]``, filled by
    ``leaderboard_table``), which never runs off the axis. A reference without a forget value
    (retain itself) becomes a vertical line at its utility; a "-seed2" reference also draws
    a dashed "noise ceiling" line, and a p-value axis a dotted line at p = 0.05. One panel per
    benchmark; writes a PNG (dpi 120) atomically and returns its path.
    """
    return _save_png(tradeoff_figure(table), path)


def plot_chains(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Each shown metric against the step of a chain of unlearning requests (MUSE's
    scalability / sustainability): one line per method (mean ± std over seeds), the
    references as horizontal lines. Writes a PNG atomically and returns its path."""
    metas = table.attrs.get("metas", {})
    chained = table[table["chain"].notna() & (table["kind"] != Kind.REF.value)]
    bench = chained["benchmark"].iloc[0]
    cols = [c["name"] for c in metas.get(bench, {"columns": []})["columns"]
            if c.get("shown", True) and c["name"] in chained and chained[c["name"]].notna().any()]
    n = max(1, len(cols))
    fig = _figure((4.6 * min(n, 3), 3.6 * math.ceil(n / 3)))
    axes = fig.subplots(math.ceil(n / 3), min(n, 3), squeeze=False).ravel()
    for ax in axes[len(cols):]:
        ax.set_axis_off()
    refs = table[(table["kind"] == Kind.REF.value) & (table["benchmark"] == bench)]
    for ax, col in zip(axes, cols):
        for label, rows in chained.groupby("method_label", sort=True):
            rows = rows.sort_values("step")
            ax.errorbar(rows["step"].astype(float), rows[col], yerr=rows.get(f"{col}_std"),
                        marker="o", capsize=3, label=str(label))
        for _, ref in refs.drop_duplicates("method_label").iterrows():
            if _finite(ref.get(col)):
                ax.axhline(ref[col], ls="--", lw=1, color=ref_style(_ref_name(ref))[1],
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
        refs = part["kind"] == Kind.REF.value
        labels = [str(m) + (" (ref)" if r else "") for m, r in zip(part["method_label"], refs)]
        ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(head)
        ax.set_title(f"{bench}: {head} before and after each attack")
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=8)
    return _save_png(fig, path)


def _cell_dir(grid_dir: Path, result: dict[str, Any]) -> Path:
    if result.get("result_path"):
        return Path(result["result_path"]).parent
    sub = Kind.REF.group if is_ref(result) else Kind.CELL.group
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
    cells = [r for r in results if is_cell(r) and r.get("status") == "ok"
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
