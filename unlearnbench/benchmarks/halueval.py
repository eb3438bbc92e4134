"""LLMU's hallucination scenario on HaluEval ``qa`` and its stand-in, on the ``Benchmark`` interface.

Forget data: (question, hallucinated answer) pairs of the 70 % "train" part of HaluEval's
questions; normal data: TruthfulQA. Metric: the hallucination rate of greedy answers on
the held-out 20 % "test" questions (and on the forgotten ones), an answer being a
hallucination when its ROUGE-L F1 to the hallucinated answer is strictly greater than to
the right answer (``metrics.generation.is_hallucination``), plus the utility measures of
the harmful scenario (diversity, fluency, normal-prompt similarity to the original model).
"""

from __future__ import annotations

from pathlib import Path

from unlearnbench.benchmarks.base import Benchmark, Column, Ranking, Reference, TinyRecipe

SPLIT_SEED = 42  # the 70/10/20 question split is part of the data, not of a run's seed

HALUEVAL_COLUMNS = (
    Column("hallucination_rate_heldout", ("hallucination_rate_heldout",), "min"),
    Column("hallucination_rate_forget", ("hallucination_rate_forget",), "min"),
    Column("correct_rate_heldout", ("correct_rate_heldout",), "max"),
    Column("normal_similarity", ("normal_similarity",), "max"),
    Column("fluency_heldout", ("heldout", "fluency"), "min"),
    Column("diversity_heldout", ("heldout", "diversity"), "max"),
)


class HaluEvalBenchmark(Benchmark):
    """LLMU hallucination: unlearn HaluEval's hallucinated QA answers (TruthfulQA as normal data)."""

    name = "halueval"
    family = "halueval"
    shape = "qa"
    splits = ("train",)
    default_split = "train"
    references = (Reference("target", "target"),)
    compare_to = "target"
    columns = HALUEVAL_COLUMNS
    tradeoff = ("normal_similarity", "hallucination_rate_heldout")
    headline_forget = "hallucination_rate_forget"
    ranking = Ranking(forget="hallucination_rate_heldout", utility="normal_similarity", min_ratio=0.9)
    template = "llmu"
    tiny_template = "llmu-tiny"
    target_is_base = True
    eval_options = {"batch_size": 32, "max_new_tokens": 32, "max_items": None}
    data_options = {"k_random": 5, "template": "refusal"}

    def __init__(self, path: str | None = None):
        super().__init__(path)
        self._data = None

    def default_path(self) -> str:
        return ""  # the hub datasets; a directory holds halueval/ and truthfulqa/ like the stand-in

    def data(self):
        """The split ``HallucinationData`` (forget pairs, items and normal QA by part)."""
        if self._data is None:
            from unlearnbench.data.halueval import HALUEVAL_HUB, hallucination_data
            from unlearnbench.data.harmful import TRUTHFULQA_HUB

            root = Path(self.path) if self.path else None
            halu = str(root / "halueval") if root else HALUEVAL_HUB
            tqa = str(root / "truthfulqa") if root else TRUTHFULQA_HUB
            self._data = hallucination_data(halu, tqa, seed=SPLIT_SEED)
        return self._data

    def forget_rows(self, split: str) -> list[dict]:
        self.check_split(split)
        return [dict(r) for r in self.data().forget]

    def retain_rows(self, split: str) -> list[dict]:
        return [dict(r) for r in self.data().normal["train"]]

    # LLMU's random mismatch answers come from the default pool, the retain rows' answers:
    # the best answers of TruthfulQA's train part. LLMU's public code draws from every
    # TruthfulQA answer, incorrect ones and the evaluation part's included; that would teach
    # wrong answers and leak the normal-prompt evaluation into training, so it is not copied.

    def evaluate(self, model, encoder, split: str, *, reference=None, models=None, **options):
        from unlearnbench.eval.scenarios import evaluate_hallucination

        original = models("target") if models is not None else None
        return evaluate_hallucination(model, encoder, self.data(), original=original, **options)


class HaluEvalSynthBenchmark(HaluEvalBenchmark):
    """Hallucination stand-in: generated facts, each question with a right and a planted wrong answer."""

    name = "halueval-synth"
    stand_in_for = "halueval"

    def __init__(self, path: str | None = None, synth=None):
        from unlearnbench.data.halueval_synth import SynthConfig

        self.synth = synth or SynthConfig()
        super().__init__(path)

    def default_path(self) -> str:
        from unlearnbench.data.halueval_synth import synth_dir

        return str(synth_dir(self.synth))

    def recipe(self) -> TinyRecipe:
        from unlearnbench.data.halueval_synth import tiny_texts

        def texts(role: str):
            return lambda: tiny_texts(self.path, role, template=self.tiny_template, seed=SPLIT_SEED)

        return TinyRecipe(data_key=f"halueval-{self.synth.key()}", tokenizer_texts=texts("tokenizer"),
                          base_texts=texts("base"), finetune=lambda role, split: (None, texts("target")()),
                          finetuned_roles=("target",))
