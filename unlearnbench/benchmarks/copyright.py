"""Copyright completion (Harry-Potter style; LLMU and FLAT) and its stand-in, on the ``Benchmark`` interface.

The book (a user-supplied local text file, or a hub dataset the user has access to; never
shipped) is cut into passages; an item is an instruction template + the passage's first
words (``question``) and the rest of the passage (``answer``). Train and test items share
passages but use different instruction templates. The target is a model fine-tuned on the
book; the base model, never trained on it, is the reference of "not memorised".
Metrics (docs/metrics.md §6): ROUGE-L recall (stemmer) and sacreBLEU of greedy completions on
the test-template items; utility as perplexity on held-out general text and mean zero-shot
accuracy on general tasks (FLAT's nine lm-evaluation-harness tasks for a real model; the
stand-in's own general questions, scored by our multiple-choice evaluator).
"""

from __future__ import annotations

from pathlib import Path

from unlearnbench.benchmarks.base import Benchmark, Column, Ranking, Reference, StandIn, TinyRecipe
from unlearnbench.data import copyright_synth

COPYRIGHT_COLUMNS = (
    Column("rougeL_recall", ("rougeL_recall",), "min"),
    Column("bleu", ("bleu",), "min"),
    Column("perplexity", ("perplexity",), "min"),
    Column("zero_shot_accuracy", ("zero_shot_accuracy",), "max"),
    Column("word_perplexity", ("word_perplexity",), "min", shown=False),
    # FLAT's "forget quality gap": how far a model's BLEU and ROUGE-L are from the model that
    # never saw the book (here the base reference), so over-forgetting scores badly too.
    Column("bleu_gap", ("bleu",), "min", gap_to="base"),
    Column("rougeL_gap", ("rougeL_recall",), "min", gap_to="base"),
)
WIKITEXT = ("wikitext", "wikitext-2-raw-v1", "test")  # FLAT's utility text


class CopyrightBenchmark(Benchmark):
    """Copyright completion: unlearn a book a model was fine-tuned on (the book is yours to supply)."""

    name = "copyright"
    family = "copyright"
    shape = "qa"
    splits = ("train",)
    default_split = "train"
    references = (Reference("target", "target"), Reference("base", "base"))
    columns = COPYRIGHT_COLUMNS
    tradeoff = ("perplexity", "rougeL_recall")
    headline_forget = "rougeL_recall"
    # Perplexity is lower-is-better: ranked among methods within 1/0.9 of the target's.
    ranking = Ranking(forget="rougeL_recall", utility="perplexity", min_ratio=0.9)
    template = "raw"
    eval_options = {"batch_size": 16, "max_new_tokens": 300, "max_items": None,
                    "zero_shot_tasks": "flat", "zero_shot_limit": None}
    data_options = {"k_random": 5, "template": "refusal"}
    passage_words, prefix_words = 380, 200  # see data.copyright (REAL_*)

    def default_path(self) -> str:
        return ""  # no default: the book is never shipped

    def _text(self) -> str:
        from unlearnbench.data.copyright import load_text

        return load_text(self.path)

    def _items(self, kind: str) -> list[dict]:
        from unlearnbench.data.copyright import test_items, train_items

        make = train_items if kind == "train" else test_items
        return make(self._text(), passage_words=self.passage_words, prefix_words=self.prefix_words, seed=0)

    def forget_rows(self, split: str) -> list[dict]:
        self.check_split(split)
        return [{"question": it["question"], "answer": it["answer"]} for it in self._items("train")]

    def target_data(self, split: str):
        """The book's passages and its train-template items, as FLAT fine-tunes its target."""
        from unlearnbench.data.copyright import passage_texts

        items = [f"{it['question']} {it['answer']}" for it in self._items("train")]
        return None, passage_texts(self._text(), self.passage_words) + items

    def general_texts(self, part: str) -> list[str]:
        """General text: the base's kind of text for retain data, held-out text for perplexity."""
        import datasets

        path, config, split = WIKITEXT
        rows = datasets.load_dataset(path, config, split="train" if part == "train" else split)
        return [r["text"] for r in rows if r["text"].strip()]

    def retain_rows(self, split: str) -> list[dict]:
        # The retain term of GradDiff, NPO-RT, ... keeps general text: each text scored
        # whole, as the answer to an empty prompt (the data is question/answer-shaped).
        return [{"question": "", "answer": t} for t in self.general_texts("train")]

    def zero_shot(self, model, tokenizer, tasks, *, batch_size: int, limit: int | None) -> tuple[dict, list[dict]]:
        """General ability: lm-evaluation-harness zero-shot tasks (``"flat"``: FLAT's nine)."""
        from unlearnbench.bridges.lm_eval import FLAT_ZERO_SHOT, zero_shot

        tasks = FLAT_ZERO_SHOT if tasks == "flat" else tuple(tasks)
        return zero_shot(model, tokenizer, tasks, batch_size=batch_size, limit=limit), []

    def summarise_records(self, records: list[dict], reference=None, part: str | None = None,
                          options: dict | None = None) -> dict:
        """The summary of ``part``'s completion items and general texts, each kind split by its
        own index. Zero-shot numbers from lm-evaluation-harness have no per-item records here,
        so a part has none."""
        from unlearnbench.eval.copyright import summarise

        return summarise([r for r in records if r["task"] in ("completion", "general") and self.in_part(r, part)])

    def evaluate(self, model, encoder, split: str, *, reference=None, models=None, max_items=None,
                 zero_shot_tasks=None, zero_shot_limit=None, **options):
        from unlearnbench.eval.copyright import evaluate_copyright

        items = self._items("test")[:max_items] if max_items else self._items("test")
        summary, records = evaluate_copyright(model, encoder.tokenizer, items, self.general_texts("heldout"),
                                              **options)
        if zero_shot_tasks:  # an empty list or null skips it (it is the slow part on a 7B model)
            extra, mc_records = self.zero_shot(model, encoder.tokenizer, zero_shot_tasks,
                                               batch_size=options.get("batch_size", 16), limit=zero_shot_limit)
            summary.update(extra)
            records += mc_records
        return summary, records


