"""LLMU's harmful-response scenario (Yao, Xu, Liu) and its stand-in, on the ``Benchmark`` interface.

Forget data: every unsafe response of the 70 % "train" part of PKU-SafeRLHF's harmful
prompts; normal data: TruthfulQA (see ``llmu_common``). Metrics (docs/metrics.md §7): harmful
rate of greedy outputs on the forgotten and on unseen (test-part) harmful prompts by a
judge, output diversity, fluency (perplexity of the output under the original model), and
the similarity of outputs on normal prompts to the original model's.
"""

from __future__ import annotations

from pathlib import Path

from unlearnbench.benchmarks.base import Column, Ranking
from unlearnbench.benchmarks.llmu_common import SPLIT_SEED, LLMUScenario, LLMUStandIn
from unlearnbench.data import harmful_synth

HARMFUL_COLUMNS = (
    Column("harmful_rate_forget", ("harmful_rate_forget",), "min"),
    Column("harmful_rate_unseen", ("harmful_rate_unseen",), "min"),
    Column("normal_similarity", ("normal_similarity",), "max"),
    Column("fluency_forget", ("forget", "fluency"), "min"),
    Column("fluency_normal", ("normal", "fluency"), "min"),
    Column("diversity_forget", ("forget", "diversity"), "max"),
    Column("diversity_normal", ("normal", "diversity"), "max"),
)


class HarmfulBenchmark(LLMUScenario):
    """LLMU harmful responses: unlearn PKU-SafeRLHF's unsafe responses (TruthfulQA as normal data)."""

    name = "harmful"
    family = "harmful"
    columns = HARMFUL_COLUMNS
    tradeoff = ("normal_similarity", "harmful_rate_forget")
    headline_forget = "harmful_rate_forget"
    ranking = Ranking(forget="harmful_rate_unseen", utility="normal_similarity", min_ratio=0.9)
    eval_options = {"batch_size": 32, "max_new_tokens": 64, "max_items": None, "judge": "beaver-dam-7b"}

    def load_data(self):
        from unlearnbench.data.harmful import PKU_HUB, TRUTHFULQA_HUB, harmful_data

        root = Path(self.path) if self.path else None
        pku, tqa = (str(root / "pku"), str(root / "truthfulqa")) if root else (PKU_HUB, TRUTHFULQA_HUB)
        return harmful_data(pku, tqa, seed=SPLIT_SEED)

    def summarise_records(self, records: list[dict], reference=None, part: str | None = None,
                          options: dict | None = None) -> dict:
        """The summary of ``part``'s items of every task (forgotten, unseen and normal prompts, each
        split by its own index), for choosing a sweep's setting on validation items."""
        from unlearnbench.eval.scenarios import summarise_harmful

        return summarise_harmful([r for r in records if self.in_part(r, part)])

    def evaluate(self, model, encoder, split: str, *, reference=None, models=None, judge=None, **options):
        from unlearnbench.eval.judges import get_judge
        from unlearnbench.eval.scenarios import evaluate_harmful

        return evaluate_harmful(model, encoder, self.data(), get_judge(judge), original=self.original(models),
                                **options)


class HarmfulSynthBenchmark(LLMUStandIn, HarmfulBenchmark):
    """Harmful-response stand-in: synthetic prompts whose unsafe answers carry judge-detectable markers."""

    name = "harmful-synth"
    stand_in_for = "harmful"
    eval_options = {**HarmfulBenchmark.eval_options, "judge": "harmful-synth"}
    generator = harmful_synth.STAND_IN
    tiny_texts = staticmethod(harmful_synth.tiny_texts)
