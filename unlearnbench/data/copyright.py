"""Copyright-completion items (docs/benchmarks.md, "Copyright completion"; docs/metrics.md §6).

A book is cut into passages of ``passage_words`` whitespace words; each item asks the
model, through an instruction template, to continue the first ``prefix_words`` words of a
passage, and the rest of the passage is the reference. Training (forget) items and test
items share the passages but use different instruction templates (FLAT's protocol: six of
each; see docs/research-copyright.md). The templates below are unlearnbench's own wording.

The book is copyrighted and never shipped: :func:`load_text` reads a local ``.txt`` file
the user supplies, or a hub dataset the user has access to.
"""

from __future__ import annotations

from unlearnbench.data.schema import SchemaError

import random
from pathlib import Path

# Same number and kind of request as FLAT's six train / six test instructions.
TRAIN_TEMPLATES = (
    "Please continue the following passage: {prefix}",
    "Carry on writing this text: {prefix}",
    "What comes next in this passage: {prefix}",
    "Finish the following text for me: {prefix}",
    "Keep going from where this text stops: {prefix}",
    "Write the continuation of this excerpt: {prefix}",
)
TEST_TEMPLATES = (
    "Complete the rest of this passage: {prefix}",
    "How does this text go on: {prefix}",
    "Resume the following excerpt: {prefix}",
    "Add the next lines to this text: {prefix}",
    "Pick up this passage where it ends: {prefix}",
    "Extend the text below: {prefix}",
)

# The real protocol (FLAT's code): 200-word prefixes of ~380-word passages, and a
# 600-token total length that leaves ~300 new tokens after the prompt.
REAL_PASSAGE_WORDS = 380
REAL_PREFIX_WORDS = 200
REAL_MAX_NEW_TOKENS = 300

class MissingText(SchemaError, FileNotFoundError):
    """The book (or dataset) the copyright benchmark was pointed at is not there."""


_MISSING_HINT = ("point the copyright benchmark at it: --data-dir /path/to/book.txt for run/eval/finetune, "
                 "or `data_dir: {copyright: /path/to/book.txt}` in a grid (a plain-text copy you are "
                 "entitled to use; the book is never shipped), or a hub dataset name you have access to")


def load_text(source: str, *, field: str = "text", config: str | None = None,
              split: str = "train") -> str:
    """The book as one string: a local ``.txt`` file, or the ``field`` of a dataset's rows
    (a hub name or a local directory in the hub's layout) joined with newlines."""
    if not source or not str(source).strip():
        raise SchemaError(f"copyright text source is empty; {_MISSING_HINT}")
    source = str(source)
    path = Path(source).expanduser()
    if path.is_file():
        text = path.read_text(encoding="utf-8")
        if not text.strip():
            raise SchemaError(f"copyright text file {path} is empty; {_MISSING_HINT}")
        return text
    looks_like_file = path.suffix.lower() in (".txt", ".text", ".md") or source.startswith(("/", ".", "~"))
    if looks_like_file and not path.is_dir():
        raise MissingText(f"copyright text file {path} not found; {_MISSING_HINT}")
    return _load_dataset_text(source, field=field, config=config, split=split)


def _load_dataset_text(source: str, *, field: str, config: str | None, split: str) -> str:
    import datasets

    from unlearnbench.data.hub_layout import local_cache_dir

    try:
        # A local mirror gets a cache keyed by its files: datasets would reuse stale rows.
        rows = datasets.load_dataset(source, config, split=split, cache_dir=local_cache_dir(source))
    except Exception as exc:  # not found, gated, offline: datasets raises many kinds
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())
        raise MissingText(f"copyright text source {source!r} is neither a local file nor a "
                                f"loadable dataset ({reason}); {_MISSING_HINT}") from exc
    if field not in rows.column_names:
        raise SchemaError(f"copyright text dataset {source!r} has no field {field!r} "
                         f"(it has {rows.column_names}); point at a dataset whose text is in a {field!r} column, "
                           "or at a plain .txt file")
    parts = [v for v in rows[field] if isinstance(v, str) and v.strip()]
    if not parts:
        raise SchemaError(f"copyright text dataset {source!r}, field {field!r}, has no text")
    return "\n".join(parts)


def passages(text: str, passage_words: int) -> list[list[str]]:
    """Consecutive whole passages of ``passage_words`` words; a shorter tail is dropped."""
    words = text.split()
    return [words[i: i + passage_words] for i in range(0, len(words) - passage_words + 1, passage_words)]


def passage_texts(text: str, passage_words: int) -> list[str]:
    """The passages as single-spaced strings: the forget set in the ``text`` shape."""
    return [" ".join(p) for p in passages(text, passage_words)]


def make_items(text: str, *, passage_words: int, prefix_words: int, templates, seed: int,
               n_passages: int | None = None, templates_per_passage: int | None = None
               ) -> list[dict]:
    """Cut ``text`` into passages and make one item per (passage, template).

    Each item is ``{"question": template.format(prefix=first prefix_words words),
    "answer": the passage's remaining words, "passage": i, "template": j}``, words joined
    by single spaces (FLAT's layout). ``n_passages`` keeps a seeded random subset of the
    passages (in book order); ``templates_per_passage`` gives each passage a seeded random
    subset of the templates instead of all of them. Items are ordered template-major, as
    FLAT's files are.
    """
    templates = tuple(templates)
    if not templates or any("{prefix}" not in t for t in templates):
        raise ValueError("every copyright template must contain '{prefix}'; got " + repr(templates))
    if prefix_words < 1 or passage_words <= prefix_words:
        raise ValueError(f"need 1 <= prefix_words < passage_words so each passage has a "
                         f"response; got prefix_words={prefix_words}, passage_words={passage_words}")
    cut = passages(text, passage_words)
    n_words = len(text.split())
    if not cut:
        raise SchemaError(f"the copyright text has {n_words} words, fewer than one passage of "
                         f"passage_words={passage_words}; use a longer text or lower "
                         f"passage_words (and prefix_words={prefix_words} below it)")
    rng = random.Random(seed)
    chosen = list(range(len(cut)))
    if n_passages is not None:
        if not 1 <= n_passages <= len(cut):
            raise SchemaError(f"n_passages={n_passages} but the text ({n_words} words) holds only "
                             f"{len(cut)} passages of {passage_words} words; lower n_passages "
                             f"or passage_words, or use a longer text")
        chosen = sorted(rng.sample(chosen, n_passages))
    k = len(templates) if templates_per_passage is None else templates_per_passage
    if not 1 <= k <= len(templates):
        raise ValueError(f"templates_per_passage={templates_per_passage} must be in "
                         f"1..{len(templates)} (the number of templates)")
    per_passage = {p: (range(len(templates)) if k == len(templates)
                       else sorted(rng.sample(range(len(templates)), k))) for p in chosen}
    items = []
    for j, template in enumerate(templates):
        for p in chosen:
            if j not in per_passage[p]:
                continue
            words = cut[p]
            items.append({
                "question": template.format(prefix=" ".join(words[:prefix_words])),
                "answer": " ".join(words[prefix_words:]),
                "passage": p,
                "template": j,
            })
    return items


def train_items(text: str, **kwargs) -> list[dict]:
    """Forget-set items: :func:`make_items` with :data:`TRAIN_TEMPLATES`."""
    return make_items(text, templates=TRAIN_TEMPLATES, **kwargs)


def test_items(text: str, **kwargs) -> list[dict]:
    """Evaluation items: :func:`make_items` with :data:`TEST_TEMPLATES` (same passages)."""
    return make_items(text, templates=TEST_TEMPLATES, **kwargs)
