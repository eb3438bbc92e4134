"""The trade-off plot: labels never overlap, log-axis spreads are geometric intervals that stay
on the axis, and every reference has its own marker."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest

from unlearnbench.report.labels import LABEL_GID
from unlearnbench.report.leaderboard import leaderboard_table
from unlearnbench.report.plots import geometric_spread, plot_tradeoff, ref_style, tradeoff_figure
from unlearnbench.report.results import load_results, results_frame

META = {
    "columns": [
        {"name": "fq", "path": ["fq"], "direction": "max", "sci": True, "shown": True},
        {"name": "mu", "path": ["mu"], "direction": "max", "sci": False, "shown": True},
    ],
    "tradeoff": ["mu", "fq"], "headline_forget": None,
    "ranking": {"forget": "fq", "utility": "mu", "min_ratio": 0.9, "anchor": "target"},
    "references": ["target", "base", "retain", "retain-seed2"], "shape": "qa", "published": None,
}
# label -> per-seed (fq, mu). Eight methods crowd one corner, as FLAT's variants do in the
# copyright grid; "spread" has a std larger than its mean (the bar ran off the log axis).
CROWD = {f"flat[divergence=v{i}]": [(0.02 + 1e-4 * i, 0.80 + 1e-3 * i)] * 2 for i in range(8)}
METHODS = {**CROWD, "spread": [(1e-2, 0.5), (1e-4, 0.52)], "zero": [(0.0, 0.3), (1e-6, 0.31)]}
REFS = {"target": (1e-20, 0.9), "base": (0.5, 0.2), "retain": (None, 0.85), "retain-seed2": (0.7, 0.84)}


def _write(path: Path, **fields) -> None:
    path.mkdir(parents=True)
    body = {"benchmark": "toy", "split": "s", "model": "m", "status": "ok", "benchmark_meta": META, **fields}
    (path / "result.json").write_text(json.dumps(body))


@pytest.fixture()
def table(tmp_path):
    for name, (fq, mu) in REFS.items():
        _write(tmp_path / "refs" / name, cell_id=name, kind="ref", method=name, method_label=name,
               seed=0, metrics={"fq": fq, "mu": mu})
    for label, runs in METHODS.items():
        for seed, (fq, mu) in enumerate(runs):
            _write(tmp_path / "cells" / f"{label}-{seed}", cell_id=f"{label}-{seed}", kind="cell",
                   method=label, method_label=label, seed=seed, metrics={"fq": fq, "mu": mu})
    return leaderboard_table(results_frame(load_results(tmp_path)))


def test_geometric_spread_by_hand():
    # ln 1e-2 and ln 1e-4: mean ln 1e-3, sample std |ln 100| / sqrt 2 -> factor 10 ** sqrt 2.
    g, s = geometric_spread([1e-2, 1e-4])
    assert g == pytest.approx(1e-3, rel=1e-12)
    assert s == pytest.approx(10 ** math.sqrt(2), rel=1e-12)
    assert math.isnan(geometric_spread([0.3])[1])
    assert geometric_spread([0.0, 1e-30])[0] == pytest.approx(1e-30)  # an exact 0 counts as the floor


def test_labels_never_overlap_each_other_or_a_marker(table):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text

    fig = tradeoff_figure(table)
    renderer = FigureCanvasAgg(fig).get_renderer()
    ax = fig.axes[0]
    labels = [t for t in ax.texts if t.get_gid() == LABEL_GID]
    # The text's own box (an annotation's extent also spans its leader line).
    for t in labels:
        t.update_positions(renderer)
    boxes = {t.get_text(): Text.get_window_extent(t, renderer) for t in labels}
    assert len(boxes) >= len(METHODS) - 2  # at most a couple left out of the 8-method pile-up
    for (a, ba), (b, bb) in itertools.combinations(boxes.items(), 2):
        assert not ba.overlaps(bb), f"labels {a!r} and {b!r} overlap"
    frame = ax.get_window_extent(renderer)
    centres = [ax.transData.transform(off) for coll in ax.collections if hasattr(coll, "get_offsets")
               for off in coll.get_offsets() if len(coll.get_offsets()) == 1]
    for name, box in boxes.items():
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1, name
        assert not [c for c in centres if box.contains(*c)], f"label {name!r} covers a marker"
    # Every point is named in the legend, placed label or not.
    legend = {t.get_text() for t in ax.get_legend().get_texts()}
    assert set(METHODS) <= legend and {"target (ref)", "base (ref)", "retain-seed2 (ref)"} <= legend


def test_log_axis_bars_are_geometric_and_stay_on_the_axis(table):
    fig = tradeoff_figure(table)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    bottom, top = ax.get_ylim()
    segments = [seg for coll in ax.collections if type(coll).__name__ == "LineCollection"
                for seg in coll.get_segments()]
    vertical = [seg for seg in segments if seg[0][0] == seg[1][0]]
    off = [s for s in vertical if not bottom <= min(s[0][1], s[1][1]) <= max(s[0][1], s[1][1]) <= top]
    assert vertical and not off, (bottom, top, off)
    # "spread": fq 1e-2 and 1e-4 at utility 0.51 -> 1e-3 ×/÷ 10 ** sqrt 2 (arithmetic: 5e-3 ± 7e-3).
    bar = next(s for s in vertical if s[0][0] == pytest.approx(0.51))
    lo, hi = sorted((bar[0][1], bar[1][1]))
    assert lo == pytest.approx(1e-3 / 10 ** math.sqrt(2), rel=1e-9)
    assert hi == pytest.approx(1e-3 * 10 ** math.sqrt(2), rel=1e-9)


def test_each_reference_has_its_own_marker(table, tmp_path):
    styles = [ref_style(n) for n in ("target", "base", "retain", "retain-seed2")]
    assert len({m for m, _ in styles}) == 4 and len({c for _, c in styles}) == 4
    others: list[str] = []
    assert ref_style("reference-a", others) != ref_style("reference-b", others)
    assert plot_tradeoff(table, tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"
