"""Prompt templates, tokenisation and padding of (question, answer) pairs, per docs/metrics.md's
notation.

A prompt template says how a question (and answer) becomes the text a model scores (below,
``format_prompt``). Prompt tokens (BOS included) are labelled -100 and never scored; EOS is
appended after the answer and scored; the attention mask comes from sequence lengths, never
from ``token == pad_id`` (a pad token equal to an end-of-turn token would otherwise hide real
tokens).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

IGNORE = -100


# -- prompt templates --------------------------------------------------------------------------
# TOFU conventions (docs/benchmarks.md): Llama-2-chat ``"[INST] " + q + " [/INST]" + a`` with no
# space before the answer; Phi-style ``"Question: " + q + "\n" + "Answer: " + a``;
# Llama-3-style models use the tokenizer's chat template with a system prompt; ``chat`` is the
# tokenizer's own chat template on the user turn alone (Qwen2.5, whose template writes its default
# system prompt, and Gemma 3, which has no system role); ``qwen3-chat`` is the same with Qwen3's
# thinking turned off (``enable_thinking=False``: an empty ``<think></think>`` block, Qwen3's
# non-thinking mode, so an answer starts right after the prompt as in every other template).
LLAMA3_SYSTEM = "You are a helpful assistant."
TEMPLATES = ("llama2-chat", "phi", "llama3-chat", "zephyr-chat", "chat", "qwen3-chat", "tiny-qa", "llmu", "llmu-tiny",
             "raw")

# Templates rendered by the tokenizer's own chat template (which writes BOS where the model has one).
CHAT_TEMPLATES = ("llama3-chat", "zephyr-chat", "chat", "qwen3-chat")


def format_prompt(template: str, question: str, tokenizer=None) -> str:
    """The text that precedes the answer; the answer is appended verbatim after it."""
    if template == "llama2-chat":
        return f"[INST] {question} [/INST]"
    if template == "phi":
        return f"Question: {question}\nAnswer: "
    if template == "tiny-qa":
        # Phi's layout without the trailing space: byte-level BPE would make that space a
        # lone token never seen in running text ("Answer: Paris" is "Answer", ":", " Paris").
        return f"Question: {question}\nAnswer:"
    if template == "raw":
        # Benchmarks whose prompts are already written (copyright: instruction + a book's
        # first words): the text itself, continued after one space.
        return question
    if template == "llmu":
        # LLMU's harmful/hallucination format (docs/benchmarks.md): "### Question: ...\n ### Answer: ...".
        return f"### Question: {question}\n ### Answer: "
    if template == "llmu-tiny":
        return f"### Question: {question}\n ### Answer:"  # as tiny-qa: the space goes with the answer
    if template in CHAT_TEMPLATES:
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise ValueError(f"template {template!r} needs a tokenizer with a chat template")
        messages = [{"role": "user", "content": question}]
        if template == "llama3-chat":
            messages.insert(0, {"role": "system", "content": LLAMA3_SYSTEM})
        # The chat template writes BOS itself; callers tokenize without special tokens.
        extra = {"enable_thinking": False} if template == "qwen3-chat" else {}
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **extra)
    raise ValueError(f"unknown prompt template {template!r}; known: {', '.join(TEMPLATES)}")


def answer_separator(template: str) -> str:
    """Text between the prompt and the answer (the space the tiny-qa prompt leaves out)."""
    return " " if template in ("tiny-qa", "llmu-tiny", "raw") else ""


def template_adds_bos(template: str) -> bool:
    """Whether the formatted prompt already contains BOS (chat templates write it)."""
    return template in CHAT_TEMPLATES


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
