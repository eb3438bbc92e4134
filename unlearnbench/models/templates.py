"""Prompt templates: how a question (and answer) becomes the text a model scores.

TOFU conventions (docs/benchmarks.md): Llama-2-chat ``"[INST] " + q + " [/INST]" + a`` with no
space before the answer; Phi-style ``"Question: " + q + "\\n" + "Answer: " + a``;
Llama-3-style models use the tokenizer's chat template with a system prompt; ``chat`` is the
tokenizer's own chat template on the user turn alone (Qwen2.5, whose template writes its default
system prompt, and Gemma 3, which has no system role); ``qwen3-chat`` is the same with Qwen3's
thinking turned off (``enable_thinking=False``: an empty ``<think></think>`` block, Qwen3's
non-thinking mode, so an answer starts right after the prompt as in every other template).
"""

from __future__ import annotations

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
