"""WAGLE's DETOX task: PKU-SafeRLHF (forget, unseen prompts), RealToxicityPrompts and TruthfulQA.

As OPTML-Group/WAGLE @31275e8 builds it (``src/dataset/SafePku.py``, ``src/dataset/Base.py``,
``src/dataset/dataset.py``, ``src/metrics/toxic.py``):

- forget: every unsafe response of PKU-SafeRLHF's ``train`` split (revision ``ff7ba91``), in
  row order (response_0 before response_1), then ``n_forget`` of them drawn by
  ``random.seed(0); random.sample(range(N), 200)`` (a count above 1, a fraction at most 1);
  the text is ``"### Question: {prompt}\\n### Answer: {response}"``.
- unseen prompts: the ``prompt`` of every row of PKU-SafeRLHF's ``test`` split, duplicates
  included, given to the model as they are (no template).
- RealToxicityPrompts: ``prompt.text`` of the ``train`` split (the only one), all of it by
  default (``fraction=1.0``); a smaller fraction is ``train_test_split(train_size=fraction,
  seed=8888)["train"]``, as WAGLE's ``get_real_toxic_dataset``.
- normal data (WAGLE's retain set): TruthfulQA, split 70/10/20 by question as in the LLMU
  scenarios (train = retain rows, test = the normal prompts of the utility measure).

Every source is read with ``datasets.load_dataset``: the hub name, or a local directory in
the hub's layout (the stand-in ``detox-synth``, a mirror, a test fixture).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from unlearnbench.data.harmful import (PKU_FIELDS, PKU_HUB, TRUTHFULQA_HUB, forget_rows, load_truthfulqa,
                                       normal_rows, split_prompts, validate_rows)
from unlearnbench.data.hub_layout import local_cache_dir
from unlearnbench.data.schema import SchemaError

PKU_REVISION = "ff7ba91063016c78a225b0f74e1c0860bb18230f"  # the revision WAGLE pins
RTP_HUB = "allenai/real-toxicity-prompts"
WAGLE_QUESTION = "### Question: {prompt}\n"  # WAGLE's question part; the forget prompts are fed so
N_FORGET = 200  # WAGLE's forget_ratio default (a count: > 1)
FORGET_SEED = 0  # WAGLE's dataset_seed default
RTP_SEED = 8888  # WAGLE's dataset_seed of the toxicity evaluation
SPLIT_SEED = 42  # TruthfulQA's 70/10/20 split, as the LLMU scenarios


def _load(path: str, split: str, dataset: str, revision: str | None = None):
    import datasets

    local = Path(str(path)).is_dir()
    kwargs = {} if local or revision is None else {"revision": revision}
    try:
        return datasets.load_dataset(str(path), split=split, cache_dir=local_cache_dir(path), **kwargs)
    except StopIteration as exc:  # datasets' JSON builder on an empty file
        raise SchemaError(f"{dataset} split {split!r} from {path} is empty; regenerate or re-download it") from exc
    except ValueError as exc:
        if "Unknown split" in str(exc) or "Bad split" in str(exc):
            raise SchemaError(f"{dataset} from {path} has no split {split!r}; pass a copy that has it") from exc
        raise


def load_pku(path: str = PKU_HUB, split: str = "train"):
    """PKU-SafeRLHF rows at WAGLE's revision (a local directory is read as it is), validated."""
    rows = _load(path, split, "PKU-SafeRLHF", PKU_REVISION)
    validate_rows(rows, PKU_FIELDS, "PKU-SafeRLHF", split, str(path))
    return rows


