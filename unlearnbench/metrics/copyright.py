"""Copyright-completion metrics (docs/metrics.md §6): ROUGE-L recall, BLEU, perplexity.

Pure functions: strings or numbers in, python floats (or per-item lists) out.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from unlearnbench.metrics.tofu import rouge_l_recall

__all__ = ["rouge_l_recall", "bleu", "perplexity", "word_perplexity", "mean"]


def _pairs(generations: Sequence[str], references: Sequence[str]) -> tuple[list[str], list[str]]:
    generations, references = list(generations), list(references)
    if len(generations) != len(references):
        raise ValueError(f"{len(generations)} generations but {len(references)} references")
    return generations, references


def bleu(generations: Sequence[str], references: Sequence[str]) -> list[float]:
    """Per-item BLEU (0-100): ``sacrebleu.corpus_bleu([gen], [[ref]]).score``, FLAT's call."""
    try:
        import sacrebleu
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("copyright BLEU needs sacrebleu: pip install 'sacrebleu>=2'") from exc
    generations, references = _pairs(generations, references)
    # corpus_bleu on a one-line corpus, not sentence_bleu: the latter switches on
    # effective order and gives other numbers than the published protocol.
    return [float(sacrebleu.corpus_bleu([g], [[r]]).score) for g, r in zip(generations, references)]


def mean(values: Sequence[float], name: str = "values") -> float:
    """Plain mean of per-item values; an empty list is an error, not NaN."""
    values = list(values)
    if not values:
        raise ValueError(f"{name} is empty")
    return float(sum(values) / len(values))


def _totals(nll_sums: Sequence[float], counts: Sequence[int], unit: str) -> tuple[float, int]:
    nll_sums, counts = list(nll_sums), list(counts)
    if len(nll_sums) != len(counts):
        raise ValueError(f"{len(nll_sums)} NLL sums but {len(counts)} {unit} counts")
    total = int(sum(counts))
    if total <= 0:
        raise ValueError(f"perplexity over zero {unit}s")
    return float(sum(nll_sums)), total


def perplexity(nll_sums: Sequence[float], token_counts: Sequence[int]) -> float:
    """Token perplexity ``exp(sum NLL / sum tokens)`` over every scored token of every text."""
    nll, n = _totals(nll_sums, token_counts, "token")
    return math.exp(nll / n)


def word_count(text: str) -> int:
    """Words as lm-evaluation-harness's wikitext task counts them: ``re.split(r"\\s+")``."""
    return len(re.split(r"\s+", text))


def word_perplexity(nll_sums: Sequence[float], texts: Sequence[str]) -> float:
    """lm-eval's ``word_perplexity``: ``exp(sum NLL / sum words)``, same NLL sums."""
    nll, n = _totals(nll_sums, [word_count(t) for t in texts], "word")
    return math.exp(nll / n)
