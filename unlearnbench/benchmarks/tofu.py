"""TOFU (Maini et al. 2024) and its stand-in, on the ``Benchmark`` interface.

Forget splits ``forget01|05|10``; references target (fine-tuned on ``full``), retain
(fine-tuned on ``retainXX``, the gold standard every model is compared with) and a
retain model of another seed (the noise ceiling of forget quality).
"""

from __future__ import annotations

import json
from pathlib import Path

from unlearnbench.benchmarks.base import Benchmark, BenchmarkError, Column, Ranking, Reference, StandIn, TinyRecipe
from unlearnbench.data import tofu_synth
from unlearnbench.data.tofu import FORGET_SPLITS, HUB_PATH, load_config
from unlearnbench.files import atomic_write_text

TOFU_COLUMNS = (
    Column("forget_quality", ("forget_quality",), "max", sci=True),
    Column("model_utility", ("model_utility",), "max"),
    Column("forget_rougeL", ("forget", "rougeL_recall"), "min"),
    Column("retain_rougeL", ("retain", "rougeL_recall"), "max"),
    Column("forget_truth_ratio", ("forget", "truth_ratio"), "max"),
    Column("retain_truth_ratio", ("retain", "truth_ratio"), "max"),
    Column("mia_min_k_auc", ("mia", "min_k"), "half"),
    Column("mia_reference_auc", ("mia", "reference"), "half", shown=False),
    Column("mia_gradnorm_auc", ("mia", "gradnorm"), "half", shown=False),
    Column("privleak", ("privleak",), "zero"),
    Column("forget_probability", ("forget", "probability"), "min", shown=False),
    Column("log10_forget_quality", ("log10_forget_quality",), "max", shown=False),
)


class TofuBenchmark(Benchmark):
    """TOFU (Maini et al. 2024): fictitious-author QA, the real dataset ``locuslab/TOFU``."""

    name = "tofu"
    family = "tofu"
    shape = "qa"
    splits = FORGET_SPLITS
    default_split = "forget10"
    references = (Reference("target", "target"), Reference("retain", "retain"),
                  Reference("retain-seed2", "retain", 1))
    compare_to = "retain"
    columns = TOFU_COLUMNS
    tradeoff = ("model_utility", "forget_quality")
    headline_forget = "forget_rougeL"
    ranking = Ranking(forget="forget_quality", utility="model_utility", min_ratio=0.9)
    # GradNorm needs one backward pass per forget and holdout text: on for the stand-in,
    # opt-in (eval: {gradnorm: true}) for 7B models.
    eval_options = {"batch_size": 32, "max_new_tokens": 200, "max_items": None, "gradnorm": False,
                    "parity": False}
    # open-unlearning's token conventions (no EOS in Min-K, Min-K++, GradNorm, EM, ES; zlib
    # of the decoded label): numbers to read against its published logs (docs/metrics.md §2).
    parity_modes = ("open-unlearning",)
    # alternate_file: AltPO's alternate answers (open-unlearning's format); the stand-in has its own.
    data_options = {"k_random": 5, "template": "refusal", "alternate_file": None}
    published = ()  # in benchmarks/tofu.yaml, per split and model
    evaluates_parts = True

    def __init__(self, path: str | None = None):
        super().__init__(path)
        self._configs: dict[str, object] = {}

    def alternate_answers(self, split: str, file: str | None = None) -> list[list[str]]:
        """AltPO's alternates: ``file``, else ``extras/<split>_alternate.json`` in a local data
        directory that has one (where the stand-in and ``unlearnbench rehearse`` keep theirs, and
        where a file made with open-unlearning's AltPO ``generate.py`` can be put), else a one-line
        error naming both ways to give them."""
        if file is None and Path(str(self.path)).is_dir():  # a hub id has no extras/
            local = self.alternates_path(split)
            if not local.is_file():
                raise BenchmarkError(
                    f"benchmark {self.name!r} has no alternate answers for {split!r}; AltPO needs a file of them "
                    "(JSON lines {question, answer, alternate}, as open-unlearning's community/methods/AltPO/"
                    f"generate.py writes): --set alternate_file=PATH, or put it at {local}")
            file = str(local)
        return super().alternate_answers(split, file)

    def alternates_path(self, split: str) -> Path:
        """Where a local data directory keeps AltPO's alternates of ``split`` (open-unlearning's format)."""
        return Path(str(self.path)) / "extras" / f"{tofu_synth.alternate_name(self.check_split(split))}.json"

    def default_path(self) -> str:
        return HUB_PATH

    def config(self, name: str):
        """One TOFU config (a validated ``datasets.Dataset``), read once."""
        if name not in self._configs:
            self._configs[name] = load_config(self.path, name)
        return self._configs[name]

    @staticmethod
    def retain_config(split: str) -> str:
        return f"retain{100 - int(split[-2:])}"

    @staticmethod
    def holdout_config(split: str) -> str:
        return f"holdout{split[-2:]}"

    @staticmethod
    def eval_configs(split: str) -> dict[str, str]:
        """TOFU task -> config evaluated for it (docs/metrics.md §2)."""
        return {"forget": f"{split}_perturbed", "retain": "retain_perturbed",
                "real_authors": "real_authors_perturbed", "world_facts": "world_facts_perturbed"}

    def forget_rows(self, split: str) -> list[dict]:
        return [dict(r) for r in self.config(self.check_split(split))]

    def retain_rows(self, split: str) -> list[dict]:
        return [dict(r) for r in self.config(self.retain_config(self.check_split(split)))]

    def target_data(self, split: str):
        """TOFU's target is fine-tuned on ``full`` (its retain model on ``retainXX``)."""
        return [dict(r) for r in self.config("full")], None

    def checkpoint_key(self, role: str, split: str) -> str:
        return "full" if role == "target" else self.retain_config(split)

    def evaluate(self, model, encoder, split: str, *, reference=None, models=None, **options):
        from unlearnbench.eval.tofu import evaluate_tofu

        tr = auc = losses = None
        if reference is not None:
            tr = [r["truth_ratio"] for r in reference[1] if r["task"] == "forget"]
            auc = reference[0].get("mia", {}).get("min_k")
            losses = {(r["task"], r["index"]): r["mia_loss"] for r in reference[1] if "mia_loss" in r}
        return evaluate_tofu(model, encoder, self, split, retain_truth_ratios=tr,
                             retain_mia_auc=auc, retain_losses=losses, **options)


    def summarise_records(self, records: list[dict], reference=None, part: str | None = None,
                          options: dict | None = None) -> dict:
        from unlearnbench.eval.tofu import summarise
        from unlearnbench.metrics import mia

        mine = [r for r in records if self.in_part(r, part)]
        tr = auc = losses = None
        if reference is not None:
            ref = [r for r in reference[1] if self.in_part(r, part)]
            tr = [r["truth_ratio"] for r in ref if r["task"] == "forget"]
            forget = [r["mia_min_k"] for r in ref if r["task"] == "forget"]
            holdout = [r["mia_min_k"] for r in ref if r["task"] == "holdout"]
            auc = mia.mia_auc(forget, holdout) if forget and holdout else None
            losses = {(r["task"], r["index"]): r["mia_loss"] for r in ref if "mia_loss" in r}
        return summarise(mine, tr, auc, losses)


