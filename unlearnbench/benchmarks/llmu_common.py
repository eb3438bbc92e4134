"""What LLMU's harmful-response and hallucination scenarios share on the ``Benchmark`` interface.

Both unlearn question/answer pairs of the 70 % "train" part of their data, keep TruthfulQA as
normal data (LLMU's random mismatch answers and KL term: the best answers of its train part),
start from the pre-trained model itself ("target"), write prompts in LLMU's
"### Question: …\\n ### Answer: …" format, and measure utility on normal prompts against
the original model's outputs.
"""

from __future__ import annotations

from typing import Callable

from unlearnbench.benchmarks.base import Benchmark, Reference, StandIn, TinyRecipe

SPLIT_SEED = 42  # the 70/10/20 split is part of the data, not of a run's seed


class LLMUScenario(Benchmark):
    """Base of LLMU's scenarios; a subclass says how to load its split data (``load_data``)."""

    shape = "qa"
    splits = ("train",)
    default_split = "train"
    references = (Reference("target", "target"),)
    compare_to = "target"
    template = "llmu"
    tiny_template = "llmu-tiny"
    target_is_base = True  # LLMU unlearns the pre-trained model itself
    data_options = {"k_random": 5, "template": "refusal"}

    def __init__(self, path: str | None = None):
        super().__init__(path)
        self._data = None

    def default_path(self) -> str:
        return ""  # the hub datasets; a directory holds them like the stand-in does

    def load_data(self):
        raise NotImplementedError

    def data(self):
        """The split data (forget rows, evaluation items and normal QA by part), loaded once."""
        if self._data is None:
            self._data = self.load_data()
        return self._data

    def forget_rows(self, split: str) -> list[dict]:
        self.check_split(split)
        return [dict(r) for r in self.data().forget]

    # LLMU's random mismatch answers come from the default pool, the retain rows' answers:
    # the best answers of TruthfulQA's train part. LLMU's public code draws from every
    # TruthfulQA answer, incorrect ones and the evaluation part's included; that would teach
    # wrong answers and leak the normal-prompt evaluation into training, so it is not copied.
    def retain_rows(self, split: str) -> list[dict]:
        return [dict(r) for r in self.data().normal["train"]]

    @staticmethod
    def original(models):
        """The model before unlearning (fluency and similarity are measured against it)."""
        return models("target") if models is not None else None


class LLMUStandIn(StandIn):
    """An LLMU stand-in's tiny family: its own texts (``tiny_texts(dir, role, template=, seed=)``
    of its generator module) for tokenizer, base and target."""

    tiny_texts: Callable

    def tiny_recipe(self, data_key: str) -> TinyRecipe:
        def texts(role: str):
            return lambda: self.tiny_texts(self.path, role, template=self.tiny_template, seed=SPLIT_SEED)

        return TinyRecipe(data_key=data_key, tokenizer_texts=texts("tokenizer"), base_texts=texts("base"),
                          finetune=lambda role, split: (None, texts("target")()), finetuned_roles=("target",))
