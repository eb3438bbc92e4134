"""LLMU's harmful-response scenario: PKU-SafeRLHF (forget) and TruthfulQA (normal data).

Both sources are read with ``datasets.load_dataset(path, config, split=...)``: the hub
names or local directories with the same files (the stand-in ``harmful-synth``, or a
mirror). Forget = every unsafe response of a harmful prompt, in LLMU's text format
``"### Question: {prompt}\\n ### Answer: {response}"``. The harmful prompts are split
70/10/20 (train = forgotten / validation / unseen test) by prompt, seeded, so that a prompt
(PKU repeats prompts over rows) never lands in two parts.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from unlearnbench.data.hub_layout import local_cache_dir
from unlearnbench.data.schema import SchemaError

PKU_HUB = "PKU-Alignment/PKU-SafeRLHF"
TRUTHFULQA_HUB = "truthfulqa/truthful_qa"
TRUTHFULQA_CONFIG = "generation"
TRUTHFULQA_SPLIT = "validation"  # the only split of the generation config

LLMU_PROMPT = "### Question: {prompt}\n ### Answer: "
SPLIT_PARTS = ("train", "validation", "test")
SPLIT_FRACTIONS = (0.7, 0.1, 0.2)

PKU_FIELDS: dict[str, type | tuple] = {
    "prompt": str, "response_0": str, "response_1": str,
    "is_response_0_safe": bool, "is_response_1_safe": bool,
    # The 2023 schema has ints here; absent in the new dual-preference rows is not allowed.
    "better_response_id": int, "safer_response_id": int,
}
TRUTHFULQA_FIELDS: dict[str, type | tuple] = {
    "question": str, "best_answer": str, "correct_answers": list, "incorrect_answers": list,
}


def format_text(question: str, answer: str) -> str:
    """LLMU's training text: ``"### Question: {q}\\n ### Answer: {a}"``."""
    return LLMU_PROMPT.format(prompt=question) + answer


def format_prompt(question: str) -> str:
    """LLMU's prompt (the text before the answer, trailing space included)."""
    return LLMU_PROMPT.format(prompt=question)


def validate_rows(rows, fields: dict, dataset: str, split: str, source: str) -> None:
    """Raise SchemaError naming the dataset, split, field and row of the first problem."""
    where = f"{dataset} split {split!r} from {source}"
    if len(rows) == 0:
        raise SchemaError(f"{where} is empty; regenerate or re-download it")
    columns = rows.column_names if hasattr(rows, "column_names") else list(rows[0])
    missing = [f for f in fields if f not in columns]
    if missing:
        raise SchemaError(f"{where} lacks field(s) {missing}; it has {columns}")
    for i, row in enumerate(rows):
        for name, kind in fields.items():
            value = row[name]
            # bool is an int subclass: an id given as True/False is a schema error too.
            ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
            if kind is list:
                ok = ok and all(isinstance(v, str) for v in value)
            if not ok:
                raise SchemaError(f"{where}, row {i}: field {name!r} should be "
                                  f"{kind.__name__}{' of str' if kind is list else ''}, "
                                  f"got {type(value).__name__}: {value!r:.80}")
            if kind is str and name in ("prompt", "question") and not value.strip():
                raise SchemaError(f"{where}, row {i}: field {name!r} is empty")


def load_rows(path: str, config: str | None, split: str, fields: dict, dataset: str):
    """``datasets.load_dataset(path, config, split=split)``, validated against ``fields``."""
    import datasets

    try:
        rows = datasets.load_dataset(str(path), config, split=split, cache_dir=local_cache_dir(path))
    except StopIteration as exc:  # datasets' JSON builder on an empty file
        raise SchemaError(f"{dataset} split {split!r} from {path} is empty; "
                          "regenerate or re-download it") from exc
    except ValueError as exc:
        if "no data" in str(exc) or "Unknown split" in str(exc) or "Bad split" in str(exc):
            raise SchemaError(f"{dataset} from {path} has no split {split!r} ({exc}); "
                              "pass the split the copy has") from exc
        raise
    validate_rows(rows, fields, dataset, split, str(path))
    return rows


def load_pku(path: str = PKU_HUB, split: str = "train", config: str | None = None):
    """PKU-SafeRLHF rows (hub name or local dir), validated."""
    return load_rows(path, config, split, PKU_FIELDS, "PKU-SafeRLHF")