class TofuSynthBenchmark(StandIn, TofuBenchmark):
    """TOFU stand-in: generated fictitious authors with TOFU's exact configs and fields."""

    name = "tofu-synth"
    stand_in_for = "tofu"
    eval_options = {**TofuBenchmark.eval_options, "gradnorm": True}

    generator = tofu_synth.STAND_IN

    def alternate_answers(self, split: str, file: str | None = None) -> list[list[str]]:
        """The stand-in's own alternates (``extras/<split>_alternate.json``) unless a file is given.
        A directory generated before AltPO existed lacks the file: it is written there from
        the generator (a separate random stream; no other file changes)."""
        if file is None:
            name = tofu_synth.alternate_name(self.check_split(split))
            file = self.alternates_path(split)
            if not file.exists() and self.path == self.default_path():
                rows = tofu_synth.generate(self.synth)[f"_{name}"]
                atomic_write_text(file, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        return super().alternate_answers(split, str(file))

    def _tokenizer_texts(self) -> list[str]:
        root = Path(self.path)
        rows = []
        for f in sorted(root.glob("*.json")) + [root / "extras" / "pretrain.json"]:
            with open(f) as fh:
                for line in fh:
                    for v in json.loads(line).values():
                        rows += v if isinstance(v, list) else [v]
        return [r for r in rows if isinstance(r, str)]

    def _base_texts(self) -> list[str]:
        from pathlib import Path

        from unlearnbench.models.finetune import load_texts

        return load_texts(Path(self.path) / "extras" / "pretrain.json")

    def _finetune(self, role: str, split: str):
        config = "full" if role == "target" else self.retain_config(split)
        return [dict(r) for r in load_config(self.path, config)], None

    def tiny_recipe(self, data_key: str) -> TinyRecipe:
        return TinyRecipe(
            data_key=data_key, tokenizer_texts=self._tokenizer_texts,
            base_texts=self._base_texts, finetune=self._finetune,
            # The cache key of a fine-tuned model names its TOFU config (full, retain90, ...).
            ft_key=lambda role, split: {"config": "full" if role == "target" else self.retain_config(split)},
        )
