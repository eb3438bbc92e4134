"""LLMU's hallucination scenario: HaluEval ``qa`` (forget) and TruthfulQA (normal data).

``pminervini/HaluEval`` config ``qa``, split ``data``: ``knowledge``, ``question``,
``right_answer``, ``hallucinated_answer``. Forget = (question, hallucinated answer) of the
train part; the hallucination rate is measured on the held-out (test) part. Questions are
split 70/10/20 with the same seeded rule as the harmful prompts, so a question never lands
in two parts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from unlearnbench.data.harmful import (
    TRUTHFULQA_HUB,
    load_rows,
    load_truthfulqa,
    normal_rows,
    random_answer_pool,
    split_prompts,
)

HALUEVAL_HUB = "pminervini/HaluEval"
HALUEVAL_CONFIG = "qa"
HALUEVAL_SPLIT = "data"  # the only split of each HaluEval config
HALUEVAL_FIELDS = {"knowledge": str, "question": str, "right_answer": str, "hallucinated_answer": str}


def load_halueval(path: str = HALUEVAL_HUB, config: str = HALUEVAL_CONFIG, split: str = HALUEVAL_SPLIT):
    """HaluEval qa rows (hub name or local dir), validated."""
    return load_rows(path, config, split, HALUEVAL_FIELDS, "HaluEval")


def forget_rows(rows: Iterable[dict]) -> list[dict]:
    """Each row as ``{"question", "answer": hallucinated_answer}``."""
    return [{"question": r["question"], "answer": r["hallucinated_answer"]} for r in rows]


def item(row: dict) -> dict:
    """The fields an evaluation item keeps."""
    return {k: row[k] for k in ("question", "right_answer", "hallucinated_answer", "knowledge")}


@dataclass
class HallucinationData:
    """Forget pairs, evaluation items by part, and normal data, split by question."""

    forget: list[dict]  # train part as {"question", "answer": hallucinated}
    items: dict[str, list[dict]]  # train / validation / test (held-out) HaluEval items
    normal: dict[str, list[dict]]  # TruthfulQA by part, {"question", "answer"}
    random_answers: list[str] = field(default_factory=list)

    @property
    def heldout(self) -> list[dict]:
        """Held-out items (the test part) that the hallucination rate is measured on."""
        return self.items["test"]


def hallucination_data(halueval_path: str = HALUEVAL_HUB, truthfulqa_path: str = TRUTHFULQA_HUB,
                       *, seed: int = 42) -> HallucinationData:
    """Load HaluEval qa and TruthfulQA and split both 70/10/20."""
    return build_hallucination_data(load_halueval(halueval_path), load_truthfulqa(truthfulqa_path), seed)


def build_hallucination_data(halu_rows, tqa_rows, seed: int) -> HallucinationData:
    """``HallucinationData`` from already loaded rows (any iterable of dicts)."""
    halu_rows, tqa_rows = [dict(r) for r in halu_rows], list(tqa_rows)
    parts = split_prompts([r["question"] for r in halu_rows], seed)
    part_of = {q: p for p, qs in parts.items() for q in qs}
    items = {p: [] for p in parts}
    for r in halu_rows:
        items[part_of[r["question"]]].append(item(r))
    normal = normal_rows(tqa_rows)
    nparts = split_prompts([r["question"] for r in normal], seed)
    by_q = {r["question"]: r for r in normal}
    return HallucinationData(
        forget=forget_rows(items["train"]), items=items,
        normal={p: [by_q[q] for q in qs] for p, qs in nparts.items()},
        random_answers=random_answer_pool(tqa_rows))
