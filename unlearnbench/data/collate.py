"""Tokenisation and padding of (question, answer) pairs, per docs/metrics.md's notation.

Prompt tokens (BOS included) are labelled -100 and never scored; EOS is appended after the
answer and scored; the attention mask comes from sequence lengths, never from
``token == pad_id`` (a pad token equal to an end-of-turn token would otherwise hide real
tokens).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from unlearnbench.models.templates import answer_separator, format_prompt, template_adds_bos

IGNORE = -100


@dataclass(frozen=True)
class Encoder:
    """Turns question/answer text into token ids and labels for one model."""

    tokenizer: object
    template: str
    max_len: int = 512
    # Encodings by text, kept when given a dict: an evaluator run again and again on the same
    # items (evaluation during unlearning, runner.periodic_eval) tokenises each text once.
    memo: dict | None = field(default=None, compare=False, repr=False)

    @property
    def eos_id(self) -> int:
        return self.tokenizer.eos_token_id

    @property
    def pad_id(self) -> int:
        tok = self.tokenizer
        return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    def prompt_ids(self, question: str) -> list[int]:
        return self.prompt_ids_many([question])[0]

    def prompt_ids_many(self, questions: list[str]) -> list[list[int]]:
        """``prompt_ids`` of every question, the same ids, from one batched tokenizer call (one
        call per question costs a tiny model's evaluation more than some of its forwards)."""
        known = self.memo if self.memo is not None else {}
        new = [q for q in dict.fromkeys(questions) if ("prompt", q) not in known]
        special = not template_adds_bos(self.template)
        texts = [format_prompt(self.template, q, self.tokenizer) for q in new]
        got = dict(zip(new, self.tokenizer(texts, add_special_tokens=special)["input_ids"] if new else []))
        if self.memo is not None:
            self.memo.update({("prompt", q): tuple(ids) for q, ids in got.items()})
        return [list(got[q]) if q in got else list(known[("prompt", q)]) for q in questions]

    def encode(self, question: str, answer: str) -> tuple[list[int], list[int]]:
        """(input_ids, labels): TOFU's convention of tokenising prompt+answer as one text
        and masking as many leading tokens as the prompt alone has."""
        prompt = format_prompt(self.template, question, self.tokenizer)
        special = not template_adds_bos(self.template)
        p_ids = self.tokenizer(prompt, add_special_tokens=special)["input_ids"]
        full = self.tokenizer(prompt + answer_separator(self.template) + answer,
                              add_special_tokens=special)["input_ids"]
        return self._join(p_ids, full, answer)

    def _join(self, p_ids: list[int], full: list[int], answer: str) -> tuple[list[int], list[int]]:
        """(input_ids, labels) from the tokenised prompt and prompt+answer texts."""
        if full[: len(p_ids)] != p_ids:
            # A merge across the prompt/answer boundary: keep the prompt exact instead.
            full = p_ids + self.tokenizer(answer, add_special_tokens=False)["input_ids"]
        ids = full + [self.eos_id]
        labels = [IGNORE] * len(p_ids) + full[len(p_ids):] + [self.eos_id]
        if len(ids) > self.max_len:
            ids, labels = ids[: self.max_len], labels[: self.max_len]
        return ids, labels

    def encode_many(self, pairs: list[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
        """``encode`` of every (question, answer) pair, the same ids: each distinct prompt is
        tokenised once and all texts in one batched tokenizer call. An evaluation scores about
        seven answers per question, and one call per text costs as much as a tiny model's
        forward passes."""
        if not pairs:
            return []
        if self.memo is not None:
            new = list(dict.fromkeys(p for p in pairs if ("pair", p) not in self.memo))
            if new:
                for p, enc in zip(new, Encoder(self.tokenizer, self.template, self.max_len).encode_many(new)):
                    self.memo[("pair", p)] = (tuple(enc[0]), tuple(enc[1]))
            return [tuple(list(x) for x in self.memo[("pair", p)]) for p in pairs]
        special = not template_adds_bos(self.template)
        prompts = {q: format_prompt(self.template, q, self.tokenizer) for q, _ in pairs}
        prompt_ids = dict(zip(prompts, self.tokenizer(list(prompts.values()), add_special_tokens=special)["input_ids"]))
        sep = answer_separator(self.template)
        fulls = self.tokenizer([prompts[q] + sep + a for q, a in pairs], add_special_tokens=special)["input_ids"]
        return [self._join(prompt_ids[q], full, a) for (q, a), full in zip(pairs, fulls)]

    def encode_text(self, text: str) -> tuple[list[int], list[int]]:
        """Plain text (pre-training, raw corpora): every token after BOS is scored."""
        ids = self.tokenizer(text, add_special_tokens=True)["input_ids"] + [self.eos_id]
        ids = ids[: self.max_len]
        bos = 1 if ids and ids[0] == self.tokenizer.bos_token_id else 0
        return ids, [IGNORE] * bos + ids[bos:]


def pad_right(seqs: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded batch for teacher forcing: input_ids, labels, attention_mask."""
    width = max(len(ids) for ids, _ in seqs)
    n = len(seqs)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    labels = torch.full((n, width), IGNORE, dtype=torch.long)
    attention = torch.zeros((n, width), dtype=torch.long)
    for i, (ids, lab) in enumerate(seqs):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        labels[i, : len(lab)] = torch.tensor(lab)
        attention[i, : len(ids)] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention}


def pad_left(prompts: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Left-padded prompts for batched generation."""
    width = max(len(p) for p in prompts)
    n = len(prompts)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    attention = torch.zeros((n, width), dtype=torch.long)
    for i, p in enumerate(prompts):
        input_ids[i, width - len(p):] = torch.tensor(p)
        attention[i, width - len(p):] = 1
    return {"input_ids": input_ids, "attention_mask": attention}


def encoder_for(bench, spec, tokenizer) -> Encoder:
    """The encoder a benchmark's data is written with for this model (the benchmark's template
    for it, ``bench.template_for(spec)``: its own, or the model's)."""
    return Encoder(tokenizer, bench.template_for(spec), max_len=512)
