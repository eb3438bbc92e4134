import math

import numpy as np
import pytest
from rouge_score import rouge_scorer
from scipy import stats

from unlearnbench.metrics import tofu


def test_mean_probability_by_hand():
    # exp(-0) = 1, exp(-ln 2) = 0.5 -> mean 0.75
    assert tofu.mean_probability([0.0, math.log(2)]) == pytest.approx(0.75)
    assert tofu.mean_probability(np.array([math.log(4)])) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="empty"):
        tofu.mean_probability([])


def test_normalised_probability_by_hand():
    # item 1: P(a) = 0.5, wrong 0.25 + 0.25 -> 0.5 / 1.0 = 0.5
    # item 2: P(a) = 1, wrong 0.5 + 0.25 -> 1 / 1.75 = 4/7
    # mean = (1/2 + 4/7) / 2 = 15/28
    ans = [math.log(2), 0.0]
    pert = [[math.log(4), math.log(4)], [math.log(2), math.log(4)]]
    assert tofu.normalised_probability(ans, pert) == pytest.approx(15 / 28)


def test_normalised_probability_is_stable_for_large_nll():
    # exp(-1000) underflows to 0; the ratio is still 1 / (1 + e^-1 + e^-2)
    got = tofu.normalised_probability([1000.0], [[1001.0, 1002.0]])
    assert got == pytest.approx(1 / (1 + math.exp(-1) + math.exp(-2)))


def test_normalised_probability_rejects_bad_shapes():
    with pytest.raises(ValueError):
        tofu.normalised_probability([1.0, 2.0], [[1.0, 2.0], [1.0]])  # ragged
    with pytest.raises(ValueError):
        tofu.normalised_probability([1.0, 2.0], [[1.0, 2.0]])  # wrong n


def test_rouge_l_recall_by_hand_and_against_package():
    # LCS("the cat sat", "the cat sat on the mat") = 3 tokens, reference has 6 -> 0.5
    assert tofu.rouge_l_recall(["the cat sat"], ["the cat sat on the mat"]) == [0.5]
    # stemmer on: "cats running" -> "cat run", so everything matches
    assert tofu.rouge_l_recall(["cats running"], ["cat run"]) == [1.0]
    gens = ["Alice wrote three novels.", "no idea", "He was born in Paris, France."]
    refs = ["Alice has written three novels in total.", "The answer is 42.", "Born in Paris."]
    direct = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    expected = [direct.score(target=r, prediction=g)["rougeL"].recall for g, r in zip(gens, refs)]
    assert tofu.rouge_l_recall(gens, refs) == pytest.approx(expected)
    assert expected[0] != expected[2]  # the cases differ, so order matters


def test_rouge_l_f1_by_hand_and_against_package():
    # precision 3/3, recall 3/6 -> F1 = 2 * 1 * 0.5 / 1.5 = 2/3
    assert tofu.rouge_l_f1(["the cat sat"], ["the cat sat on the mat"]) == pytest.approx([2 / 3])
    # no stemmer (MUSE): "cats" != "cat"
    assert tofu.rouge_l_f1(["cats"], ["cat"]) == [0.0]
    assert tofu.rouge_l_f1(["cats"], ["cat"], use_stemmer=True) == [1.0]
    g, r = "a quick brown fox jumps", "the quick fox jumped over"
    direct = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    assert tofu.rouge_l_f1([g], [r]) == pytest.approx([direct.score(r, g)["rougeL"].fmeasure])


def test_rouge_length_mismatch():
    with pytest.raises(ValueError):
        tofu.rouge_l_recall(["a", "b"], ["a"])


def test_truth_ratio_two_items_by_hand():
    # item 1: exp(1 - mean(2, 4)) = exp(-2); item 2: exp(2 - mean(1, 1)) = e
    R = tofu.truth_ratio([1.0, 2.0], [[2.0, 4.0], [1.0, 1.0]])
    assert isinstance(R, np.ndarray)
    np.testing.assert_allclose(R, [math.exp(-2), math.e])
    # forget: mean(min(e^-2, e^2), min(e, 1/e)) = (e^-2 + e^-1) / 2
    assert tofu.truth_ratio_score(R, "forget") == pytest.approx((math.exp(-2) + math.exp(-1)) / 2)
    # others: mean(max(0, 1 - e^-2), max(0, 1 - e)) = (1 - e^-2) / 2
    for task in ("retain", "real_authors", "world_facts"):
        assert tofu.truth_ratio_score(R, task) == pytest.approx((1 - math.exp(-2)) / 2)


