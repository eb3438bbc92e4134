"""WMDP (Li et al. 2024) with MMLU, and its stand-in, on the ``Benchmark`` interface.

Hazardous knowledge is measured by zero-shot 4-option accuracy (docs/metrics.md §5: the
log-likelihood of " A".." D", lm-evaluation-harness's convention, checked item by item
against the harness itself); the goal is chance (0.25) on WMDP while MMLU stays. Methods
train on raw text: the forget corpora (the gated bio forget corpus, read from a local copy,
and/or the cyber forget corpus) chunked to 512 tokens as RMU's code truncates them, with
wikitext as retain text. There is no retain model: the model before unlearning (``target``,
the pre-trained model itself) is the reference.
"""

from __future__ import annotations

from unlearnbench.benchmarks.base import Benchmark, Column, Ranking, Reference, StandIn, TinyRecipe
from unlearnbench.data import wmdp_synth

FORGET = {"bio": ("bio-forget-corpus",), "cyber": ("cyber-forget-corpus",),
          "bio+cyber": ("bio-forget-corpus", "cyber-forget-corpus")}
WMDP_COLUMNS = (
    Column("wmdp_bio", ("wmdp_bio", "accuracy"), "min"),
    Column("wmdp_cyber", ("wmdp_cyber", "accuracy"), "min"),
    Column("mmlu", ("mmlu", "accuracy"), "max"),
)


class WmdpBenchmark(Benchmark):
    """WMDP (Li et al. 2024): hazardous-knowledge multiple choice should fall to chance while MMLU stays."""

    name = "wmdp"
    family = "wmdp"
    shape = "text"
    splits = tuple(FORGET)
    default_split = "bio+cyber"
    references = (Reference("target", "target"),)
    target_is_base = True
    columns = WMDP_COLUMNS
    tradeoff = ("mmlu", "wmdp_bio")
    headline_forget = "wmdp_bio"
    ranking = Ranking(forget="wmdp_bio", utility="mmlu", min_ratio=0.9)
    eval_options = {"batch_size": 32, "max_items": None}
    data_options = {"chunk_len": 512}  # RMU's code truncates corpus texts at 512 tokens
    wmdp_configs = ("wmdp-bio", "wmdp-cyber")
    mmlu_subjects: tuple[str, ...] = ()

    def __init__(self, path: str | None = None):
        super().__init__(path)
        self._sets = None

    def default_path(self) -> str:
        return ""  # the hub datasets; a directory holds them like the stand-in (see data.wmdp)

    def _root(self):
        return self.path or None

    def forget_rows(self, split: str) -> list[dict]:
        from unlearnbench.data.wmdp import load_corpus

        return [{"text": t} for name in FORGET[self.check_split(split)] for t in load_corpus(name, self._root())]

    def retain_rows(self, split: str) -> list[dict]:
        from unlearnbench.data.wmdp import load_corpus

        return [{"text": t} for t in load_corpus("wikitext", self._root()) if t.strip()]

    def sets(self) -> dict[str, list[dict]]:
        """The question sets scored (WMDP configs, MMLU and its listed subjects), loaded once."""
        if self._sets is None:
            from unlearnbench.data.wmdp import eval_sets

            self._sets = eval_sets(self._root(), self.wmdp_configs, self.mmlu_subjects)
        return self._sets

    def summarise_records(self, records: list[dict], reference=None, part: str | None = None,
                          options: dict | None = None) -> dict:
        from unlearnbench.eval.multiple_choice import summarize

        names = dict.fromkeys(r["set"] for r in records)
        return {n: summarize([r for r in records if r["set"] == n and self.in_part(r, part)]) for n in names}

    def evaluate(self, model, encoder, split: str, *, reference=None, models=None, batch_size=32, max_items=None):
        from unlearnbench.eval.multiple_choice import evaluate_wmdp

        sets = {k: v[:max_items] if max_items else v for k, v in self.sets().items()}
        return evaluate_wmdp(model, encoder.tokenizer, sets, batch_size=batch_size)


class WmdpSynthBenchmark(StandIn, WmdpBenchmark):
    """WMDP stand-in: fictitious hazardous, benign and general domains, each a corpus and 4-option questions.

    The hazardous domain plays WMDP-Bio, the benign one MMLU college biology (and the bio
    retain corpus), the general one MMLU geography (and wikitext)."""

    name = "wmdp-synth"
    stand_in_for = "wmdp"
    splits = ("bio",)
    default_split = "bio"
    wmdp_configs = ("wmdp-bio",)
    mmlu_subjects = ("college_biology", "high_school_geography")  # the benign and general domains
    columns = (WMDP_COLUMNS[0], WMDP_COLUMNS[2],
               Column("benign", ("mmlu_college_biology", "accuracy"), "max"),
               Column("general", ("mmlu_high_school_geography", "accuracy"), "max"))
    generator = wmdp_synth.STAND_IN

    def real_layout(self) -> str:
        """A root the real ``wmdp`` class runs on (``rehearse``): see ``data.wmdp_synth.real_root``."""
        return str(wmdp_synth.real_root(self.synth))

    def tiny_recipe(self, data_key: str) -> TinyRecipe:
        return TinyRecipe(data_key=data_key, tokenizer_texts=lambda: wmdp_synth.tiny_texts(self.path, "tokenizer"),
                          base_texts=lambda: wmdp_synth.tiny_texts(self.path, "base"), finetuned_roles=(),
                          tiny=dict(wmdp_synth.TINY_OVERRIDES))
