"""Extra answers a method declares it needs, attached to each forget row.

- ``idk``: a refusal drawn uniformly from the project's list (IdkPO, IdkDPO);
- ``template``: FLAT's template answer, a refusal by default or a random normal answer;
- ``random_normal``: K answers drawn from normal data (the retain split), LLMU's mismatch.
"""

from __future__ import annotations

import random

from unlearnbench.data.refusals import REFUSALS

# need -> (batch key, row field)
EXTRAS = {"idk": ("idk", "idk_answer"), "template": ("template", "template_answer"),
          "random_normal": ("random", "random_answers")}
KNOWN_NEEDS = ("retain",) + tuple(EXTRAS)


def extras_for(needs) -> dict[str, str]:
    unknown = [n for n in needs if n not in KNOWN_NEEDS]
    if unknown:
        raise ValueError(f"unknown data need(s) {unknown}; known: {', '.join(KNOWN_NEEDS)}")
    return {EXTRAS[n][0]: EXTRAS[n][1] for n in needs if n in EXTRAS}


def make_augment(needs, k_random: int = 5, template: str = "refusal"):
    """A function (forget_rows, rng, normal_rows) -> rows with the declared fields added."""
    if template not in ("refusal", "normal"):
        raise ValueError(f"FLAT template must be 'refusal' or 'normal', got {template!r}")

    def augment(rows: list[dict], rng: random.Random, normal: list[dict]) -> list[dict]:
        answers = [r["answer"] for r in normal]
        out = []
        for r in rows:
            r = dict(r)
            if "idk" in needs:
                r["idk_answer"] = rng.choice(REFUSALS)
            if "template" in needs:
                r["template_answer"] = rng.choice(REFUSALS) if template == "refusal" else rng.choice(answers)
            if "random_normal" in needs:
                r["random_answers"] = rng.sample(answers, k_random)
            out.append(r)
        return out

    return augment
