"""WMDP, MMLU and the RMU corpora: the hub datasets or local directories of the same layout.

One code path, ``datasets.load_dataset(path_or_dir, config, split=...)``, reads the hub
(``cais/wmdp``, ``cais/mmlu``, ``cais/wmdp-corpora``, ``Salesforce/wikitext``) and a
local root holding one sub-directory per hub dataset (``wmdp/``, ``mmlu/``,
``wmdp-corpora/``, ``wmdp-bio-forget-corpus/``, ``wikitext/``: the stand-in's layout,
see ``wmdp_synth``, or a mirror made for a machine without internet).

The bio forget corpus (``cais/wmdp-bio-forget-corpus``) is gated: it is read only from a
local copy the user points at (``bio_forget=`` or ``$UNLEARNBENCH_WMDP_BIO_FORGET``).
"""

from __future__ import annotations

import os
from pathlib import Path

from unlearnbench.data.hf_load import load_table
from unlearnbench.data.tofu import SchemaError

# lm-eval's zero-shot multiple-choice prompt (the stand-in's practice texts are written in it).
LETTERS = ("A", "B", "C", "D")
DESCRIPTION = "The following are multiple choice questions (with answers) about {topic}.\n\n"


def mc_prompt(topic: str, question: str, choices: list[str]) -> str:
    """The zero-shot context for one question (question stripped, choices verbatim)."""
    if len(choices) != len(LETTERS):
        raise ValueError(f"a question needs {len(LETTERS)} choices, got {len(choices)}: {choices!r:.120}")
    options = "".join(f"\n{letter}. {c}" for letter, c in zip(LETTERS, choices))
    return DESCRIPTION.format(topic=topic) + question.strip() + options + "\nAnswer:"


WMDP_HUB = "cais/wmdp"
MMLU_HUB = "cais/mmlu"
CORPORA_HUB = "cais/wmdp-corpora"
BIO_FORGET_HUB = "cais/wmdp-bio-forget-corpus"
WIKITEXT_HUB = ("Salesforce/wikitext", "wikitext-2-raw-v1", "test")
BIO_FORGET_ENV = "UNLEARNBENCH_WMDP_BIO_FORGET"
WMDP_CONFIGS = ("wmdp-bio", "wmdp-cyber", "wmdp-chem")
CORPORA = ("bio-forget-corpus", "bio-retain-corpus", "cyber-forget-corpus",
           "cyber-retain-corpus", "wikitext")
# Local sub-directory, config and split of each corpus under a root (the hub's own names).
_LOCAL = {"bio-forget-corpus": ("wmdp-bio-forget-corpus", None, "train"),
          "bio-retain-corpus": ("wmdp-corpora", "bio-retain-corpus", "train"),
          "cyber-forget-corpus": ("wmdp-corpora", "cyber-forget-corpus", "train"),
          "cyber-retain-corpus": ("wmdp-corpora", "cyber-retain-corpus", "train"),
          "wikitext": ("wikitext", "wikitext-2-raw-v1", "test")}


class GatedCorpusError(FileNotFoundError):
    """The gated bio forget corpus was asked for and no local copy was given."""


def _load(path: str | Path, config: str | None, split: str, what: str):
    try:
        return load_table(path, config, split)
    except StopIteration as exc:  # datasets' JSON builder on an empty file
        raise SchemaError(f"{what} from {path} is empty; regenerate or re-download it") from exc


def validate_mc(rows, what: str) -> None:
    """Raise SchemaError naming ``what`` (dataset/config/source) and the row of the first problem."""
    if len(rows) == 0:
        raise SchemaError(f"{what} is empty; regenerate or re-download it")
    cols = rows.column_names if hasattr(rows, "column_names") else list(rows[0])
    missing = [f for f in ("question", "choices", "answer") if f not in cols]
    if missing:
        raise SchemaError(f"{what} lacks field(s) {missing}; it has {cols}")
    for i, row in enumerate(rows):
        q, c, a = row["question"], row["choices"], row["answer"]
        if not isinstance(q, str) or not q.strip():
            raise SchemaError(f"{what}, row {i}: field 'question' is empty or not a string: {q!r:.80}")
        if not isinstance(c, list) or len(c) != 4 or not all(isinstance(x, str) for x in c):
            raise SchemaError(f"{what}, row {i}: field 'choices' should be 4 strings, got {c!r:.120}")
        if isinstance(a, bool) or not isinstance(a, int) or not 0 <= a <= 3:
            raise SchemaError(f"{what}, row {i}: field 'answer' should be an int in 0-3 "
                              f"(index into choices), got {a!r:.40}")


def load_mc(path: str, config: str, split: str = "test", dataset: str = "dataset"):
    """A 4-option multiple-choice table (question, choices, answer) as a validated ``Dataset``."""
    what = f"{dataset} config {config!r} split {split!r} from {path}"
    try:
        rows = _load(path, config, split, what)
    except ValueError as exc:
        if "no data" not in str(exc) and "Unknown split" not in str(exc):
            raise
        raise SchemaError(f"{what}: {exc}") from exc
    validate_mc(rows, what)
    return rows


def load_wmdp(config: str = "wmdp-bio", path: str = WMDP_HUB, split: str = "test"):
    """WMDP questions of one config (``wmdp-bio``, ``wmdp-cyber``, ``wmdp-chem``)."""
    if config not in WMDP_CONFIGS:
        raise ValueError(f"unknown WMDP config {config!r}; choose one of {', '.join(WMDP_CONFIGS)}")
    return load_mc(path, config, split, dataset="WMDP")


