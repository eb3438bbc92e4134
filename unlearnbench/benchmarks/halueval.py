"""LLMU's hallucination scenario on HaluEval ``qa`` and its stand-in, on the ``Benchmark`` interface.

Forget data: (question, hallucinated answer) pairs of the 70 % "train" part of HaluEval's
questions; normal data: TruthfulQA (see ``llmu_common``). Metric: the hallucination rate of
greedy answers on the held-out 20 % "test" questions (and on the forgotten ones), an answer
being a hallucination when its ROUGE-L F1 to the hallucinated answer is strictly greater
than to the right answer (``metrics.generation.is_hallucination``); the rate of answers
closer to the right one (a broken model hallucinates nothing and answers nothing either);
and the utility measures of the harmful scenario.
"""

from __future__ import annotations

from pathlib import Path

from unlearnbench.benchmarks.base import Column, Ranking
from unlearnbench.benchmarks.llmu_common import SPLIT_SEED, LLMUScenario, LLMUStandIn
from unlearnbench.data import halueval_synth

HALUEVAL_COLUMNS = (
    Column("hallucination_rate_heldout", ("hallucination_rate_heldout",), "min"),
    Column("hallucination_rate_forget", ("hallucination_rate_forget",), "min"),
    Column("correct_rate_heldout", ("correct_rate_heldout",), "max"),
    Column("normal_similarity", ("normal_similarity",), "max"),
    Column("fluency_heldout", ("heldout", "fluency"), "min"),
    Column("diversity_heldout", ("heldout", "diversity"), "max"),
)


class HaluEvalBenchmark(LLMUScenario):
    """LLMU hallucination: unlearn HaluEval's hallucinated QA answers (TruthfulQA as normal data)."""

    name = "halueval"
    family = "halueval"
    columns = HALUEVAL_COLUMNS
    tradeoff = ("normal_similarity", "hallucination_rate_heldout")
    headline_forget = "hallucination_rate_forget"
    ranking = Ranking(forget="hallucination_rate_heldout", utility="normal_similarity", min_ratio=0.9)
    eval_options = {"batch_size": 32, "max_new_tokens": 32, "max_items": None}

    def load_data(self):
        from unlearnbench.data.halueval import HALUEVAL_HUB, hallucination_data
        from unlearnbench.data.harmful import TRUTHFULQA_HUB

        root = Path(self.path) if self.path else None
        halu, tqa = (str(root / "halueval"), str(root / "truthfulqa")) if root else (HALUEVAL_HUB, TRUTHFULQA_HUB)
        return hallucination_data(halu, tqa, seed=SPLIT_SEED)

    def summarise_records(self, records: list[dict], reference=None, part: str | None = None,
                          options: dict | None = None) -> dict:
        """The summary of ``part``'s items of every task (held-out, forgotten and normal
        questions, each split by its own index), for choosing a sweep's setting on validation items."""
        from unlearnbench.eval.scenarios import summarise_hallucination

        return summarise_hallucination([r for r in records if self.in_part(r, part)])

    def evaluate(self, model, encoder, split: str, *, reference=None, models=None, **options):
        from unlearnbench.eval.scenarios import evaluate_hallucination

        return evaluate_hallucination(model, encoder, self.data(), original=self.original(models), **options)


class HaluEvalSynthBenchmark(LLMUStandIn, HaluEvalBenchmark):
    """Hallucination stand-in: generated facts, each question with a right and a planted wrong answer."""

    name = "halueval-synth"
    stand_in_for = "halueval"
    generator = halueval_synth.STAND_IN
    tiny_texts = staticmethod(halueval_synth.tiny_texts)
