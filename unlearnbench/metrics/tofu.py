"""TOFU metrics (docs/metrics.md §2): probability, ROUGE-L, truth ratio, forget quality,
model utility, exact memorisation and extraction strength.

Pure functions: lists or numpy arrays in, python floats (or per-item arrays/lists) out.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats
from scipy.special import logsumexp

UTILITY_TASKS = ("retain", "real_authors", "world_facts")
UTILITY_METRICS = ("probability", "rougeL_recall", "truth_ratio")
TRUTH_RATIO_TASKS = ("forget",) + UTILITY_TASKS


def _vector(x, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    return arr


def _matrix(x, n: int, name: str) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except ValueError as err:  # ragged list of lists
        raise ValueError(f"{name} must have the same number of options per item") from err
    if arr.ndim != 2 or arr.shape[0] != n or arr.shape[1] == 0:
        raise ValueError(f"{name} must have shape [{n}, k>0], got {arr.shape}")
    return arr


def mean_probability(avg_nll) -> float:
    """Mean over items of the length-normalised probability exp(-avgNLL)."""
    nll = _vector(avg_nll, "avg_nll")
    return float(np.mean(np.exp(-nll)))


def normalised_probability(avg_nll_answer, avg_nll_perturbed) -> float:
    """Mean over items of P̄(a) / (P̄(a) + Σ_j P̄(â_j)), with P̄ = exp(-avgNLL)."""
    ans = _vector(avg_nll_answer, "avg_nll_answer")
    pert = _matrix(avg_nll_perturbed, ans.size, "avg_nll_perturbed")
    # exp(-avgNLL) underflows for long wrong answers; the ratio is a softmax over -avgNLL.
    logits = -np.concatenate([ans[:, None], pert], axis=1)
    log_ratio = logits[:, 0] - logsumexp(logits, axis=1)
    return float(np.mean(np.exp(log_ratio)))


@functools.lru_cache(maxsize=None)
def _rouge_scorer(use_stemmer: bool):
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=use_stemmer)


def _rouge_l(generations: Sequence[str], references: Sequence[str], use_stemmer: bool):
    generations, references = list(generations), list(references)
    if len(generations) != len(references):
        raise ValueError(
            f"{len(generations)} generations but {len(references)} references"
        )
    scorer = _rouge_scorer(use_stemmer)
    return [
        scorer.score(target=ref, prediction=gen)["rougeL"]
        for gen, ref in zip(generations, references)
    ]


def rouge_l_recall(generations: Sequence[str], references: Sequence[str]) -> list[float]:
    """Per-item ROUGE-L recall of each generation against its reference (stemmer on, TOFU)."""
    return [float(s.recall) for s in _rouge_l(generations, references, use_stemmer=True)]


def rouge_l_f1(
    generations: Sequence[str], references: Sequence[str], use_stemmer: bool = False
) -> list[float]:
    """Per-item ROUGE-L F1 of each generation against its reference (stemmer off, MUSE)."""
    return [float(s.fmeasure) for s in _rouge_l(generations, references, use_stemmer)]


def truth_ratio(avg_nll_reference, avg_nll_perturbed) -> np.ndarray:
    """Per-item truth ratio R = exp(avgNLL(ref) - mean_j avgNLL(perturbed_j))."""
    ref = _vector(avg_nll_reference, "avg_nll_reference")
    pert = _matrix(avg_nll_perturbed, ref.size, "avg_nll_perturbed")
    return np.exp(ref - pert.mean(axis=1))


def truth_ratio_score(R, task: str) -> float:
    """Task-level truth-ratio score: mean(min(R, 1/R)) on forget, mean(max(0, 1-R)) otherwise."""
    if task not in TRUTH_RATIO_TASKS:
        raise ValueError(
            f"unknown truth-ratio task {task!r}; expected one of {TRUTH_RATIO_TASKS}"
        )
    r = _vector(R, "R")
    if task == "forget":
        with np.errstate(divide="ignore"):  # R == 0 gives 1/R = inf, and min() is then 0
            return float(np.mean(np.minimum(r, 1.0 / r)))
    return float(np.mean(np.maximum(0.0, 1.0 - r)))


def forget_quality(R_model, R_retain) -> float:
    """Forget quality: two-sided KS-test p-value between model and retain-model truth ratios."""
    model = np.asarray(R_model, dtype=np.float64).ravel()
    retain = np.asarray(R_retain, dtype=np.float64).ravel()
    if model.size == 0:
        raise ValueError("forget_quality: the model's truth ratios are empty")
    if retain.size == 0:
        raise ValueError("forget_quality: the retain model's truth ratios are empty")
    return float(stats.ks_2samp(model, retain).pvalue)


def model_utility(values: Mapping[str, Mapping[str, float]]) -> float:
    """Model utility: harmonic mean of {retain, real_authors, world_facts} x {probability,
    rougeL_recall, truth_ratio}; any value <= 0 makes it 0."""
    nums = []
    for task in UTILITY_TASKS:
        if task not in values:
            raise ValueError(f"model_utility: missing task {task!r}")
        for metric in UTILITY_METRICS:
            if metric not in values[task]:
                raise ValueError(f"model_utility: missing value {task}.{metric}")
            nums.append(float(values[task][metric]))
    # scipy.stats.hmean rejects negatives and warns on zeros; the definition (docs/metrics.md §2.5) says any zero -> 0.
    if any(v <= 0 for v in nums):
        return 0.0
    return float(stats.hmean(nums))


def _id_pair(pred_ids, label_ids) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred_ids).ravel()
    label = np.asarray(label_ids).ravel()
    if pred.shape != label.shape:
        raise ValueError(f"pred_ids has {pred.size} tokens but label_ids has {label.size}")
    if pred.size == 0:
        raise ValueError("no scored tokens")
    return pred, label


def exact_memorisation(pred_ids, label_ids) -> float:
    """Exact memorisation: fraction of scored positions where the teacher-forced argmax equals the label."""
    pred, label = _id_pair(pred_ids, label_ids)
    return float(np.mean(pred == label))


def extraction_strength(pred_ids, label_ids) -> float:
    """Extraction strength: 1 - k*/n, k* the smallest index from which every argmax matches."""
    pred, label = _id_pair(pred_ids, label_ids)
    n = pred.size
    # 1 - k*/n equals (length of the matching suffix) / n; an empty suffix gives k* = n -> 0.
    mismatch = np.flatnonzero(pred != label)
    k_star = int(mismatch[-1]) + 1 if mismatch.size else 0
    return 1.0 - k_star / n


def extraction_strength_open_unlearning(pred_ids, label_ids) -> float:
    """open-unlearning's extraction strength (``evals/metrics/memorization.py``): its loop over
    suffix starts ends at ``k = n-1`` whether or not that suffix matches, so ``k*`` never
    exceeds ``n-1`` and the score is ``max(ES, 1/n)`` (1/n when no suffix matches, where
    :func:`extraction_strength` gives 0)."""
    pred, _ = _id_pair(pred_ids, label_ids)
    return max(extraction_strength(pred_ids, label_ids), 1.0 / pred.size)
