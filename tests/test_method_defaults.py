"""The real-model grids carry each method's published defaults (docs/methods.md §5.1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from unlearnbench.runner.grid import GridError, load_grid, parse_grid

GRIDS = Path(__file__).resolve().parents[1] / "benchmarks"


def cells(name: str, model: str = "llama2-7b") -> dict[tuple[str, str, str], dict]:
    return {(c.label, c.benchmark, c.split): c.params for c in load_grid(GRIDS / name, model=model).cells}


def test_tofu_grid_uses_the_authors_recipes():
    got = cells("tofu.yaml")
    # SimNPO per split (OPTML-Group/Unlearn-Simple TOFU/README.md); forget01 keeps forget10's.
    assert [(got["simnpo", "tofu", s]["beta"], got["simnpo", "tofu", s]["gamma_forget"])
            for s in ("forget01", "forget05", "forget10")] == [(4.5, 0.125), (2.5, 0.1375), (4.5, 0.125)]
    assert {got[m, "tofu", "forget10"]["epochs"] for m in ("npo", "npo_rt", "simnpo")} == {10}
    assert got["ga", "tofu", "forget10"]["epochs"] == 5  # TOFU's own recipe
    assert got["llmu", "tofu", "forget01"]["grad_clip"] == 0.0
    assert got["flat", "tofu", "forget01"]["divergence"] == "tv"
    wagle = {label: (p["lr"], p["weight_decay"], p["ratio"], p["inner"])
             for (label, _, split), p in got.items() if label.startswith("wagle") and split == "forget10"}
    assert wagle == {"wagle[grad_diff]": (7e-6, 0.1, 0.95, "grad_diff"), "wagle[npo_rt]": (1e-5, 0.1, 0.95, "npo_rt"),
                     "wagle[idk]": (2e-5, 0.1, 0.8, "idk")}


def test_muse_grid_gives_simnpo_its_recipe_per_corpus():
    got = cells("muse.yaml")
    news, books = got["simnpo", "muse-news", "forget"], got["simnpo", "muse-books", "forget"]
    assert (news["beta"], news["delta"], books["beta"], books["delta"]) == (0.7, 0.07, 0.75, 0.075)
    assert news["gamma_forget"] == 1.0 and news["lambda_retain"] == 0.1 and news["epochs"] == 10


def test_wmdp_and_llmu_grids():
    wmdp = cells("wmdp.yaml", model="zephyr-7b")
    assert {(p["lr"], p["weight_decay"]) for (label, _, _), p in wmdp.items() if label.startswith("wagle[npo_rt]")} \
        == {(1e-5, 0.0)}
    assert {(p["lr"], p["weight_decay"]) for (label, _, _), p in wmdp.items() if label.startswith("wagle[grad_diff]")} \
        == {(5e-6, 0.0)}
    llmu = cells("llmu.yaml", model="opt-1.3b")
    assert {p["grad_clip"] for (label, _, _), p in llmu.items() if label in ("llmu", "ga+mismatch")} == {0.0}
    assert {p["grad_clip"] for (label, _, _), p in llmu.items() if label == "ga"} == {1.0}


def test_split_and_benchmark_params_refuse_names_the_grid_does_not_run():
    raw = {"name": "x", "benchmark": "tofu-synth", "splits": ["forget01"], "models": ["tiny-test"],
           "methods": [{"name": "simnpo", "split_params": {"forget05": {"beta": 2.5}}}]}
    with pytest.raises(GridError, match=r"split_params names \['forget05'\], which the grid does not run"):
        parse_grid(raw)
    raw["methods"] = [{"name": "simnpo", "benchmark_params": {"muse-news": {"beta": 0.7}}}]
    with pytest.raises(GridError, match=r"benchmark_params names \['muse-news'\]"):
        parse_grid(raw)
    raw["methods"] = [{"name": "simnpo", "params": {"beta": 1.0}, "split_params": {"forget01": {"beta": 2.5}},
                       "sweep": {"lr": [1e-3]}}]
    (cell,) = parse_grid(raw).cells
    assert cell.params["beta"] == 2.5 and cell.params["lr"] == 1e-3


def test_curves_grid_trains_what_the_default_leaderboard_trains():
    """tofu-synth-curves.yaml is default.yaml plus periodic evaluation: every method with the same
    settings, so its last-step rows are the default leaderboard's cells evaluated on test items."""
    def training(name):
        out = {}
        for c in load_grid(GRIDS / name, model="tiny").cells:
            out[(c.label, c.split, c.seed)] = {k: v for k, v in c.params.items() if k not in ("eval_every", "keep")}
        return out
    assert training("tofu-synth-curves.yaml") == training("default.yaml")
