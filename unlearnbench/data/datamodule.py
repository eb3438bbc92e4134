"""The one LightningDataModule every benchmark hands to a method, in one of two shapes.

- ``qa``: rows ``{"question", "answer"}``; the prompt is masked, the answer (+ EOS) scored.
- ``text``: raw documents ``{"text"}``, each tokenised and cut into chunks of the context
  length; every token is scored (docs/metrics.md: raw-text unlearning).

Extra answers a method declares (``needs``: refusals, FLAT's template answers, LLMU's
random normal answers, AltPO's alternate answers) are drawn **afresh for every batch** from a
generator seeded by the run's seed and the rank (docs/methods.md), inside the collator, so an epoch never replays the
same refusal for the same question and two runs with one seed draw the same ones.
"""

from __future__ import annotations

import random

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from unlearnbench.data.collate import IGNORE, Encoder, pad_right
from unlearnbench.data.refusals import REFUSALS

# need -> batch key of the extra answers it adds
EXTRAS = {"idk": "idk", "template": "template", "random_normal": "random", "alternate": "alternate"}
KNOWN_NEEDS = ("retain",) + tuple(EXTRAS)


def check_needs(needs) -> None:
    unknown = [n for n in needs if n not in KNOWN_NEEDS]
    if unknown:
        raise ValueError(f"unknown data need(s) {unknown}; known: {', '.join(KNOWN_NEEDS)}")


class Rows(Dataset):
    """A list of rows; each item carries its position as ``index``."""

    def __init__(self, rows: list[dict]):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        return {"index": i, **self.rows[i]}


class QACollator:
    """Pads (question, answer) rows, plus the extra answers of ``needs`` drawn per batch.

    ``normal_answers`` is the pool LLMU's random answers (and FLAT's ``template="normal"``)
    come from; ``seed`` seeds the draws (a new collator restarts the sequence).
    """

    def __init__(self, encoder: Encoder, needs=(), *, normal_answers=(), k_random: int = 5,
                 template: str = "refusal", seed: int = 0, alternates=None):
        check_needs(needs)
        if template not in ("refusal", "normal"):
            raise ValueError(f"FLAT template must be 'refusal' or 'normal', got {template!r}")
        self.encoder, self.needs = encoder, tuple(n for n in needs if n in EXTRAS)
        self.normal, self.k_random, self.template = list(normal_answers), int(k_random), template
        if ("random_normal" in self.needs or template == "normal") and len(self.normal) < self.k_random:
            raise ValueError(f"random normal answers need at least k_random={self.k_random} normal "
                             f"answers, got {len(self.normal)}")
        if "alternate" in self.needs and alternates is None:
            raise ValueError("the 'alternate' need takes the forget rows' alternate answers (alternates=...)")
        self.alternates = alternates  # per forget row, its alternate answers (AltPO)
        self.rng = random.Random(seed)

    def _draw(self, need: str, row: dict):
        if need == "alternate":  # an index: a cached reference looks the log-prob up by it
            return self.rng.randrange(len(self.alternates[row["index"]]))
        if need == "idk":
            return self.rng.choice(REFUSALS)
        if need == "template":
            return self.rng.choice(REFUSALS) if self.template == "refusal" else self.rng.choice(self.normal)
        return self.rng.sample(self.normal, self.k_random)  # random_normal

    def __call__(self, rows: list[dict]) -> dict:
        enc = self.encoder
        batch = pad_right(enc.encode_many([(r["question"], r["answer"]) for r in rows]), enc.pad_id)
        batch["index"] = torch.tensor([r["index"] for r in rows])
        for need in self.needs:
            pairs, rows_of, choices = [], [], []
            for r in rows:
                drawn = self._draw(need, r)
                if need == "alternate":
                    choices.append(drawn)
                    drawn = self.alternates[r["index"]][drawn]
                answers = drawn if isinstance(drawn, list) else [drawn]
                pairs += enc.encode_many([(r["question"], a) for a in answers])
                rows_of += [r["index"]] * len(answers)
                if need == "idk":  # which refusal: a cached reference looks its log-prob up
                    choices.append(REFUSALS.index(drawn))
            sub = pad_right(pairs, enc.pad_id)
            sub["index"] = torch.tensor(rows_of)
            if choices:  # "choice": a refusal's index; "alt_choice": an alternate's, per row
                sub["choice" if need == "idk" else "alt_choice"] = torch.tensor(choices)
            batch[EXTRAS[need]] = sub
        return batch


class TextCollator:
    """Pads pre-tokenised text chunks; every token but a leading BOS is scored.

    With ``general`` chunks, each batch also carries ``template``: one general chunk drawn
    at random per row (FLAT's "good" text on raw data, see ``data.general``), from a
    generator seeded like the question/answer extras."""

    def __init__(self, encoder: Encoder, general: list[dict] | None = None, seed: int = 0):
        self.encoder, self.general = encoder, general
        self.rng = random.Random(seed)

    def __call__(self, rows: list[dict]) -> dict:
        batch = pad_right([(r["input_ids"], r["labels"]) for r in rows], self.encoder.pad_id)
        batch["index"] = torch.tensor([r["index"] for r in rows])
        if self.general:
            drawn = [self.general[self.rng.randrange(len(self.general))] for _ in rows]
            sub = pad_right([(g["input_ids"], g["labels"]) for g in drawn], self.encoder.pad_id)
            sub["index"] = torch.tensor([r["index"] for r in rows])
            batch[EXTRAS["template"]] = sub
        return batch


