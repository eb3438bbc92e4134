"""MUSE metrics (docs/metrics.md §3, §4): VerbMem, KnowMem, PrivLeak.

Pure functions on strings and AUCs; the model-facing loop is ``unlearnbench.eval.muse``.

Orientation of AUCs: everything the harness computes is in the orientation of
``metrics.mia.mia_auc`` (forget labelled 0, holdout 1, scores where lower = more
member-like: near 1 = the forget set still looks memorised). muse_bench reports the
complementary AUC (``roc_curve(y, -score)`` with the same labels); its published constants
below are in *its* orientation and are converted once, by ``parity_retrain_auc``.
"""

from __future__ import annotations

from collections.abc import Sequence

from unlearnbench.metrics.tofu import rouge_l_f1

# muse_bench constants.py AUC_RETRAIN[corpus]["forget_holdout_Min-40%"], in muse_bench's
# orientation (roc_curve(y, -MinK) with forget = 0, holdout = 1).
PARITY_RETRAIN_AUC = {"muse-news": 0.4772, "muse-books": 0.5393}

# docs/metrics.md §4: the answer is cut at the first of these, in this order of application.
STOP_STRINGS = ("\n\n", "\nQuestion", "Question:")


def verbmem_score(generations: Sequence[str], gts: Sequence[str]) -> list[float]:
    """Per-item VerbMem: ROUGE-L F1 (no stemmer) of each generation vs its truncated ground truth."""
    return rouge_l_f1(generations, gts, use_stemmer=False)


def knowmem_score(answers: Sequence[str], references: Sequence[str]) -> list[float]:
    """Per-item KnowMem: ROUGE-L F1 (no stemmer) of each cut answer vs the reference answer."""
    return rouge_l_f1(answers, references, use_stemmer=False)


def knowmem_prompt(icl_pairs: Sequence[tuple[str, str]], question: str) -> str:
    """Few-shot prompt: each ICL pair as "Question: q\\nAnswer: a\\n\\n", then the question."""
    shots = "".join(f"Question: {q}\nAnswer: {a}\n\n" for q, a in icl_pairs)
    return shots + f"Question: {question}\nAnswer: "


def cut_answer(text: str) -> str:
    """The generation up to the first stop string ("\\n\\n", "\\nQuestion", "Question:")."""
    # Applying the splits one after another keeps the shortest prefix, as muse_bench does.
    for stop in STOP_STRINGS:
        text = text.split(stop)[0]
    return text


def parity_retrain_auc(benchmark: str) -> float:
    """muse_bench's constant retrain Min-40% AUC for ``benchmark``, in the harness's orientation."""
    if benchmark not in PARITY_RETRAIN_AUC:
        raise ValueError(f"no muse_bench retrain AUC for benchmark {benchmark!r}; parity mode "
                         f"exists for {', '.join(PARITY_RETRAIN_AUC)} only")
    # roc_auc(y, -s) == 1 - roc_auc(y, s) exactly (ties count 1/2 either way).
    return 1.0 - PARITY_RETRAIN_AUC[benchmark]