def load_truthfulqa(path: str = TRUTHFULQA_HUB, config: str = TRUTHFULQA_CONFIG,
                    split: str = TRUTHFULQA_SPLIT):
    """TruthfulQA ``generation`` rows (hub name or local dir), validated."""
    return load_rows(path, config, split, TRUTHFULQA_FIELDS, "TruthfulQA")


def forget_rows(rows: Iterable[dict]) -> list[dict]:
    """Every unsafe response as ``{"question": prompt, "answer": response}``, in row order."""
    out = []
    for row in rows:
        for k in (0, 1):
            if not row[f"is_response_{k}_safe"]:
                out.append({"question": row["prompt"], "answer": row[f"response_{k}"]})
    return out


def harmful_prompts(rows: Iterable[dict]) -> list[str]:
    """Distinct prompts with at least one unsafe response, in first-seen order."""
    return list(dict.fromkeys(r["question"] for r in forget_rows(rows)))


def split_prompts(prompts: Sequence[str], seed: int,
                  fractions: tuple[float, float, float] = SPLIT_FRACTIONS) -> dict[str, list[str]]:
    """Seeded train/validation/test split of the distinct prompts.

    Sizes as LLMU's TruthfulQA split: ``int(0.7 n)``, ``int(0.1 n)``, the rest. The order
    does not depend on the input order (prompts are sorted before the seeded shuffle).
    """
    if len(fractions) != 3 or abs(sum(fractions) - 1.0) > 1e-9 or min(fractions) < 0:
        raise ValueError(f"fractions must be 3 non-negative numbers summing to 1, got {fractions}")
    unique = sorted(set(prompts))
    random.Random(seed).shuffle(unique)
    n = len(unique)
    n_train, n_val = int(fractions[0] * n), int(fractions[1] * n)
    return {"train": unique[:n_train], "validation": unique[n_train: n_train + n_val],
            "test": unique[n_train + n_val:]}


def normal_rows(rows: Iterable[dict]) -> list[dict]:
    """TruthfulQA as ``{"question", "answer": best_answer}`` (LLMU's normal data)."""
    return [{"question": r["question"], "answer": r["best_answer"]} for r in rows]


def random_answer_pool(rows: Iterable[dict]) -> list[str]:
    """LLMU's mismatch pool: every best answer, then every correct and incorrect answer."""
    rows = list(rows)
    pool = [r["best_answer"] for r in rows]
    for key in ("correct_answers", "incorrect_answers"):
        pool += [a.strip() for r in rows for a in r[key] if a.strip()]
    return pool


@dataclass
class HarmfulData:
    """Everything the harmful scenario trains on and evaluates, split by prompt."""

    forget: list[dict]  # unsafe responses of the train prompts {"question", "answer"}
    prompts: dict[str, list[str]]  # harmful prompts by part: train (forgotten) / validation / test (unseen)
    normal: dict[str, list[dict]]  # TruthfulQA by part, {"question", "answer"}
    random_answers: list[str] = field(default_factory=list)

    @property
    def forget_prompts(self) -> list[str]:
        """Harmful prompts whose unsafe responses are forgotten (the train part)."""
        return self.prompts["train"]

    @property
    def unseen_prompts(self) -> list[str]:
        """Harmful prompts never trained on (the test part)."""
        return self.prompts["test"]


def harmful_data(pku_path: str = PKU_HUB, truthfulqa_path: str = TRUTHFULQA_HUB, *,
                 seed: int = 42, pku_split: str = "train", pku_config: str | None = None) -> HarmfulData:
    """Load both datasets and split them (harmful prompts and TruthfulQA questions 70/10/20)."""
    pku = load_pku(pku_path, pku_split, pku_config)
    tqa = load_truthfulqa(truthfulqa_path)
    return build_harmful_data(pku, tqa, seed)


def build_harmful_data(pku_rows, tqa_rows, seed: int) -> HarmfulData:
    """``HarmfulData`` from already loaded rows (any iterable of dicts)."""
    pku_rows, tqa_rows = list(pku_rows), list(tqa_rows)
    prompts = split_prompts(harmful_prompts(pku_rows), seed)
    train = set(prompts["train"])
    forget = [r for r in forget_rows(pku_rows) if r["question"] in train]
    normal = normal_rows(tqa_rows)
    parts = split_prompts([r["question"] for r in normal], seed)
    by_q = {r["question"]: r for r in normal}
    return HarmfulData(forget=forget, prompts=prompts,
                       normal={p: [by_q[q] for q in qs] for p, qs in parts.items()},
                       random_answers=random_answer_pool(tqa_rows))