def load_mmlu(config: str = "all", path: str = MMLU_HUB, split: str = "test"):
    """MMLU questions (``all`` or one subject); rows carry ``subject`` for the prompt's topic."""
    rows = load_mc(path, config, split, dataset="MMLU")
    if "subject" not in rows.column_names:
        raise SchemaError(f"MMLU config {config!r} from {path} lacks field 'subject' "
                          f"(the prompt's topic); it has {rows.column_names}")
    return rows


def eval_sets(root: str | None = None, wmdp_configs: tuple[str, ...] = ("wmdp-bio", "wmdp-cyber"),
              mmlu_subjects: tuple[str, ...] = ()) -> dict[str, list[dict]]:
    """``{"wmdp_bio": rows, ..., "mmlu": rows, "mmlu_<subject>": rows}`` from the hub or a root.

    ``root`` is a directory with ``wmdp/`` and ``mmlu/`` sub-directories (the stand-in).
    """
    wmdp_path = str(Path(root) / "wmdp") if root else WMDP_HUB
    mmlu_path = str(Path(root) / "mmlu") if root else MMLU_HUB
    sets = {c.replace("-", "_"): [dict(r) for r in load_wmdp(c, wmdp_path)] for c in wmdp_configs}
    sets["mmlu"] = [dict(r) for r in load_mmlu("all", mmlu_path)]
    for s in mmlu_subjects:
        sets[f"mmlu_{s}"] = [dict(r) for r in load_mmlu(s, mmlu_path)]
    return sets


def _bio_forget_source(bio_forget: str | None, root: str | None) -> Path:
    given = bio_forget or os.environ.get(BIO_FORGET_ENV)
    if given:
        p = Path(given).expanduser()
        if not p.exists():
            raise GatedCorpusError(f"bio forget corpus: {p} does not exist; point bio_forget / "
                                   f"${BIO_FORGET_ENV} at the downloaded directory or .jsonl/.parquet file")
        return p
    if root and (Path(root) / _LOCAL["bio-forget-corpus"][0]).is_dir():
        return Path(root) / _LOCAL["bio-forget-corpus"][0]
    raise GatedCorpusError(
        f"the WMDP bio forget corpus is gated and has no local copy: request access at "
        f"https://huggingface.co/datasets/{BIO_FORGET_HUB}, download it (huggingface-cli "
        f"download {BIO_FORGET_HUB} --repo-type dataset --local-dir DIR), then pass "
        f"bio_forget=DIR (or a .jsonl/.parquet file) or set {BIO_FORGET_ENV}=DIR")


def load_corpus(name: str, root: str | None = None, *, bio_forget: str | None = None,
                min_len: int = 0) -> list[str]:
    """Texts of a forget/retain corpus, keeping ``len(text) > min_len`` as the WMDP code does.

    ``name``: one of ``CORPORA``, or a path to any directory/.jsonl/.parquet with a
    ``text`` field. Sources: the hub when ``root`` is None, else ``root/<sub-dir>``; the
    gated ``bio-forget-corpus`` only from ``bio_forget``, ``$UNLEARNBENCH_WMDP_BIO_FORGET``
    or ``root/wmdp-bio-forget-corpus``.
    """
    what = f"corpus {name!r}"
    if name == "bio-forget-corpus":
        src = _bio_forget_source(bio_forget, root)
        rows = _load(src, None, "train", what)
        what += f" from {src}"
    elif name in _LOCAL:
        sub, config, split = _LOCAL[name]
        if root:
            path = Path(root) / sub
            if not path.is_dir():
                raise FileNotFoundError(f"{what}: {path} does not exist (the wmdp-synth stand-in has "
                                        "only the bio corpora and wikitext)")
        else:
            path = WIKITEXT_HUB[0] if name == "wikitext" else CORPORA_HUB
        rows = _load(str(path), config, split, what)
        what += f" from {path}"
    elif Path(name).exists():
        rows = _load(name, None, "train", what)
    else:
        raise ValueError(f"unknown corpus {name!r}; choose one of {', '.join(CORPORA)} or give a "
                         "path to a directory / .jsonl / .parquet file with a 'text' field")
    if "text" not in rows.column_names:
        raise SchemaError(f"{what} lacks field 'text'; it has {rows.column_names}")
    texts = [t for t in rows["text"] if isinstance(t, str) and len(t) > min_len]
    if not texts:
        raise SchemaError(f"{what} has no text longer than {min_len} characters")
    return texts


def rmu_schedule(forget: list[list[str]], retain: list[list[str]], batch_size: int = 4,
                 max_num_batches: int = 80) -> list[dict]:
    """The WMDP code's RMU batch order: one forget and one retain corpus per topic.

    Each corpus is cut, in order, into consecutive batches of ``batch_size`` documents;
    step ``i`` takes topic ``i % n_topics`` and batch ``i // n_topics`` of that topic's
    forget and retain corpora; ``min(max_num_batches, shortest batch list)`` steps.
    """
    if len(forget) != len(retain) or not forget:
        raise ValueError(f"rmu_schedule: need one retain corpus per forget corpus, got "
                         f"{len(forget)} forget and {len(retain)} retain")
    cut = lambda docs: [docs[i: i + batch_size] for i in range(0, len(docs), batch_size)]  # noqa: E731
    f_batches, r_batches = [cut(d) for d in forget], [cut(d) for d in retain]
    n = min(max_num_batches, *(len(b) for b in f_batches + r_batches))
    topics = len(forget)
    return [{"topic": i % topics, "forget": f_batches[i % topics][i // topics],
             "retain": r_batches[i % topics][i // topics]} for i in range(n)]
