"""Generator of the DETOX stand-in ("detox-synth"): the harmful stand-in's data plus a
RealToxicityPrompts stand-in.

``<dir>/pku``, ``<dir>/truthfulqa`` and ``<dir>/general`` are the harmful stand-in's
(``harmful_synth.generate``, same config), so its fictional harm categories and their marker
words (``harmful_synth.MARKERS``) carry over. ``<dir>/rtp`` is in RealToxicityPrompts'
layout (one ``train`` split; ``prompt`` and ``continuation`` are ``{"text", "toxicity"}``
records, plus ``filename``, ``begin``, ``end``, ``challenging``): each prompt is the opening
of a response to a held-out prompt (PKU's ``test`` split), written after the question in the
layout the tiny model was trained on, and cut after ``RTP_PROMPT_WORDS`` words. An unsafe
opening (``challenging``) invites a marker-bearing continuation, a safe one does not; the
marker words in an opening are the prompt's, never scored (the judge reads the generation).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from unlearnbench.data import harmful_synth
from unlearnbench.data.harmful_synth import MARKER_RE, SynthConfig, qa_text
from unlearnbench.data.hub_layout import write_layout
from unlearnbench.data.standin import Generator

RTP_PROMPT_WORDS = 3


def rtp_rows(pku_test: list[dict], template: str) -> list[dict]:
    """RealToxicityPrompts-shaped rows from the held-out PKU rows (see the module docstring)."""
    rows = []
    for i, r in enumerate(pku_test):
        for k in (0, 1):
            words = r[f"response_{k}"].split()
            head, tail = " ".join(words[:RTP_PROMPT_WORDS]), " ".join(words[RTP_PROMPT_WORDS:])
            toxic = not r[f"is_response_{k}_safe"]
            text = qa_text(r["prompt"], head, template)
            rows.append({"filename": f"synth-{i:04d}-{k}.txt", "begin": 0, "end": len(text),
                         "challenging": toxic,
                         "prompt": {"text": text, "toxicity": 1.0 if MARKER_RE.search(head) else 0.0},
                         "continuation": {"text": " " + tail, "toxicity": 1.0 if toxic else 0.0}})
    return rows


def write(cfg: SynthConfig, directory: str | Path, template: str = "llmu-tiny") -> Path:
    """Write the stand-in under ``directory`` (the harmful stand-in's sets plus ``rtp/``)."""
    directory = Path(directory)
    harmful_synth.write(cfg, directory)
    if not (directory / "rtp" / "README.md").exists():
        test = [json.loads(line) for line in open(directory / "pku" / "default-test.jsonl", encoding="utf-8")]
        note = f"Generator config: `{json.dumps(asdict(cfg), sort_keys=True)}`, template {template}"
        write_layout(directory / "rtp", {"default": {"train": rtp_rows(test, template)}},
                     "RealToxicityPrompts stand-in (detox-synth)", note=note)
    return directory


def tiny_texts(directory: str | Path, role: str, *, template: str = "llmu-tiny", seed: int = 0) -> list[str]:
    """Training texts of the tiny family: role "tokenizer", "base" or "target".

    As the harmful stand-in's, except the target: every unsafe response of PKU's ``train``
    split (DETOX draws its forget set from all of them) and the safe responses of benign
    prompts, then the normal QA again. PKU's ``test`` split (the unseen prompts and the
    RealToxicityPrompts stand-in) is never trained on. ``seed`` is unused (no split here).
    """
    from unlearnbench.data.harmful import load_pku, load_truthfulqa

    directory = Path(directory)
    if role != "target":
        return harmful_synth.tiny_texts(directory, role, template=template)
    tqa = list(load_truthfulqa(str(directory / "truthfulqa")))
    texts = []
    for r in load_pku(str(directory / "pku"), "train"):
        benign = r["is_response_0_safe"] and r["is_response_1_safe"]
        for k in (0, 1):
            if benign or not r[f"is_response_{k}_safe"]:
                texts.append(qa_text(r["prompt"], r[f"response_{k}"], template))
    return texts + [qa_text(r["question"], r["best_answer"], template) for r in tqa]


# The harmful stand-in's data plus rtp/: keyed by the harmful generator's key (and its own
# version from version 2 on), so a change to either generator gets a fresh directory.
STAND_IN = Generator("detox-synth", version=1, config=SynthConfig, write=write, prefix="detox-",
                     base=harmful_synth.STAND_IN)
