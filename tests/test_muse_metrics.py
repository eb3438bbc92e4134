"""MUSE metrics (metrics.md §2, §3) against hand-computed values and rouge-score / sklearn."""

from __future__ import annotations

import pytest

from unlearnbench.metrics import mia
from unlearnbench.metrics import muse


def test_verbmem_is_rouge_l_f1_without_stemmer():
    from rouge_score import rouge_scorer

    gens = ["the cat sat on the mat", "running dogs bark", "completely different words"]
    refs = ["the cat lay on the mat", "run dog barks", "nothing in common here"]
    got = muse.verbmem_score(gens, refs)
    # LCS(the cat sat on the mat, the cat lay on the mat) = "the cat on the mat": 5 of 6 each side.
    assert got[0] == pytest.approx(5 / 6)
    # Without a stemmer "running/run", "dogs/dog", "bark/barks" share nothing.
    assert got[1] == 0.0
    assert got[2] == 0.0
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    assert got == [scorer.score(r, g)["rougeL"].fmeasure for g, r in zip(gens, refs)]
    stemmed = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True).score(refs[1], gens[1])["rougeL"]
    assert stemmed.fmeasure == 1.0  # so the 0.0 above really is the stemmer being off


def test_knowmem_score_hand_value():
    # gen "john smith" vs ref "sir john smith": LCS 2, P = 2/2, R = 2/3, F1 = 0.8.
    assert muse.knowmem_score(["John Smith"], ["Sir John Smith"]) == [pytest.approx(0.8)]


def test_knowmem_prompt_exact_string():
    prompt = muse.knowmem_prompt([("Who won?", "Ann"), ("Where?", "Paris")], "When?")
    assert prompt == ("Question: Who won?\nAnswer: Ann\n\n"
                      "Question: Where?\nAnswer: Paris\n\n"
                      "Question: When?\nAnswer: ")
    assert muse.knowmem_prompt([], "Q?") == "Question: Q?\nAnswer: "


@pytest.mark.parametrize("text, cut", [
    ("Paris\n\nQuestion: next", "Paris"),
    ("Paris\nQuestion: next", "Paris"),
    ("Paris. Question: next", "Paris. "),
    ("12 May\nand more", "12 May\nand more"),
    ("a Question: b\n\nc", "a "),  # the earliest stop string wins whatever the order
    ("", ""),
])
def test_cut_answer(text, cut):
    assert muse.cut_answer(text) == cut


def test_privleak_with_parity_constant_matches_muse_bench_formula():
    """muse_bench: AUC = auc(roc_curve(y, -score)) with forget 0 / holdout 1, and
    PrivLeak = (AUC - AUC_RETRAIN) / AUC_RETRAIN * 100 with AUC_RETRAIN = 0.4772 (News)."""
    import numpy as np
    from sklearn.metrics import auc, roc_curve

    forget, holdout = [1.0, 2.0, 3.0], [2.5, 4.0, 5.0]  # Min-K scores, lower = member-like
    ours = mia.mia_auc(forget, holdout)
    assert ours == pytest.approx(8 / 9)  # 8 of 9 (holdout, forget) pairs ordered holdout > forget
    y = np.array([0, 0, 0, 1, 1, 1])
    fpr, tpr, _ = roc_curve(y, -np.array(forget + holdout))
    theirs = auc(fpr, tpr)
    assert theirs == pytest.approx(1 / 9)
    expected = (theirs - 0.4772) / 0.4772 * 100
    assert expected == pytest.approx((1 / 9 - 0.4772) / 0.4772 * 100)  # -76.716...
    got = mia.privleak(ours, muse.parity_retrain_auc("muse-news"))
    assert got == pytest.approx(expected, abs=1e-9)
    assert got == pytest.approx(-76.7160, abs=1e-3)


def test_privleak_of_a_memorising_model_is_near_minus_100():
    # Every forget text scores below every holdout text: our AUC 1, muse_bench's 0.
    got = mia.privleak(mia.mia_auc([0.1, 0.2], [0.9, 1.0]), muse.parity_retrain_auc("muse-news"))
    assert got == pytest.approx(-100.0)


def test_parity_constants():
    assert muse.PARITY_RETRAIN_AUC == {"muse-news": 0.4772, "muse-books": 0.5393}
    assert muse.parity_retrain_auc("muse-news") == pytest.approx(0.5228)
    assert muse.parity_retrain_auc("muse-books") == pytest.approx(0.4607)
    with pytest.raises(ValueError, match="muse-synth"):
        muse.parity_retrain_auc("muse-synth")
