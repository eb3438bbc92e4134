"""Tests for unlearnbench.report: loading, aggregation, rendering, plots and atomic writes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from unlearnbench.files import atomic_save, atomic_write_json, atomic_write_text
from unlearnbench.benchmarks.tofu import TOFU_COLUMNS
from unlearnbench.report.leaderboard import (
    best_mask, directions, leaderboard_table, render_latex, render_markdown, write_leaderboard,
)
from unlearnbench.report.plots import plot_tradeoff, plot_training_curves
from unlearnbench.report.results import COST_FIELDS, ID_COLUMNS, load_results, results_frame

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BENCH, SPLIT, MODEL = "tofu-synth", "forget10", "tiny"

# (method, seed) -> (forget_quality, model_utility, forget_rougeL, mia_min_k, wall_time_s)
# npo has the best forget quality, ga the best (lowest) forget rougeL, so bold differs by column.
CELLS = {
    ("ga", 42): (1e-5, 0.40, 0.10, 0.60, 10.0),
    ("ga", 43): (3e-5, 0.44, 0.20, 0.62, 12.0),
    ("npo", 42): (0.02, 0.38, 0.30, 0.55, 20.0),
    ("npo", 43): (0.04, 0.36, 0.50, 0.53, 22.0),
}
# The retain-seed2 ref has the highest forget quality of all: it must never be bolded.
REFS = {"target": (1e-20, 0.50), "retain": (None, 0.45), "retain-seed2": (0.6, 0.44)}


def _summary(fq, mu, frouge=0.5, mia=0.5):
    return {
        "forget_quality": fq,
        "log10_forget_quality": None if fq is None else math.log10(fq),
        "model_utility": mu,
        "forget": {"probability": 0.5, "rougeL_recall": frouge, "truth_ratio": 0.7,
                   "exact_memorisation": 0.8, "extraction_strength": 0.4, "n_items": 80},
        "retain": {"probability": 0.9, "rougeL_recall": 0.8, "truth_ratio": 0.6},
        "real_authors": {"probability": 0.5, "rougeL_recall": 0.5, "truth_ratio": 0.5},
        "world_facts": {"probability": 0.5, "rougeL_recall": 0.5, "truth_ratio": 0.5},
        "mia": {"loss": 0.7, "zlib": 0.68, "min_k": mia, "min_k_plus_plus": 0.66},
        "privleak": -12.0,
    }


def _write(dir_: Path, obj) -> None:
    dir_.mkdir(parents=True)
    (dir_ / "result.json").write_text(json.dumps(obj, indent=2))


@pytest.fixture()
def grid(tmp_path: Path) -> Path:
    g = tmp_path / "grid"
    for name, (fq, mu) in REFS.items():
        _write(g / "refs" / name, {
            "cell_id": name, "kind": "ref", "status": "ok", "error": None, "method": name,
            "method_label": name, "benchmark": BENCH, "split": SPLIT, "model": MODEL, "seed": 42,
            "summary": _summary(fq, mu),
            "cost": {"wall_time_s": 1.0, "tokens": 1000, "steps": 0, "peak_host_mem_mib": 500.0,
                     "peak_accel_mem_mib": None, "world_size": 1},
        })
    for (method, seed), (fq, mu, frouge, mia, wall) in CELLS.items():
        cell_id = f"{method}__{BENCH}-{SPLIT}__{MODEL}__s{seed}"
        _write(g / "cells" / cell_id, {
            "cell_id": cell_id, "kind": "cell", "status": "ok", "error": None, "method": method,
            "method_label": method, "benchmark": BENCH, "split": SPLIT, "model": MODEL, "seed": seed,
            "summary": _summary(fq, mu, frouge, mia),
            "cost": {"wall_time_s": wall, "tokens": 123456, "steps": 20, "peak_host_mem_mib": 900.0,
                     "peak_accel_mem_mib": None, "world_size": 1},
            "history_file": "history.csv", "config": {}, "provenance": {},
        })
        steps = np.arange(20)
        pd.DataFrame({"step": steps, "loss": 2.0 - 0.05 * steps, "forget": -0.1 * steps,
                      "retain": 1.0 + 0.01 * steps}).to_csv(g / "cells" / cell_id / "history.csv", index=False)
    _write(g / "cells" / "wagle__tofu-synth-forget10__tiny__s42", {
        "cell_id": "wagle__tofu-synth-forget10__tiny__s42", "kind": "cell", "status": "failed",
        "error": "ValueError: lr must be > 0 (method wagle)", "traceback": "Traceback ...",
        "method": "wagle", "method_label": "wagle[npo,ratio=0.95]", "benchmark": BENCH,
        "split": SPLIT, "model": MODEL, "seed": 42,
    })
    (g / "cells" / "broken__x__tiny__s42").mkdir()
    (g / "cells" / "broken__x__tiny__s42" / "result.json").write_text('{"cell_id": "broken", "status": "ok", "summ')
    return g


def _md_table(md: str) -> tuple[list[str], dict[str, list[str]]]:
    """Header cells and label -> cells for the first Markdown table in ``md``."""
    lines = [ln for ln in md.split("## Failed cells")[0].splitlines() if ln.startswith("|")]
    split = [[c.strip() for c in ln.strip("|").split(" | ")] for ln in lines]
    return split[0], {row[0]: row for row in split[2:]}


def _col(headers: list[str], name: str) -> int:
    return next(i for i, h in enumerate(headers) if h.split()[0] == name)


def test_load_results_reports_corrupt_file(grid):
    results = load_results(grid)
    assert len(results) == 3 + 4 + 2
    broken = [r for r in results if r["cell_id"] == "broken__x__tiny__s42"]
    assert len(broken) == 1 and broken[0]["status"] == "failed"
    assert str(grid / "cells" / "broken__x__tiny__s42" / "result.json") in broken[0]["error"]
    assert [r["kind"] for r in results[:3]] == ["ref"] * 3


def test_results_frame_columns_and_nans(grid):
    frame = results_frame(load_results(grid))
    # Results without stored metrics are read through the registered benchmark's columns.
    assert list(frame.columns) == list(ID_COLUMNS) + [c.name for c in TOFU_COLUMNS] + list(COST_FIELDS)
    retain = frame[frame["method"] == "retain"].iloc[0]
    assert math.isnan(retain["forget_quality"]) and retain["model_utility"] == pytest.approx(0.45)
    failed = frame[frame["status"] == "failed"]
    assert set(failed["cell_id"]) == {"wagle__tofu-synth-forget10__tiny__s42", "broken__x__tiny__s42"}
    assert failed["forget_quality"].isna().all() and failed["tokens"].isna().all()
    assert frame["peak_accel_mem_mib"].isna().all()
    ga = frame[(frame["method"] == "ga") & (frame["seed"] == 43)].iloc[0]
    assert ga["forget_rougeL"] == pytest.approx(0.2) and ga["mia_min_k_auc"] == pytest.approx(0.62)
    assert ga["tokens"] == 123456 and ga["retain_truth_ratio"] == pytest.approx(0.6)


def test_leaderboard_table_mean_std_and_order(grid):
    table = leaderboard_table(results_frame(load_results(grid)))
    assert list(table["method_label"]) == ["target", "retain", "retain-seed2", "npo", "ga"]
    assert list(table["kind"]) == ["ref"] * 3 + ["cell"] * 2
    ga = table.set_index("method_label").loc["ga"]
    assert ga["n_seeds"] == 2
    assert ga["forget_quality"] == pytest.approx(2e-5)
    assert ga["forget_quality_std"] == pytest.approx(math.sqrt(2) * 1e-5)  # sample std, ddof=1
    assert ga["model_utility"] == pytest.approx(0.42)
    assert ga["model_utility_std"] == pytest.approx(math.sqrt(0.0008))
    target = table.set_index("method_label").loc["target"]
    assert target["n_seeds"] == 1 and math.isnan(target["model_utility_std"])
    assert "wagle[npo,ratio=0.95]" not in set(table["method_label"])


def test_best_mask_ignores_refs(grid):
    table = leaderboard_table(results_frame(load_results(grid))).set_index("method_label")
    mask = best_mask(table)
    assert set(mask.columns) <= set(directions(table.attrs["metas"]))
    assert mask.at["npo", "forget_quality"] and not mask.at["ga", "forget_quality"]
    assert not mask.at["retain-seed2", "forget_quality"]
    assert mask.at["ga", "forget_rougeL"] and not mask.at["npo", "forget_rougeL"]
    assert mask.at["npo", "mia_min_k_auc"]  # 0.54 is closer to 0.5 than 0.61
    assert mask.at["ga", "wall_time_s"]
    # Both methods spent the same tokens: a full tie marks nobody.
    assert not mask["tokens"].any()


def test_render_markdown_bold_std_failures_published(grid):
    frame = results_frame(load_results(grid))
    table = leaderboard_table(frame)
    published = [{"benchmark": BENCH, "split": SPLIT, "model": MODEL, "source": "a paper, Table 1",
                  "first_hand": True, "rows": {"ga": {"forget_quality": 0.0042, "model_utility": 0.39}}}]
    md = render_markdown(table, frame[frame["status"] != "ok"], published=published)
    headers, rows = _md_table(md)
    fq, mu, fr = _col(headers, "forget_quality"), _col(headers, "model_utility"), _col(headers, "forget_rougeL")
    assert list(rows) == ["target (ref)", "retain (ref)", "retain-seed2 (ref)", "npo", "ga", "ga (published [1])"]
    assert rows["ga"][fq] == "2.0e-05 ± 1.4e-05"
    assert rows["ga"][mu] == "**0.42 ± 0.0283**"
    assert rows["npo"][fq] == "**3.0e-02 ± 1.4e-02**"
    assert rows["ga"][fr] == "**0.15 ± 0.0707**" and "**" not in rows["npo"][fr]
    assert "**" not in rows["retain-seed2 (ref)"][fq] and rows["retain (ref)"][fq] == "n/a"
    assert rows["ga (published [1])"][fq] == "4.2e-03" and rows["ga (published [1])"][mu] == "0.39"
    assert "[1] a paper, Table 1 (first-hand)" in md
    failed = md.split("## Failed cells")[1]
    assert "wagle__tofu-synth-forget10__tiny__s42" in failed and "ValueError: lr must be > 0 (method wagle)" in failed
    assert "broken__x__tiny__s42" in failed and "JSONDecodeError" in failed
    # Without failures/published the extra sections vanish.
    assert "Failed cells" not in render_markdown(table) and "published" not in render_markdown(table)


def test_render_latex_marks_best(grid):
    table = leaderboard_table(results_frame(load_results(grid)))
    tex = render_latex(table)
    assert "\\begin{tabular}" in tex and "\\textbf{" in tex
    assert "forget\\_quality" in tex and "$\\pm$" in tex
    npo_line = next(ln for ln in tex.splitlines() if ln.startswith("npo "))
    assert "\\textbf{3.0e-02 $\\pm$ 1.4e-02}" in npo_line


def test_write_leaderboard_end_to_end(grid, tmp_path):
    import matplotlib.image

    out = tmp_path / "report"
    paths = write_leaderboard(grid, out_dir=out, published=[
        {"benchmark": BENCH, "split": SPLIT, "model": MODEL, "source": "s", "first_hand": False,
         "rows": {"npo": {"forget_quality": 0.1}}}])
    assert set(paths) == {"markdown", "csv", "latex", "tradeoff", "training_curves"}
    assert all(p.parent == out and p.exists() for p in paths.values())
    md = paths["markdown"].read_text()
    assert "npo (published [1])" in md and "[1] s (secondary)" in md and "lr must be > 0" in md
    table = leaderboard_table(results_frame(load_results(grid)))
    back = pd.read_csv(paths["csv"])
    assert list(back.columns) == list(table.columns)
    pd.testing.assert_frame_equal(back, table, check_dtype=False, rtol=1e-12)
    for key in ("tradeoff", "training_curves"):
        assert paths[key].read_bytes()[:8] == PNG_SIGNATURE
        img = matplotlib.image.imread(paths[key])
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in paths.values())
    # Default out_dir is the grid dir itself.
    assert write_leaderboard(grid)["csv"] == grid / "leaderboard.csv"
    assert not [p for p in grid.iterdir() if p.name.endswith(".tmp")]


def test_plots_tolerate_empty_and_bad_history(grid, tmp_path):
    results = load_results(grid)
    (grid / "cells" / "ga__tofu-synth-forget10__tiny__s42" / "history.csv").write_bytes(b"\x00\xff garbage")
    plot_training_curves(grid, results, tmp_path / "curves.png")
    empty = leaderboard_table(results_frame([]))
    plot_tradeoff(empty, tmp_path / "empty.png")
    plot_training_curves(grid, [], tmp_path / "nocurves.png")
    for name in ("curves.png", "empty.png", "nocurves.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG_SIGNATURE
    assert "No successful results" in render_markdown(empty)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["curves.png", "empty.png", "nocurves.png"]


def test_atomic_writes(tmp_path):
    target = atomic_write_json(tmp_path / "sub" / "r.json",
                               {"a": float("nan"), "b": [1.0, float("inf")], "c": np.float32("nan"),
                                "d": np.int64(3), "e": {"f": np.float64("nan")}})
    assert json.loads(target.read_text()) == {"a": None, "b": [1.0, None], "c": None, "d": 3, "e": {"f": None}}
    assert "NaN" not in target.read_text()
    atomic_write_text(tmp_path / "t.txt", "hello")
    assert (tmp_path / "t.txt").read_text() == "hello"

    def boom(tmp: Path) -> None:
        tmp.write_text("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_save(tmp_path / "t.txt", boom)
    assert (tmp_path / "t.txt").read_text() == "hello"  # untouched
    leftovers = [p.name for p in tmp_path.rglob("*") if p.is_file()]
    assert sorted(leftovers) == ["r.json", "t.txt"]


def test_ranking_rule_ranks_only_methods_above_the_utility_bar(grid):
    # A third method keeps utility (0.48 >= 0.9 x target's 0.50): it alone is ranked.
    cell_id = "keep__tofu-synth-forget10__tiny__s42"
    _write(grid / "cells" / cell_id, {
        "cell_id": cell_id, "kind": "cell", "status": "ok", "error": None, "method": "keep",
        "method_label": "keep", "benchmark": BENCH, "split": SPLIT, "model": MODEL, "seed": 42,
        "summary": _summary(1e-3, 0.48), "cost": {}, "config": {}})
    table = leaderboard_table(results_frame(load_results(grid)))
    ranks = dict(zip(table["method_label"], table["rank"]))
    assert ranks["keep"] == 1 and math.isnan(ranks["npo"]) and math.isnan(ranks["ga"])
    # Ranked methods come first, then the others by forget quality, whatever their means.
    assert list(table["method_label"])[3:] == ["keep", "npo", "ga"]
    md = render_markdown(table)
    assert "Rank: by `forget_quality` among the methods whose `model_utility` is at least 0.9" in md


def test_ranking_rule_with_a_lower_is_better_utility():
    from unlearnbench.report.leaderboard import _rank_block

    meta = {"columns": [{"name": "rouge", "direction": "min"}, {"name": "ppl", "direction": "min"}],
            "ranking": {"forget": "rouge", "utility": "ppl", "min_ratio": 0.9, "anchor": "target"}}
    block = pd.DataFrame({"kind": ["ref", "cell", "cell", "cell"], "method": ["target", "a", "b", "c"],
                          "rouge": [0.9, 0.3, 0.1, 0.2], "ppl": [10.0, 11.0, 20.0, 10.5]})
    rank = _rank_block(block, meta)
    # Bar: perplexity at most 10 / 0.9 = 11.1; b (ppl 20) is out; c has the lower rouge.
    assert math.isnan(rank[0]) and rank[1] == 2 and math.isnan(rank[2]) and rank[3] == 1


def test_ranking_ties_on_the_forget_metric_go_to_more_utility():
    from unlearnbench.report.leaderboard import _rank_block

    meta = {"columns": [{"name": "harm", "direction": "min"}, {"name": "sim", "direction": "max"}],
            "ranking": {"forget": "harm", "utility": "sim", "min_ratio": 0.9, "anchor": "target"}}
    block = pd.DataFrame({"kind": ["ref", "cell", "cell", "cell"], "method": ["target", "a", "b", "c"],
                          "harm": [1.0, 0.0, 0.0, 0.1], "sim": [1.0, 0.95, 1.0, 1.0]})
    rank = _rank_block(block, meta)
    # a and b both remove every harmful answer; b keeps more similarity; c forgets less.
    assert list(rank[1:]) == [2.0, 1.0, 3.0]


def test_sweep_setting_is_chosen_on_validation_items_not_on_test_items(tmp_path):
    """Two settings of one method: the test numbers favour lr=2, the validation numbers lr=1;
    the leaderboard keeps lr=1 (reporting its test numbers) and shows the sweep."""
    g = tmp_path / "grid"
    val = {"npo[lr=1]": (0.3, 0.48), "npo[lr=2]": (0.01, 0.49)}  # (forget quality, utility) on validation
    test = {"npo[lr=1]": (0.02, 0.46), "npo[lr=2]": (0.5, 0.47)}
    _write(g / "refs" / "target", {"cell_id": "target", "kind": "ref", "status": "ok", "method": "target",
                                   "method_label": "target", "benchmark": BENCH, "split": SPLIT, "model": MODEL,
                                   "summary": _summary(1e-9, 0.5),
                                   "metrics": {"forget_quality": 1e-9, "model_utility": 0.5},
                                   "validation_metrics": {"forget_quality": 1e-9, "model_utility": 0.5}})
    for label in val:
        _write(g / "cells" / label, {
            "cell_id": label, "kind": "cell", "status": "ok", "method": "npo", "method_label": label,
            "benchmark": BENCH, "split": SPLIT, "model": MODEL, "seed": 42, "config": {"entry": "npo"},
            "summary": _summary(*test[label]),
            "metrics": {"forget_quality": test[label][0], "model_utility": test[label][1]},
            "validation_metrics": {"forget_quality": val[label][0], "model_utility": val[label][1]}})
    frame = results_frame(load_results(g))
    table = leaderboard_table(frame)
    assert list(table["method_label"]) == ["target", "npo[lr=1]"]
    assert table.set_index("method_label").loc["npo[lr=1]", "forget_quality"] == pytest.approx(0.02)  # test items
    sweep = table.attrs["sweep"]
    assert dict(zip(sweep["method_label"], sweep["chosen"])) == {"npo[lr=1]": True, "npo[lr=2]": False}
    md = render_markdown(table)
    assert "## Sweeps: each method's setting chosen on validation items" in md and "npo[lr=2]" in md


def test_sweep_ties_go_to_more_utility_then_to_the_smallest_value(tmp_path):
    """Settings that tie on the forget metric: the one keeping more utility wins, then the
    smaller swept value, never the label that sorts first as text ("lr=0.0001" < "lr=3e-05")."""
    def choose(val):
        g = tmp_path / f"g{len(list(tmp_path.iterdir()))}"
        _write(g / "refs" / "target", {
            "cell_id": "target", "kind": "ref", "status": "ok", "method": "target", "method_label": "target",
            "benchmark": BENCH, "split": SPLIT, "model": MODEL, "summary": _summary(1e-9, 0.5),
            "metrics": {"forget_quality": 1e-9, "model_utility": 0.5},
            "validation_metrics": {"forget_quality": 1e-9, "model_utility": 0.5}})
        for label, (fq, mu) in val.items():
            _write(g / "cells" / label, {
                "cell_id": label, "kind": "cell", "status": "ok", "method": "npo", "method_label": label,
                "benchmark": BENCH, "split": SPLIT, "model": MODEL, "seed": 42, "config": {"entry": "npo"},
                "summary": _summary(fq, mu), "metrics": {"forget_quality": fq, "model_utility": mu},
                "validation_metrics": {"forget_quality": fq, "model_utility": mu}})
        sweep = leaderboard_table(results_frame(load_results(g))).attrs["sweep"]
        return [lab for lab, c in zip(sweep["method_label"], sweep["chosen"]) if c]

    # equal forget quality and utility: the smallest lr, although "npo[lr=0.0001]" sorts first
    assert choose({"npo[lr=0.0001]": (0.3, 0.48), "npo[lr=3e-05]": (0.3, 0.48), "npo[lr=0.001]": (0.3, 0.48)}) \
        == ["npo[lr=3e-05]"]
    # equal forget quality: the one keeping more utility, whatever its lr
    assert choose({"npo[lr=0.0001]": (0.3, 0.47), "npo[lr=3e-05]": (0.3, 0.46), "npo[lr=0.001]": (0.3, 0.49)}) \
        == ["npo[lr=0.001]"]
    # a better forget metric still wins over utility
    assert choose({"npo[lr=0.0001]": (0.4, 0.46), "npo[lr=3e-05]": (0.3, 0.49)}) == ["npo[lr=0.0001]"]


def test_select_is_checked_against_the_benchmark(monkeypatch):
    from unlearnbench.benchmarks.base import Benchmark
    from unlearnbench.registry import benchmarks
    from unlearnbench.runner.grid import GridError, parse_grid

    base = {"name": "s", "benchmark": "tofu-synth", "methods": [{"name": "npo", "sweep": {"lr": [1e-4, 1e-3]}}]}
    grid = parse_grid({**base, "select": "validation"})
    assert all(c.select and c.entry == "npo" for c in grid.cells) and len(grid.cells) == 2
    with pytest.raises(GridError, match="select must be 'validation'"):
        parse_grid({**base, "select": "test"})
    # Every built-in benchmark now summarises its parts: one without them is refused.
    parse_grid({**base, "benchmark": "harmful-synth", "select": "validation"})
    monkeypatch.setattr(benchmarks.get("harmful-synth"), "summarise_records", Benchmark.summarise_records)
    with pytest.raises(GridError, match="cannot select a sweep's setting"):
        parse_grid({**base, "benchmark": "harmful-synth", "select": "validation"})


def test_chain_step_rows_take_the_references_of_their_evaluated_split(tmp_path):
    """A MUSE scalability step ("scal-2") is scored against the references of "forget": its
    ranking bar and its attack recovery use that target, not "n/a"."""
    g = tmp_path / "grid"  # results without benchmark_meta: the registered muse-synth's columns apply
    base = {"status": "ok", "benchmark": "muse-synth", "model": "tiny", "summary": {}}
    _write(g / "refs" / "target", {**base, "cell_id": "target", "kind": "ref", "method": "target",
                                   "method_label": "target", "split": "forget",
                                   "metrics": {"knowmem_f": 0.6, "knowmem_r": 0.5}})
    _write(g / "cells" / "ga-scal-2", {**base, "cell_id": "ga-scal-2", "kind": "cell", "method": "ga",
                                       "method_label": "ga", "split": "scal-2", "eval_split": "forget", "seed": 1,
                                       "config": {"chain": "scal", "step": 2},
                                       "metrics": {"knowmem_f": 0.2, "knowmem_r": 0.48}})
    _write(g / "cells" / "ga-scal-2" / "attacks" / "relearn", {
        **base, "cell_id": "ga-scal-2__relearn", "kind": "attack", "attack": "relearn", "parent": "ga-scal-2",
        "method": "ga", "method_label": "ga", "split": "scal-2", "metrics": {"knowmem_f": 0.4, "knowmem_r": 0.47}})
    table = leaderboard_table(results_frame(load_results(g)))
    ga = table.set_index("method_label").loc["ga"]
    assert ga["rank"] == 1  # 0.48 >= 0.9 x the forget target's 0.5
    assert ga["recovery@relearn"] == pytest.approx((0.4 - 0.2) / (0.6 - 0.2))


def test_robustness_columns_show_each_attack_once_with_its_std_as_plus_minus():
    """Several seeds add ``<col>_std`` columns; they are the ± of the attack's columns, not an
    attack of their own (a ``recovery@relearn_std`` once became a column "relearn_std")."""
    import pandas as pd

    from unlearnbench.report.leaderboard import robustness_columns

    table = pd.DataFrame({"n_seeds": [3], "forget_rougeL": [0.2], "forget_rougeL_std": [0.01],
                          "forget_rougeL@relearn": [0.5], "forget_rougeL@relearn_std": [0.1],
                          "recovery@relearn": [0.4], "recovery@relearn_std": [0.05],
                          "model_utility@relearn": [0.8], "model_utility@relearn_std": [0.02]})
    table.attrs["metas"] = {"tofu-synth": {"headline_forget": "forget_rougeL",
                                           "ranking": {"utility": "model_utility"}}}
    assert robustness_columns(table, "tofu-synth") == ["n_seeds", "forget_rougeL", "forget_rougeL@relearn",
                                                        "recovery@relearn", "model_utility@relearn"]


def _tofu_block(root: Path, split: str, model: str) -> Path:
    """Results of one TOFU grid block (a target reference and a GA cell) for split and model."""
    from unlearnbench.runner.jobs import benchmark_meta
    from unlearnbench.benchmarks.tofu import TofuBenchmark

    meta = benchmark_meta(TofuBenchmark("unused"))
    for kind, name in (("ref", "target"), ("cell", "ga")):
        _write(root / f"{kind}s" / name, {
            "cell_id": name, "kind": kind, "status": "ok", "error": None, "method": name,
            "method_label": name, "benchmark": "tofu", "split": split, "model": model, "seed": 42,
            "summary": _summary(1e-3, 0.5), "benchmark_meta": meta,
            "cost": {"wall_time_s": 1.0, "tokens": 10, "steps": 0, "peak_host_mem_mib": 1.0,
                     "peak_accel_mem_mib": None, "world_size": 1}})
    return root


def test_tofu_forget05_llama2_leaderboard_shows_only_its_own_published_rows(tmp_path):
    """benchmarks/tofu.yaml carries open-unlearning's rows for forget01/05/10 and two models: a
    forget05 / llama2-7b leaderboard shows those of forget05 and llama2-7b only, with their source."""
    from unlearnbench.runner.grid import load_grid

    grid = load_grid(Path(__file__).resolve().parents[1] / "benchmarks" / "tofu.yaml")
    md = render_markdown(leaderboard_table(results_frame(load_results(
        _tofu_block(tmp_path / "g", "forget05", "llama2-7b")))), published=grid.published)
    headers, rows = _md_table(md)
    published = [r for r in rows if "(published" in r]
    assert published == [f"{label} (published [1])" for label in
                         ("Finetuned", "Retain", "GradAscent", "GradDiff", "IdkDPO", "NPO", "SimNPO", "RMU")]
    fq, mu, tr = (_col(headers, c) for c in ("forget_quality", "model_utility", "forget_truth_ratio"))
    # forget05 on Llama-2-7b-chat (forget10's target would read 4.35e-25, forget01's 1.27e-03,
    # Llama-3.2-1B's 1.33e-13).
    assert rows["Finetuned (published [1])"][fq] == "5.9e-14" and rows["Finetuned (published [1])"][tr] == "0.51"
    assert rows["GradAscent (published [1])"][fq] == "1.9e-119" and rows["GradAscent (published [1])"][mu] == "0"
    assert rows["NPO (published [1])"][fq] == "9.0e-02" and rows["NPO (published [1])"][tr] == "0.71"
    assert ("[1] locuslab/open-unlearning@d3d7cf9:docs/repro.md, TOFU on Llama-2-7b-chat; that harness's "
            "runs (10 epochs, lr 1e-5, effective batch 32, 2x L40S) (first-hand)") in md
    assert md.count("(published") == 8
    # Another model's block of the same split shows its own rows, never these.
    other = render_markdown(leaderboard_table(results_frame(load_results(
        _tofu_block(tmp_path / "h", "forget05", "llama3.2-1b")))), published=grid.published)
    _, rows = _md_table(other)
    assert "Llama-3.2-1B-Instruct" in other and "Llama-2-7b-chat" not in other
    assert rows["Finetuned (published [1])"][fq] == "1.3e-13"


def test_a_published_row_without_a_source_is_refused_in_one_line(tmp_path):
    from unlearnbench.report.published import PublishedError, parse
    from unlearnbench.runner.grid import GridError, load_grid

    row = {"benchmark": "tofu", "split": "forget05", "model": "llama2-7b", "first_hand": True,
           "rows": {"GA": {"forget_quality": 0.1}}}
    with pytest.raises(PublishedError) as err:
        parse([row])
    assert str(err.value).startswith("published[0] (tofu forget05 llama2-7b): no source;")
    assert "\n" not in str(err.value)
    with pytest.raises(PublishedError, match="keyed by label only"):
        parse({"target": {"forget_quality": 0.1}})
    with pytest.raises(PublishedError, match="first_hand must be true or false"):
        parse([{**row, "source": "x", "first_hand": "yes"}])
    g = tmp_path / "g.yaml"
    g.write_text("name: g\nmodels: [tiny-test]\nbenchmark: tofu-synth\nsplits: [forget10]\nmethods: [ga]\n"
                 "published:\n  - {benchmark: tofu, split: forget05, model: llama2-7b, first_hand: true,\n"
                 "     rows: {GA: {forget_quality: 0.1}}}\n")
    with pytest.raises(GridError, match=r"published\[0\] \(tofu forget05 llama2-7b\): no source"):
        load_grid(g)


def test_muse_published_rows_are_keyed_to_forget_and_llama2_with_their_source():
    from unlearnbench.benchmarks.muse import MuseBenchmark, MuseBooksBenchmark
    from unlearnbench.report.published import parse, rows_for

    news = parse(MuseBenchmark.published)
    assert [r["label"] for r in news] == ["Finetuned", "Retain", "GradAscent", "GradDiff", "NPO", "SimNPO", "RMU"]
    assert news[0]["values"] == {"knowmem_f": 0.64, "verbmem_f": 0.58, "privleak": -99.81, "knowmem_r": 0.56}
    assert all(r["first_hand"] and "open-unlearning@d3d7cf9:docs/repro.md, MUSE News" in r["source"] for r in news)
    assert rows_for(news, "muse-news", [("forget", "llama2-7b")]) == news
    assert rows_for(news, "muse-news", [("scal-1", "llama2-7b"), ("forget", "tiny")]) == []
    books = parse(MuseBooksBenchmark.published)
    assert books[0]["values"]["privleak"] == -57.26 and rows_for(books, "muse-news", [("forget", "llama2-7b")]) == []


def test_copyright_gap_columns_are_distances_to_the_base_reference_of_the_same_block(tmp_path):
    """FLAT's forget quality gap (``Column.gap_to``): |x − x_base| of BLEU and ROUGE-L recall,
    computed by the report from the base reference of the cell's own (split, model) block."""
    from unlearnbench.benchmarks.copyright import CopyrightBenchmark
    from unlearnbench.runner.jobs import benchmark_meta

    bench = CopyrightBenchmark()
    meta = benchmark_meta(bench)
    # (kind, method, model, seed) -> (bleu, rougeL_recall); a second model's base must not leak in.
    jobs = {("ref", "target", "opt-2.7b", 42): (40.0, 0.80), ("ref", "base", "opt-2.7b", 42): (5.0, 0.25),
            ("cell", "ga", "opt-2.7b", 42): (0.5, 0.05), ("cell", "ga", "opt-2.7b", 43): (8.0, 0.45),
            ("ref", "base", "llama2-7b", 42): (2.0, 0.10), ("cell", "ga", "llama2-7b", 42): (3.0, 0.40)}
    g = tmp_path / "g"
    for (kind, method, model, seed), (bleu, rouge) in jobs.items():
        name = f"{method}__{model}__s{seed}"
        _write(g / f"{kind}s" / name, {
            "cell_id": name, "kind": kind, "status": "ok", "error": None, "method": method,
            "method_label": method, "benchmark": "copyright", "split": "train", "model": model, "seed": seed,
            "summary": {"bleu": bleu, "rougeL_recall": rouge, "perplexity": 10.0},
            "metrics": bench.metrics({"bleu": bleu, "rougeL_recall": rouge, "perplexity": 10.0}),
            "benchmark_meta": meta,
            "cost": {"wall_time_s": 1.0, "tokens": 10, "steps": 0, "peak_host_mem_mib": 1.0,
                     "peak_accel_mem_mib": None, "world_size": 1}})
    # A job's own metrics leave the gap out: it needs the reference's evaluation.
    assert "bleu_gap" not in bench.metrics({"bleu": 1.0}) and bench.metrics({"bleu": 1.0})["bleu"] == 1.0
    frame = results_frame(load_results(g)).set_index(["method", "model", "seed"])
    # By hand: opt-2.7b base has BLEU 5, ROUGE-L 0.25.
    assert frame.loc[("ga", "opt-2.7b", 42), "bleu_gap"] == pytest.approx(4.5)     # |0.5 − 5|
    assert frame.loc[("ga", "opt-2.7b", 42), "rougeL_gap"] == pytest.approx(0.20)  # |0.05 − 0.25|
    assert frame.loc[("ga", "opt-2.7b", 43), "bleu_gap"] == pytest.approx(3.0)     # |8 − 5|
    assert frame.loc[("target", "opt-2.7b", 42), "rougeL_gap"] == pytest.approx(0.55)
    assert frame.loc[("base", "opt-2.7b", 42), "bleu_gap"] == 0.0
    assert frame.loc[("ga", "llama2-7b", 42), "bleu_gap"] == pytest.approx(1.0)    # |3 − 2|, its own base
    assert frame.loc[("ga", "llama2-7b", 42), "rougeL_gap"] == pytest.approx(0.30)
    table = leaderboard_table(results_frame(load_results(g))).set_index(["method", "model"])
    assert table.loc[("ga", "opt-2.7b"), "bleu_gap"] == pytest.approx(3.75)  # mean of 4.5 and 3.0
    md = render_markdown(leaderboard_table(results_frame(load_results(g))))
    assert "bleu_gap ↓" in md and "rougeL_gap ↓" in md
    # Without the base reference in the block there is no gap (NaN), never a gap to something else.
    (g / "refs" / "base__opt-2.7b__s42" / "result.json").unlink()
    frame = results_frame(load_results(g)).set_index(["method", "model", "seed"])
    assert math.isnan(frame.loc[("ga", "opt-2.7b", 42), "bleu_gap"])
    assert frame.loc[("ga", "llama2-7b", 42), "bleu_gap"] == pytest.approx(1.0)