def load_rtp(path: str = RTP_HUB, fraction: float = 1.0, seed: int = RTP_SEED) -> list[str]:
    """RealToxicityPrompts prompt texts (``prompt.text``), the ``fraction`` WAGLE keeps."""
    if not 0 < fraction <= 1:
        raise ValueError(f"RealToxicityPrompts fraction must be in (0, 1], got {fraction}")
    rows = _load(path, "train", "RealToxicityPrompts")
    if len(rows) == 0:
        raise SchemaError(f"RealToxicityPrompts from {path} is empty; regenerate or re-download it")
    if "prompt" not in rows.column_names:
        raise SchemaError(f"RealToxicityPrompts from {path} lacks field 'prompt'; it has {rows.column_names}")
    if fraction < 1:
        rows = rows.train_test_split(train_size=fraction, seed=seed)["train"]
    texts = []
    for i, row in enumerate(rows):
        p = row["prompt"]
        if not isinstance(p, dict) or not isinstance(p.get("text"), str) or not p["text"].strip():
            raise SchemaError(f"RealToxicityPrompts from {path}, row {i}: field 'prompt' should be "
                              f"{{'text': non-empty str, ...}}, got {p!r:.80}")
        texts.append(p["text"])
    return texts


def sample_forget(rows: list[dict], n_forget: float = N_FORGET, seed: int = FORGET_SEED) -> list[dict]:
    """WAGLE's draw: ``int(n)`` rows if ``n > 1`` else ``int(n·N)``, by ``random.seed(seed)``
    then ``random.sample(range(N), length)`` (a private ``Random(seed)`` draws the same)."""
    length = int(n_forget) if n_forget > 1 else int(len(rows) * n_forget)
    if not 0 < length <= len(rows):
        raise ValueError(f"DETOX: n_forget={n_forget} asks for {length} of {len(rows)} unsafe responses")
    return [rows[i] for i in random.Random(seed).sample(range(len(rows)), length)]


@dataclass
class DetoxData:
    """What DETOX trains on and evaluates."""

    forget: list[dict]  # sampled unsafe responses {"question": prompt, "answer": response}
    unseen_prompts: list[str]  # PKU-SafeRLHF test prompts, one per row
    rtp_prompts: list[str]  # RealToxicityPrompts prompt texts
    normal: dict[str, list[dict]]  # TruthfulQA by part {"question", "answer"}

    @property
    def forget_prompts(self) -> list[str]:
        return [r["question"] for r in self.forget]


def build_detox_data(pku_train, pku_test, rtp_prompts: list[str], tqa_rows, *, n_forget: float = N_FORGET,
                     forget_seed: int = FORGET_SEED, split_seed: int = SPLIT_SEED) -> DetoxData:
    """``DetoxData`` from loaded rows (any iterables of dicts)."""
    normal = normal_rows(tqa_rows)
    parts = split_prompts([r["question"] for r in normal], split_seed)
    by_q = {r["question"]: r for r in normal}
    return DetoxData(forget=sample_forget(forget_rows(pku_train), n_forget, forget_seed),
                     unseen_prompts=[r["prompt"] for r in pku_test], rtp_prompts=list(rtp_prompts),
                     normal={p: [by_q[q] for q in qs] for p, qs in parts.items()})


def rtp_path(root: str | None = None) -> str:
    """Where RealToxicityPrompts is read from: the hub, or ``root/rtp``."""
    return str(Path(root) / "rtp") if root else RTP_HUB


def detox_data(root: str | None = None, *, rtp_fraction: float | None = 1.0,
               n_forget: float = N_FORGET) -> DetoxData:
    """Load every source: the hub, or ``root/{pku,rtp,truthfulqa}`` in the hub's layouts
    (``rtp_fraction=None`` leaves RealToxicityPrompts out: training needs only PKU and TruthfulQA)."""
    base = Path(root) if root else None
    pku, rtp, tqa = ((str(base / "pku"), str(base / "rtp"), str(base / "truthfulqa")) if base
                     else (PKU_HUB, RTP_HUB, TRUTHFULQA_HUB))
    pku_train, pku_test = load_pku(pku, "train"), load_pku(pku, "test")
    rtp_rows = load_rtp(rtp, rtp_fraction) if rtp_fraction else []
    return build_detox_data(pku_train, pku_test, rtp_rows, load_truthfulqa(tqa), n_forget=n_forget)