class CopyrightSynthBenchmark(StandIn, CopyrightBenchmark):
    """Copyright stand-in: the harness's own generated long-form fiction plays the book."""

    name = "copyright-synth"
    stand_in_for = "copyright"
    eval_options = {**CopyrightBenchmark.eval_options, "max_new_tokens": 64, "zero_shot_tasks": "general_mc"}

    generator = copyright_synth.STAND_IN

    def __init__(self, path: str | None = None, synth=None):
        super().__init__(path, synth)
        self.passage_words, self.prefix_words = self.synth.passage_words, self.synth.prefix_words

    def config_for(self, path: str | None):
        # A directory given (--data-dir) is cut as it was generated (its config.json).
        return copyright_synth.load_config(path) if path else self.generator.config()

    def _text(self) -> str:
        from unlearnbench.data.copyright import load_text

        return load_text(str(Path(self.path) / "book.txt"))

    def general_texts(self, part: str) -> list[str]:
        import json

        name = "general_train.jsonl" if part == "train" else "general_heldout.jsonl"
        with open(Path(self.path) / name, encoding="utf-8") as f:
            return [json.loads(line)["text"] for line in f]

    def zero_shot(self, model, tokenizer, tasks, *, batch_size: int, limit: int | None) -> tuple[dict, list[dict]]:
        """The stand-in's general questions (MMLU schema), zero-shot, by our multiple-choice
        evaluator (which agrees item by item with the harness: tests/test_lm_eval_bridge.py)."""
        import json

        from unlearnbench.eval.multiple_choice import evaluate_mc, mmlu_topic

        if tasks != "general_mc":
            raise ValueError(f"copyright-synth: zero_shot_tasks must be 'general_mc' (the stand-in's "
                             f"general questions), got {tasks!r}")
        with open(Path(self.path) / "general_mc.jsonl", encoding="utf-8") as f:
            rows = [json.loads(line) for line in f][:limit]
        summary, records = evaluate_mc(model, tokenizer, rows, mmlu_topic, batch_size)
        return (self._zero_shot_summary(summary["accuracy"]),
                [{"task": "general_mc", **{k: v for k, v in r.items() if k != "_order"}} for r in records])

    @staticmethod
    def _zero_shot_summary(accuracy: float) -> dict:
        return {"zero_shot_accuracy": accuracy, "zero_shot": {"general_mc": accuracy}}

    def summarise_records(self, records: list[dict], reference=None, part: str | None = None,
                          options: dict | None = None) -> dict:
        """As the real benchmark's, plus the general questions of ``part`` (split by their index)."""
        from unlearnbench.eval.multiple_choice import summarize

        summary = super().summarise_records(records, reference, part, options)
        mc = [r for r in records if r["task"] == "general_mc" and self.in_part(r, part)]
        if mc:
            summary.update(self._zero_shot_summary(summarize(mc)["accuracy"]))
        return summary

    def recipe(self) -> TinyRecipe:
        # Keyed by the config.json of the directory read, not by its files (stand_in_key):
        # a copy of a generated stand-in shares its tiny family.
        return self.tiny_recipe(self.generator.data_key(copyright_synth.load_config(self.path)))

    def tiny_recipe(self, data_key: str) -> TinyRecipe:
        """Tokenizer, base (general text) and target (the base fine-tuned on the book); the base
        doubles as the never-trained-on-the-book reference."""
        def texts(role: str):
            return lambda: copyright_synth.tiny_texts(self.path, role)

        return TinyRecipe(data_key=data_key, tokenizer_texts=texts("tokenizer"), base_texts=texts("base"),
                          finetune=lambda role, split: (None, texts("target")()), finetuned_roles=("target",),
                          tiny=dict(copyright_synth.TINY_OVERRIDES))