def test_every_gap_column_names_a_reference_of_its_benchmark():
    from unlearnbench.registry import benchmarks

    gaps = [(name, c) for name in benchmarks.names() for c in benchmarks.get(name).columns if c.gap_to]
    assert {(name, c.name) for name, c in gaps} >= {("copyright", "bleu_gap"), ("copyright-synth", "rougeL_gap")}
    for name, col in gaps:
        assert col.gap_to in [r.name for r in benchmarks.get(name).references], (name, col.name)


def test_llmu_copyright_block_shows_only_its_model_leak_rates_with_their_source(tmp_path):
    """benchmarks/llmu.yaml: a copyright / opt-2.7b block shows LLMU's OPT-2.7B leak rates only
    (never OPT-1.3B's or Llama's, nor the harmful or hallucination rows), marked secondary."""
    from unlearnbench.benchmarks.copyright import CopyrightBenchmark
    from unlearnbench.runner.jobs import benchmark_meta
    from unlearnbench.runner.grid import load_grid

    grid = load_grid(Path(__file__).resolve().parents[1] / "benchmarks" / "llmu.yaml")
    meta = benchmark_meta(CopyrightBenchmark())
    for kind, name in (("ref", "target"), ("ref", "base"), ("cell", "ga")):
        _write(tmp_path / "g" / f"{kind}s" / name, {
            "cell_id": name, "kind": kind, "status": "ok", "error": None, "method": name, "method_label": name,
            "benchmark": "copyright", "split": "train", "model": "opt-2.7b", "seed": 42,
            "summary": {"bleu": 1.0, "rougeL_recall": 0.1, "perplexity": 9.0}, "benchmark_meta": meta,
            "cost": {"wall_time_s": 1.0, "tokens": 10, "steps": 0, "peak_host_mem_mib": 1.0,
                     "peak_accel_mem_mib": None, "world_size": 1}})
    md = render_markdown(leaderboard_table(results_frame(load_results(tmp_path / "g"))), published=grid.published)
    headers, rows = _md_table(md)
    assert [r for r in rows if "(published" in r] == ["Original (published [1])", "GA (published [1])"]
    unlearned, unseen = _col(headers, "leak_rate_unlearned"), _col(headers, "leak_rate_unseen")
    assert rows["Original (published [1])"][unlearned] == "0.74" and rows["Original (published [1])"][unseen] == "0.7"
    assert rows["GA (published [1])"][unlearned] == "0"
    assert "copyright (Harry Potter) leak rate on unlearned / unseen prompts, OPT-2.7B" in md
    assert md.count("(secondary)") == 1 and "(first-hand)" not in md
    assert "harmful_rate" not in md and "0.81" not in md and "0.15" not in md


def test_llmu_harmful_rows_of_one_model_come_from_two_named_secondary_sources():
    from unlearnbench.report.published import parse, rows_for
    from unlearnbench.runner.grid import load_grid

    rows = parse(load_grid(Path(__file__).resolve().parents[1] / "benchmarks" / "llmu.yaml").published)
    opt = rows_for(rows, "harmful", [("train", "opt-1.3b")])
    assert [r["label"] for r in opt] == ["Original", "GA", "GA+Mismatch", "Finetuning"]
    assert opt[3]["values"] == {"harmful_rate_forget": 0.345, "harmful_rate_unseen": 0.345}
    assert len({r["source"] for r in opt}) == 2 and not any(r["first_hand"] for r in opt)
    assert "Week12.pdf p.121" in opt[3]["source"]
    assert rows_for(rows, "harmful", [("train", "opt-2.7b")])[-1]["values"]["harmful_rate_unseen"] == 0.16
    assert rows_for(rows, "copyright", [("train", "opt-1.3b")])[0]["values"] == {
        "leak_rate_unlearned": 0.15, "leak_rate_unseen": 0.2}