def chunk_texts(encoder: Encoder, texts: list[str], max_len: int) -> list[dict]:
    """Each text as BOS + tokens + EOS, cut into chunks of at most ``max_len`` tokens.

    Documents are chunked one by one (a chunk never spans two documents), so every chunk
    is a contiguous piece of one text; only the first chunk of a text starts with BOS.
    """
    if max_len < 2:
        raise ValueError(f"chunk length must be >= 2 tokens, got {max_len}")
    tok = encoder.tokenizer
    chunks = []
    for text in texts:
        ids = tok(text, add_special_tokens=True)["input_ids"] + [encoder.eos_id]
        for start in range(0, len(ids), max_len):
            piece = ids[start: start + max_len]
            if len(piece) < 2:  # nothing to predict
                continue
            labels = list(piece)
            if start == 0 and piece[0] == tok.bos_token_id:
                labels[0] = IGNORE
            chunks.append({"input_ids": piece, "labels": labels})
    return chunks


class UnlearnDataModule(L.LightningDataModule):
    """Forget and retain data of one benchmark split, shuffled by ``seed``, in the benchmark's shape."""

    def __init__(self, benchmark, split: str, encoder: Encoder | None = None, *, batch_size: int = 8,
                 seed: int = 42, needs=(), k_random: int = 5, template: str = "refusal",
                 chunk_len: int | None = None, num_workers: int = 0, alternate_file: str | None = None):
        super().__init__()
        check_needs(needs)
        self.benchmark, self.split, self.encoder = benchmark, split, encoder
        self.batch_size, self.seed, self.needs = batch_size, seed, tuple(needs)
        self.k_random, self.template, self.chunk_len = k_random, template, chunk_len
        self.num_workers, self.alternate_file = num_workers, alternate_file
        self.alternates = None
        self.shape = benchmark.shape
        extras = [n for n in self.needs if n in EXTRAS and n not in benchmark.text_extras]
        if extras and self.shape != "qa":
            raise ValueError(f"benchmark {benchmark.name!r} trains on raw text; the extra answers "
                             f"{extras} need question/answer data")
        self.forget_set = self.retain_set = None

    @property
    def path(self) -> str:
        return self.benchmark.path

    def _rows(self, rows: list[dict]) -> Rows:
        if self.shape == "text":
            length = self.chunk_len or self.encoder.max_len
            return Rows(chunk_texts(self.encoder, [r["text"] for r in rows], length))
        return Rows(rows)

    def setup(self, stage: str | None = None) -> None:
        if self.forget_set is not None:
            return
        if self.encoder is None:
            raise ValueError("the data module needs an encoder (the model's tokenizer and template)")
        self.forget_set = self._rows(self.benchmark.forget_rows(self.split))
        self.retain_set = self._rows(self.benchmark.retain_rows(self.split))
        self.normal = self.benchmark.normal_answers(self.split) if self.shape == "qa" else []
        self.general_set = None
        if self.shape == "text" and "template" in self.needs:
            self.general_set = self._rows(self.benchmark.general_rows(self.split))
            if len(self.general_set) == 0:
                raise ValueError(f"benchmark {self.benchmark.name!r}: no general text for FLAT's template")
        if "alternate" in self.needs:
            self.alternates = self.benchmark.alternate_answers(self.split, self.alternate_file)
        if len(self.forget_set) == 0:
            raise ValueError(f"benchmark {self.benchmark.name!r} split {self.split!r}: no forget data")

    def _rank(self) -> int:
        trainer = getattr(self, "trainer", None)
        return int(trainer.global_rank) if trainer is not None else 0

    def collator(self, extras: bool = True, seed: int | None = None):
        """The collator of this shape; ``extras=False`` gives the bare forget/retain batches."""
        if self.shape == "text":
            general = self.general_set.rows if extras and self.general_set is not None else None
            return TextCollator(self.encoder, general, seed=self.seed if seed is None else seed)
        return QACollator(self.encoder, self.needs if extras else (), normal_answers=getattr(self, "normal", []),
                          k_random=self.k_random, template=self.template,
                          seed=self.seed if seed is None else seed, alternates=self.alternates)

    def train_dataloader(self) -> DataLoader:
        g = torch.Generator().manual_seed(self.seed)
        # Extras are drawn per rank: ranks collate different rows, and draw independently.
        collate = self.collator(seed=self.seed + 104_729 * self._rank())
        return DataLoader(self.forget_set, batch_size=self.batch_size, shuffle=True, generator=g,
                          collate_fn=collate, num_workers=self.num_workers)

    def retain_loader(self, seed: int) -> DataLoader:
        """A shuffled retain loader; the method cycles it with a per-rank seed."""
        g = torch.Generator().manual_seed(seed)
        return DataLoader(self.retain_set, batch_size=self.batch_size, shuffle=True, generator=g,
                          collate_fn=self.collator(extras=False), num_workers=self.num_workers)

    def plain_loader(self, which: str, batch_size: int | None = None) -> DataLoader:
        """The forget or retain set in order, without extras (gradient scoring, WAGLE masks)."""
        data = {"forget": self.forget_set, "retain": self.retain_set}[which]
        return DataLoader(data, batch_size=batch_size or self.batch_size,
                          collate_fn=self.collator(extras=False))
