"""LLMU's harmful-response scenario (Yao, Xu, Liu) and its stand-in, on the ``Benchmark`` interface.

Forget data: every unsafe response of the 70 % "train" part of PKU-SafeRLHF's harmful
prompts, in LLMU's "### Question: …\\n ### Answer: …" format; normal data (LLMU's random
mismatch answers and KL term): TruthfulQA. The model before unlearning is the reference
("target": for real models the pre-trained model itself, which answers harmful prompts
harmfully). Metrics (metrics.md §6): harmful rate of greedy outputs on the forgotten and on
unseen (test-part) harmful prompts by a judge, output diversity, fluency (perplexity of the
output under the original model), and the similarity of outputs on normal prompts to the
original model's.
"""

from __future__ import annotations

from pathlib import Path

from unlearnbench.benchmarks.base import Benchmark, Column, Ranking, Reference, TinyRecipe

SPLIT_SEED = 42  # the 70/10/20 prompt split is part of the data, not of a run's seed

HARMFUL_COLUMNS = (
    Column("harmful_rate_forget", ("harmful_rate_forget",), "min"),
    Column("harmful_rate_unseen", ("harmful_rate_unseen",), "min"),
    Column("normal_similarity", ("normal_similarity",), "max"),
    Column("fluency_forget", ("forget", "fluency"), "min"),
    Column("fluency_normal", ("normal", "fluency"), "min"),
    Column("diversity_forget", ("forget", "diversity"), "max"),
    Column("diversity_normal", ("normal", "diversity"), "max"),
)


class HarmfulBenchmark(Benchmark):
    """LLMU harmful responses: unlearn PKU-SafeRLHF's unsafe responses (TruthfulQA as normal data)."""

    name = "harmful"
    family = "harmful"
    shape = "qa"
    splits = ("train",)
    default_split = "train"
    references = (Reference("target", "target"),)
    compare_to = "target"
    columns = HARMFUL_COLUMNS
    tradeoff = ("normal_similarity", "harmful_rate_forget")
    headline_forget = "harmful_rate_forget"
    ranking = Ranking(forget="harmful_rate_unseen", utility="normal_similarity", min_ratio=0.9)
    template = "llmu"
    tiny_template = "llmu-tiny"
    target_is_base = True  # LLMU unlearns the pre-trained model itself
    eval_options = {"batch_size": 32, "max_new_tokens": 64, "max_items": None, "judge": "beaver-dam-7b"}
    data_options = {"k_random": 5, "template": "refusal"}

    def __init__(self, path: str | None = None):
        super().__init__(path)
        self._data = None

    def default_path(self) -> str:
        return ""  # the hub datasets; a directory holds pku/ and truthfulqa/ like the stand-in

    def _paths(self) -> tuple[str, str]:
        from unlearnbench.data.harmful import PKU_HUB, TRUTHFULQA_HUB

        if not self.path:
            return PKU_HUB, TRUTHFULQA_HUB
        root = Path(self.path)
        return str(root / "pku"), str(root / "truthfulqa")

    def data(self):
        """The split ``HarmfulData`` (forget rows, harmful prompts and normal QA by part)."""
        if self._data is None:
            from unlearnbench.data.harmful import harmful_data

            pku, tqa = self._paths()
            self._data = harmful_data(pku, tqa, seed=SPLIT_SEED)
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

    def evaluate(self, model, encoder, split: str, *, reference=None, models=None, judge=None, **options):
        from unlearnbench.eval.judges import get_judge
        from unlearnbench.eval.scenarios import evaluate_harmful

        original = models("target") if models is not None else None
        return evaluate_harmful(model, encoder, self.data(), get_judge(judge), original=original, **options)


class HarmfulSynthBenchmark(HarmfulBenchmark):
    """Harmful-response stand-in: synthetic prompts whose unsafe answers carry judge-detectable markers."""

    name = "harmful-synth"
    stand_in_for = "harmful"
    eval_options = {**HarmfulBenchmark.eval_options, "judge": "harmful-synth"}

    def __init__(self, path: str | None = None, synth=None):
        from unlearnbench.data.harmful_synth import SynthConfig

        self.synth = synth or SynthConfig()
        super().__init__(path)

    def default_path(self) -> str:
        from unlearnbench.data.harmful_synth import synth_dir

        return str(synth_dir(self.synth))

    def recipe(self) -> TinyRecipe:
        from unlearnbench.data.harmful_synth import tiny_texts

        def texts(role: str):
            return lambda: tiny_texts(self.path, role, template=self.tiny_template, seed=SPLIT_SEED)

        return TinyRecipe(data_key=f"harmful-{self.synth.key()}", tokenizer_texts=texts("tokenizer"),
                          base_texts=texts("base"), finetune=lambda role, split: (None, texts("target")()),
                          finetuned_roles=("target",))