def test_truth_ratio_score_edge_values_and_unknown_task():
    # R = 0 -> min(0, inf) = 0; R = 1 -> 1; mean 0.5
    assert tofu.truth_ratio_score([0.0, 1.0], "forget") == pytest.approx(0.5)
    with pytest.raises(ValueError, match="forget10"):
        tofu.truth_ratio_score([1.0], "forget10")
    with pytest.raises(ValueError, match="empty"):
        tofu.truth_ratio_score([], "retain")


def test_forget_quality_by_hand_and_against_scipy():
    assert tofu.forget_quality([0.3, 0.5, 0.9], [0.3, 0.5, 0.9]) == pytest.approx(1.0)
    # fully separated 3 vs 3: D = 1, exact p = 2 / C(6, 3) = 2 / 20 = 0.1
    assert tofu.forget_quality([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]) == pytest.approx(0.1)
    rng = np.random.default_rng(0)
    a, b = rng.lognormal(size=40), rng.lognormal(0.5, size=35)
    assert tofu.forget_quality(a, b) == pytest.approx(stats.ks_2samp(a, b).pvalue)
    with pytest.raises(ValueError, match="retain"):
        tofu.forget_quality([1.0], [])
    with pytest.raises(ValueError, match="model"):
        tofu.forget_quality([], [1.0])


def _utility(fill=0.5):
    return {t: {m: fill for m in tofu.UTILITY_METRICS} for t in tofu.UTILITY_TASKS}


def test_model_utility_by_hand():
    assert tofu.UTILITY_TASKS == ("retain", "real_authors", "world_facts")
    assert tofu.UTILITY_METRICS == ("probability", "rougeL_recall", "truth_ratio")
    assert tofu.model_utility(_utility(0.5)) == pytest.approx(0.5)
    v = _utility(1.0)
    v["world_facts"]["truth_ratio"] = 0.5
    # 9 / (8 * 1/1 + 1/0.5) = 9 / 10
    assert tofu.model_utility(v) == pytest.approx(0.9)
    v["retain"]["probability"] = 0.0
    assert tofu.model_utility(v) == 0.0
    v["retain"]["probability"] = -0.1
    assert tofu.model_utility(v) == 0.0


def test_model_utility_missing_keys():
    v = _utility()
    del v["world_facts"]
    with pytest.raises(ValueError, match="world_facts"):
        tofu.model_utility(v)
    v = _utility()
    del v["real_authors"]["rougeL_recall"]
    with pytest.raises(ValueError, match="real_authors.rougeL_recall"):
        tofu.model_utility(v)


def test_exact_memorisation_by_hand():
    # 3 of 4 positions match
    assert tofu.exact_memorisation([1, 2, 3, 4], [1, 9, 3, 4]) == pytest.approx(0.75)
    assert tofu.exact_memorisation(np.array([5, 6]), np.array([7, 8])) == 0.0
    with pytest.raises(ValueError):
        tofu.exact_memorisation([1, 2], [1, 2, 3])
    with pytest.raises(ValueError):
        tofu.exact_memorisation([], [])


def test_extraction_strength_by_hand():
    # last mismatch at index 1 -> k* = 2 -> 1 - 2/4 = 0.5
    assert tofu.extraction_strength([1, 2, 3, 4], [1, 9, 3, 4]) == pytest.approx(0.5)
    assert tofu.extraction_strength([1, 2, 3, 4], [1, 2, 3, 4]) == 1.0  # k* = 0
    assert tofu.extraction_strength([0, 0, 0, 4], [1, 2, 3, 4]) == pytest.approx(0.25)  # k* = 3
    # last token wrong -> no k* < n -> 0, however much of the prefix matches
    assert tofu.extraction_strength([1, 2, 3, 0], [1, 2, 3, 4]) == 0.0
    with pytest.raises(ValueError):
        tofu.extraction_strength([1], [1, 2])


def test_public_functions_have_docstrings():
    for name in ("mean_probability", "normalised_probability", "rouge_l_recall", "rouge_l_f1",
                 "truth_ratio", "truth_ratio_score", "forget_quality", "model_utility",
                 "exact_memorisation", "extraction_strength"):
        doc = getattr(tofu, name).__doc__
        assert doc and doc.strip().splitlines()[0], name
