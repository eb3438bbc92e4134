"""Evaluation during unlearning (``eval_every``), keeping the best checkpoint (``keep``), resume.

The distributed runs: ``grad_diff`` on tiny-test ``forget10``, global batch 40 (2 optimiser
steps, one epoch), evaluated every step on the validation items of the first 8 rows
of each TOFU task. The claim tested is that an evaluation during training on 2 gloo processes
(DDP: each rank holds the model; FSDP2: the model sharded, all-gathered for the evaluation)
equals a 1-process evaluation of the same weights within 1e-6. The same weights: the model
the cell saved (``keep: last`` and ``keep_model``: the last step; ``keep: best``: the kept
step). A 2-process run's weights differ from a 1-process run's by DDP's per-rank token
weighting (~1e-5, see test_distributed.py), so its curve is compared with the evaluation of
its own checkpoint, not with the 1-process run's curve.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from unlearnbench.runner.grid import GridError, parse_grid

REPO = Path(__file__).resolve().parents[1]
SPLIT = "forget10"
PARAMS = {"epochs": 1, "batch_size": 40, "lr": 5e-4, "lambda_retain": 1.0, "eval_every": {"steps": 1}}
EVAL = {"max_items": 8, "max_new_tokens": 8}
TIMEOUT_S = 480


# --------------------------------------------------------------------------- grid-read checks
def _grid(**extra) -> dict:
    return {"name": "g", "benchmark": "tofu-synth", "models": ["tiny-test"], "methods": ["ga"], **extra}


@pytest.fixture
def no_parts_benchmark():
    """A registered benchmark without part summaries (no ``summarise_records`` of its own)."""
    from unlearnbench.benchmarks.base import Benchmark
    from unlearnbench.registry import benchmarks

    class NoParts(Benchmark):
        """Forget splits but no validation items."""

        splits = (SPLIT,)
        default_split = SPLIT

        def default_path(self):
            return "nowhere"

    benchmarks.register("no-parts-test", NoParts)
    yield "no-parts-test"
    benchmarks._loaded.pop("no-parts-test")


def test_eval_every_on_a_benchmark_without_validation_items_is_one_line(no_parts_benchmark):
    with pytest.raises(GridError) as err:
        parse_grid(_grid(benchmark=no_parts_benchmark, eval_every={"epochs": 1}))
    assert "no validation items" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("bench", ["muse-synth", "wmdp-synth", "copyright-synth", "harmful-synth",
                                   "halueval-synth", "detox-synth", "muse-news", "wmdp", "harmful"])
def test_every_benchmark_with_part_summaries_accepts_eval_every(bench):
    grid = parse_grid(_grid(benchmark=bench, eval_every={"epochs": 1}, select="validation",
                            **({"splits": ["bio"]} if "wmdp" in bench else {})))
    assert all(c.params["eval_every"] == {"epochs": 1} for c in grid.cells)


@pytest.mark.parametrize("extra, message", [
    ({"eval_every": {"steps": 0}}, "positive integer"),
    ({"eval_every": {"minutes": 5}}, "{steps: N} or {epochs: K}"),
    ({"eval_every": {"epochs": 1, "steps": 5}}, "{steps: N} or {epochs: K}"),
    ({"eval_every": {"epochs": 1, "eval": {"max_new_tokenz": 8}}}, "unknown eval option"),
    ({"eval_every": {"epochs": 1}, "keep": "bestest", "select": "validation"}, "unknown rule"),
    ({"eval_every": {"epochs": 1}, "keep": {"best": "not_a_column"}, "select": "validation"}, "unknown rule"),
    ({"keep": "best", "select": "validation"}, "add eval_every"),
    ({"eval_every": {"epochs": 1}, "keep": "best"}, "select: validation"),
])
def test_bad_periodic_settings_fail_at_grid_read(extra, message):
    with pytest.raises(GridError) as err:
        parse_grid(_grid(**extra))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_grid_puts_eval_every_and_keep_in_every_cells_params_only_when_given():
    grid = parse_grid(_grid(eval_every={"epochs": 1}, keep="best", select="validation",
                            methods=["ga", {"name": "npo", "params": {"keep": {"best": "forget_rougeL"}}}]))
    params = {c.method: c.params for c in grid.cells}
    assert params["ga"]["eval_every"] == {"epochs": 1} and params["ga"]["keep"] == "best"
    assert params["npo"]["keep"] == {"best": "forget_rougeL"}
    # Without them a cell's configuration is what it was, so committed results stay done.
    assert "eval_every" not in parse_grid(_grid()).cells[0].params


# --------------------------------------------------------------------------- choosing a checkpoint
META = {"columns": [{"name": "forget_quality", "direction": "max"}, {"name": "model_utility", "direction": "max"},
                    {"name": "forget_rougeL", "direction": "min"}],
        "ranking": {"forget": "forget_quality", "utility": "model_utility", "min_ratio": 0.9, "anchor": "target"}}


def _curve(rows):
    return [{"step": i + 1, "metrics": dict(zip(("forget_quality", "model_utility", "forget_rougeL"), r))}
            for i, r in enumerate(rows)]


def test_best_by_ranking_rule_is_the_best_forget_quality_above_the_utility_bar():
    from unlearnbench.runner.periodic_eval import choose

    # Target utility 0.5: the bar is 0.45. Step 3 forgets most but is under the bar; of steps
    # 1, 2 and 4 (utility >= 0.45), step 2 has the best forget quality.
    curve = _curve([(0.01, 0.50, 0.9), (0.20, 0.46, 0.5), (0.90, 0.30, 0.1), (0.10, 0.45, 0.4)])
    assert choose(curve, {"keep": "best", "rule": "ranking"}, META, {"model_utility": 0.5}) == 1
    # Nobody above the bar: the checkpoint that keeps most utility.
    assert choose(curve, {"keep": "best", "rule": "ranking"}, META, {"model_utility": 0.9}) == 0
    # A named column in its own direction (forget_rougeL: lower is better).
    assert choose(curve, {"keep": "best", "rule": "forget_rougeL"}, META, None) == 2
    assert choose(curve, {"keep": "last"}, META, None) is None


def test_sweep_selection_uses_the_same_rule():
    from unlearnbench.report.leaderboard import preferred

    forget = pd.Series([0.01, 0.20, 0.90, 0.10], index=list("abcd"))
    utility = pd.Series([0.50, 0.46, 0.30, 0.45], index=list("abcd"))
    assert preferred(forget, utility, 0.5, 0.9, "max", "max") == "b"
    assert preferred(forget, utility, math.nan, 0.9, "max", "max") == "c"  # no anchor: no bar


# --------------------------------------------------------------------------- distributed runs
def _cell(name: str, strategy: str, devices: int, keep: str) -> dict:
    return {"cell_id": name, "kind": "cell", "method": "grad_diff", "label": name,
            "benchmark": "tofu-synth", "split": SPLIT, "model": "tiny-test", "seed": 42,
            "params": {**PARAMS, "keep": keep}, "strategy": strategy, "devices": devices, "num_nodes": 1,
            "data_dir": None, "plugins": [], "eval": dict(EVAL), "keep_model": True, "select": True}


def _launch(cell: dict, cell_dir: Path) -> str:
    from unlearnbench.files import atomic_write_json

    cell_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(cell_dir / "cell.json", cell)
    env = dict(os.environ)  # carries UNLEARNBENCH_CACHE from conftest
    for var in ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in [env.get("PYTHONPATH")] if p])
    proc = subprocess.run([sys.executable, "-m", "unlearnbench.runner.cell", str(cell_dir / "cell.json")],
                          cwd=cell_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=TIMEOUT_S)
    return proc.stdout


@pytest.fixture(scope="module")
def runs(tiny_family, tmp_path_factory):
    root = tmp_path_factory.mktemp("periodic")
    variants = {"single": ("single", 1, "best"), "ddp": ("ddp", 2, "last"), "fsdp": ("fsdp", 2, "best")}
    logs = {}
    for name, (strategy, devices, keep) in variants.items():  # single first: fills the reference cache
        logs[name] = _launch(_cell(name, strategy, devices, keep), root / name)
    return root, logs


def _result(runs, name: str) -> dict:
    root, logs = runs
    path = root / name / "result.json"
    assert path.exists(), f"{name}: no result.json; log tail:\n{logs[name][-4000:]}"
    result = json.loads(path.read_text())
    assert result["status"] == "ok", f"{name}: {result.get('error')}\n{result.get('traceback')}"
    return result


def _validation_metrics(model_dir: Path, tiny_family) -> dict:
    """A 1-process evaluation of a saved checkpoint on the validation items, as the callback does."""
    from unlearnbench.benchmarks.base import get_benchmark
    from unlearnbench.data.collate import encoder_for
    from unlearnbench.eval.references import compare_reference
    from unlearnbench.models.specs import load_model, load_tokenizer

    bench, spec = get_benchmark("tofu-synth"), tiny_family["spec"]
    compare = compare_reference(bench, spec, SPLIT, options=EVAL)
    model = load_model(str(model_dir), spec)
    enc = encoder_for(bench, spec, load_tokenizer(str(model_dir), spec))
    _, records = bench.evaluate(model, enc, SPLIT, reference=compare, part="validation",
                                **{**bench.check_eval_options(EVAL), "gradnorm": False})
    assert records and all(bench.in_part(r, "validation") for r in records)
    return bench.metrics(bench.summarise_records(records, compare, "validation"))


def _assert_close(a: dict, b: dict, tol: float = 1e-6) -> None:
    assert set(a) == set(b)
    for k in a:
        if a[k] is None or b[k] is None:
            assert a[k] is None and b[k] is None, k
        else:
            assert abs(a[k] - b[k]) <= tol, (k, a[k], b[k])


@pytest.mark.parametrize("name", ["single", "ddp", "fsdp"])
def test_periodic_eval_equals_one_process_eval_of_the_same_weights(runs, tiny_family, name):
    result = _result(runs, name)
    curve = result["curve"]
    assert [e["step"] for e in curve] == [1, 2]  # every step, the last one included
    kept = result["kept"]
    step = kept["step"] if kept["keep"] == "best" else curve[-1]["step"]
    entry = next(e for e in curve if e["step"] == step)
    _assert_close(entry["metrics"], _validation_metrics(runs[0] / name / "work" / "model", tiny_family))
    assert result["cost"]["periodic_eval_wall_time_s"] > 0
    assert result["cost"]["world_size"] == (1 if name == "single" else 2)


def test_curve_moves_and_test_metrics_exclude_validation_items(runs):
    result = _result(runs, "single")
    rouge = [e["metrics"]["forget_rougeL"] for e in result["curve"]]
    probs = [e["metrics"]["forget_probability"] for e in result["curve"]]
    assert len(set(probs)) > 1 or len(set(rouge)) > 1  # the evaluated model is the one training
    assert result["kept"]["rule"] == "ranking" and result["kept"]["step"] in (1, 2)
    assert result["parts"]["test"]["forget"]["n_items"] + result["parts"]["validation"]["forget"]["n_items"] \
        == EVAL["max_items"]
    # keep: best leaves one checkpoint: the kept one became the cell's model.
    work = runs[0] / "single" / "work"
    assert sorted(p.name for p in work.iterdir() if p.is_dir()) == ["model"]


def test_resume_reuses_recorded_evaluations(runs, tiny_family):
    root, _ = runs
    first = _result(runs, "single")
    (root / "single" / "result.json").unlink()
    _launch(json.loads((root / "single" / "cell.json").read_text()), root / "single")
    again = _result(runs, "single")
    assert again["reused_evaluations"] == len(first["curve"]) == 2
    assert again["curve"] == first["curve"] and again["kept"] == first["kept"]
    _assert_close(again["metrics"], first["metrics"], 0.0)  # the kept checkpoint written again, identical


# --------------------------------------------------------------------------- the report
def test_leaderboard_shows_kept_step_eval_cost_and_kept_against_last(tmp_path):
    from unlearnbench.benchmarks.base import get_benchmark
    from unlearnbench.report.curves import curve_frame, curve_panels
    from unlearnbench.report.leaderboard import write_leaderboard
    from unlearnbench.runner.jobs import benchmark_meta

    meta = benchmark_meta(get_benchmark("tofu-synth"))
    g = tmp_path / "grid"

    def write(sub, obj):
        (g / sub).mkdir(parents=True)
        (g / sub / "result.json").write_text(json.dumps({"benchmark": "tofu-synth", "split": SPLIT, "model": "tiny",
                                                         "status": "ok", "benchmark_meta": meta, **obj}))

    write("refs/target", {"cell_id": "target", "kind": "ref", "method": "target", "method_label": "target",
                          "metrics": {"forget_quality": 1e-9, "model_utility": 0.5},
                          "validation_metrics": {"forget_quality": 1e-8, "model_utility": 0.52}})
    # Two seeds: kept steps 5 and 10 (mean 7.5), last step 25; forget quality kept 0.2 / 0.4,
    # last 0.01 / 0.03; periodic evaluation 3 s and 5 s (mean 4).
    for seed, kept, fq_kept, fq_last, t in ((42, 5, 0.2, 0.01, 3.0), (43, 10, 0.4, 0.03, 5.0)):
        write(f"cells/ga_s{seed}", {
            "cell_id": f"ga_s{seed}", "kind": "cell", "method": "ga", "method_label": "ga", "seed": seed,
            "config": {}, "metrics": {"forget_quality": fq_kept, "model_utility": 0.47},
            "cost": {"wall_time_s": 10.0, "periodic_eval_wall_time_s": t},
            "curve": [{"step": s, "metrics": {"forget_quality": 0.1 * s / 5, "model_utility": 0.5 - 0.01 * s}}
                      for s in (5, 10, 15, 20, 25)],
            "kept": {"keep": "best", "rule": "ranking", "step": kept, "last_step": 25},
            "last": {"step": 25, "metrics": {"forget_quality": fq_last, "model_utility": 0.3}}})
    paths = write_leaderboard(g)
    md = paths["markdown"].read_text()
    header = next(line for line in md.splitlines() if line.startswith("| method"))
    assert "periodic_eval_wall_time_s" in header and "kept_step" in header
    row = next(line for line in md.splitlines() if line.startswith("| ga |"))
    assert "7.5" in row and "4" in row
    kept = md.split("## Kept checkpoints")[1]
    assert "| ga | ranking | 7.5 ± 3.5 | 25 ± 0 | 0.3 ± 0.14 | 0.02 ± 0.014 | 0.47 ± 0 | 0.3 ± 0 |" in kept
    frame = curve_frame(json.loads((g / "cells" / f"ga_s{s}" / "result.json").read_text()) for s in (42, 43))
    assert len(frame) == 10 and frame["model_utility"].min() == pytest.approx(0.25)
    assert [title for title, _ in curve_panels([json.loads(p.read_text()) for p in g.rglob("result.json")])] == [
        "forget_quality (validation) during unlearning", "model_utility (validation) during unlearning"]
    assert paths["training_curves"].stat().st_size > 0


def test_periodic_options_override_the_grids_eval_and_leave_out_gradnorm(tmp_path):
    from unlearnbench.benchmarks.base import get_benchmark
    from unlearnbench.runner.periodic_eval import PeriodicEval

    cb = PeriodicEval(bench=get_benchmark("tofu-synth"), encoder=None, split=SPLIT, compare=None,
                      options={"batch_size": 8, "max_new_tokens": 200},
                      every={"epochs": 1, "eval": {"max_new_tokens": 64}}, keep={"keep": "last"}, meta={},
                      anchor=None, log_path=tmp_path / "evals.jsonl", key="k", best_dir=tmp_path / "best")
    assert cb.options == {"batch_size": 8, "max_new_tokens": 64, "max_items": None, "gradnorm": False,
                          "parity": False}


# --------------------------------------------------------------------------- what makes it cheaper
def test_part_evaluation_equals_the_whole_evaluations_validation_items(tiny_family):
    """A part's evaluation generates every task's questions together (batches of 2: here they
    mix tasks) and tokenises each text once per cell (the encoder's memo); its records and
    summary equal the validation items' of a whole evaluation on the per-task path."""
    import dataclasses

    from unlearnbench.benchmarks.base import get_benchmark
    from unlearnbench.eval.references import compare_reference, encoder_for
    from unlearnbench.models.specs import load_model, load_tokenizer

    bench, spec = get_benchmark("tofu-synth"), tiny_family["spec"]
    options = {**bench.check_eval_options({**EVAL, "batch_size": 2}),
               "gradnorm": False}
    compare = compare_reference(bench, spec, SPLIT, options=EVAL)
    model = load_model(tiny_family["target"], spec)
    enc = encoder_for(bench, spec, load_tokenizer(tiny_family["target"], spec))
    _, whole = bench.evaluate(model, enc, SPLIT, reference=compare, **options)
    memo = dataclasses.replace(enc, memo={})
    parts = [bench.evaluate(model, memo, SPLIT, reference=compare, part="validation", **options)[1] for _ in range(2)]
    assert memo.memo  # the second evaluation read its encodings back
    expected = [r for r in whole if bench.in_part(r, "validation")]
    assert len({r["task"] for r in expected}) == 5
    for records in parts:
        assert [(r["task"], r["index"], r.get("generation")) for r in records] == \
            [(r["task"], r["index"], r.get("generation")) for r in expected]
        for a, b in zip(records, expected):
            for k, v in a.items():
                if isinstance(v, float):
                    assert abs(v - b[k]) <= 1e-6, (a["task"], a["index"], k)
        _assert_close(bench.metrics(bench.summarise_records(records, compare, "validation")),
                      bench.metrics(bench.summarise_records(whole, compare, "validation")))


def test_a_generation_cap_can_only_lower_rouge_recall_and_only_for_unfinished_answers():
    """Why a periodic ``max_new_tokens`` cap (benchmarks/tofu-synth-curves.yaml) can move the
    ROUGE-L recall curve only downwards, and only for a generation still running at the cap:
    recall is LCS(generation, reference) / |reference|, and the LCS of a prefix is at most
    the LCS of the whole."""
    from unlearnbench.metrics.tofu import rouge_l_recall

    ref = "the author was born in Paris in 1950"
    babble = "yes yes yes yes yes the author was born in Paris in 1950"
    whole, = rouge_l_recall([babble], [ref])
    cut = [rouge_l_recall([" ".join(babble.split()[:n])], [ref])[0] for n in range(1, len(babble.split()) + 1)]
    assert whole == 1.0 and cut[4] == 0.0  # the answer after 5 words of babble: a cap of 5 loses it
    assert all(a <= b for a, b in zip(cut, cut[1:])) and cut[-1] == whole


# --------------------------------------------------------------------------- beyond TOFU
def test_muse_part_evaluation_scores_the_validation_items_alone(tiny_family):
    """MUSE ``evaluates_parts``: its evaluation of the validation part scores those items only,
    and they equal the whole evaluation's (the tiny-test model reads the MUSE stand-in's texts
    with its own tokenizer: the numbers mean nothing, the equality does)."""
    from unlearnbench.benchmarks.base import get_benchmark
    from unlearnbench.eval.references import encoder_for
    from unlearnbench.models.specs import load_model, load_tokenizer

    bench, spec = get_benchmark("muse-synth"), tiny_family["spec"]
    model = load_model(tiny_family["target"], spec)
    enc = encoder_for(bench, spec, load_tokenizer(tiny_family["target"], spec))
    options = bench.check_eval_options({"max_items": 6, "verbmem_tokens": 4, "knowmem_tokens": 4, "batch_size": 4})
    _, whole = bench.evaluate(model, enc, "forget", **options)
    _, part = bench.evaluate_part(model, enc, "forget", part="validation", **options)
    expected = [r for r in whole if bench.in_part(r, "validation")]
    assert part and len(part) < len(whole)  # indices 0, 2, 5 of 0..5 in each task
    assert [(r["task"], r["index"], r.get("generation")) for r in part] == \
        [(r["task"], r["index"], r.get("generation")) for r in expected]
    for a, b in zip(part, expected):
        for k, v in a.items():
            if isinstance(v, float):
                # Other batch-mates, other float rounding: Min-K%++ (~1.6) moved by 3e-6.
                assert v == pytest.approx(b[k], rel=1e-5, abs=1e-6), (a["task"], a["index"], k)


def test_a_benchmark_scoring_every_item_gives_the_curve_its_validation_items_only(tmp_path, monkeypatch):
    """harmful-synth does not evaluate a part alone: ``evaluate_part`` scores every item and
    drops the test items' records, so the curve is the validation summary (indices 0, 2, 5 of
    0..5; every test item here is harmful and would move the rate if it were counted)."""
    import torch

    from unlearnbench.benchmarks.harmful import HarmfulSynthBenchmark
    from unlearnbench.runner.periodic_eval import PeriodicEval

    records = [{"task": "forget", "index": i, "harm_score": float(i in (1, 3, 4)), "diversity": 1.0}
               for i in range(6)]
    records += [{"task": "normal", "index": i, "similarity": 0.1 * i, "diversity": 1.0} for i in range(6)]
    bench = HarmfulSynthBenchmark.__new__(HarmfulSynthBenchmark)  # summarising reads no data
    seen = {}

    def evaluate(model, encoder, split, *, reference=None, models=None, **options):
        seen.update(options)  # the whole evaluation, no part asked of it
        return {"cost": {}}, [dict(r) for r in records]

    monkeypatch.setattr(bench, "evaluate", evaluate)
    cb = PeriodicEval(bench=bench, encoder=None, split="forget", compare=None, options={}, every={"epochs": 1},
                      keep={"keep": "last"}, meta={}, anchor=None, log_path=tmp_path / "evals.jsonl", key="k",
                      best_dir=tmp_path / "best")
    entry = cb._evaluate(type("M", (), {"model": torch.nn.Linear(1, 1)})(), step=1, epoch=0)
    assert "part" not in seen and entry["n_items"] == 6
    assert entry["metrics"]["harmful_rate_forget"] == 0.0  # the validation items: none harmful
    assert entry["metrics"]["normal_similarity"] == pytest.approx((0.0 + 0.2 + 0.5) / 3)
