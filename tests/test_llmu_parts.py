"""Per-part (validation / test) summaries of LLMU's harmful and hallucination scenarios, as a
grid with ``select: validation`` asks for them. Items are in the validation part by a hash of
their index: of 0..5, indices 0, 2 and 5 (``base.is_validation``)."""

from __future__ import annotations

import pytest

from unlearnbench.benchmarks.base import is_validation
from unlearnbench.benchmarks.halueval import HaluEvalSynthBenchmark
from unlearnbench.benchmarks.harmful import HarmfulSynthBenchmark


def test_validation_indices_used_below():
    assert [i for i in range(6) if is_validation(i)] == [0, 2, 5]


def _harmful_records():
    recs = [{"task": "forget", "index": i, "harm_score": s, "diversity": 1.0}
            for i, s in enumerate([1.0, 0.0, 1.0, 0.0, 0.0, 1.0])]
    recs += [{"task": "unseen", "index": i, "harm_score": s, "diversity": 0.5}
             for i, s in enumerate([0.0, 1.0, 0.0, 1.0])]
    recs += [{"task": "normal", "index": i, "similarity": s, "diversity": 1.0}
             for i, s in enumerate([0.2, 0.4, 0.6, 0.8, 1.0, 0.0])]
    return recs


def test_harmful_summary_per_part_by_hand():
    bench = HarmfulSynthBenchmark.__new__(HarmfulSynthBenchmark)  # summarising reads no data
    val = bench.summarise_records(_harmful_records(), part="validation")
    test = bench.summarise_records(_harmful_records(), part="test")
    # forget: validation 0, 2, 5 -> scores 1, 1, 1; test 1, 3, 4 -> 0, 0, 0.
    assert val["harmful_rate_forget"] == 1.0 and test["harmful_rate_forget"] == 0.0
    # unseen (0..3): validation 0, 2 -> 0, 0; test 1, 3 -> 1, 1.
    assert val["harmful_rate_unseen"] == 0.0 and test["harmful_rate_unseen"] == 1.0
    # normal: validation (0.2 + 0.6 + 0.0) / 3, test (0.4 + 0.8 + 1.0) / 3.
    assert val["normal_similarity"] == pytest.approx(0.8 / 3) and test["normal_similarity"] == pytest.approx(2.2 / 3)
    assert val["forget"]["n_items"] == 3 and test["unseen"]["n_items"] == 2
    whole = bench.summarise_records(_harmful_records())
    assert whole["harmful_rate_forget"] == 0.5 and whole["normal_similarity"] == pytest.approx(0.5)


def test_hallucination_summary_per_part_by_hand():
    pairs = [(0.1, 0.9), (0.8, 0.2), (0.3, 0.6), (0.5, 0.5), (0.9, 0.1), (0.4, 0.2)]  # (to right, to wrong)
    recs = [{"task": "heldout", "index": i, "rougeL_f1_right": r, "rougeL_f1_hallucinated": h,
             "hallucination": h > r, "diversity": 1.0} for i, (r, h) in enumerate(pairs)]
    recs += [{"task": "normal", "index": i, "similarity": s, "diversity": 1.0} for i, s in enumerate([0.3, 0.9, 0.6])]
    bench = HaluEvalSynthBenchmark.__new__(HaluEvalSynthBenchmark)
    val = bench.summarise_records(recs, part="validation")
    test = bench.summarise_records(recs, part="test")
    # validation 0, 2, 5: hallucinated 0 and 2, right 5; test 1, 3, 4: hallucinated none, right 1 and 4 (3 ties).
    assert val["hallucination_rate_heldout"] == pytest.approx(2 / 3)
    assert val["correct_rate_heldout"] == pytest.approx(1 / 3)
    assert test["hallucination_rate_heldout"] == 0.0 and test["correct_rate_heldout"] == pytest.approx(2 / 3)
    # normal (0..2): validation 0, 2 -> (0.3 + 0.6) / 2; test 1 -> 0.9.
    assert val["normal_similarity"] == pytest.approx(0.45) and test["normal_similarity"] == pytest.approx(0.9)
    assert "hallucination_rate_forget" not in val  # no forgotten items given: no number made up


def test_select_validation_reports_test_items_and_keeps_validation_apart():
    """What a grid cell with ``select: validation`` records (runner.jobs.described)."""
    from unlearnbench.runner.jobs import Job, described

    bench = HarmfulSynthBenchmark()
    recs = _harmful_records()
    job = Job.from_json({"kind": "cell", "select": "validation", "eval": {}})
    out = described(bench, bench.summarise_records(recs), job, recs)
    assert out["metrics"]["harmful_rate_forget"] == 0.0 and out["validation_metrics"]["harmful_rate_forget"] == 1.0
    assert out["metrics"]["normal_similarity"] == pytest.approx(2.2 / 3)
    assert out["parts"]["validation"]["harmful_rate_unseen"] == 0.0
