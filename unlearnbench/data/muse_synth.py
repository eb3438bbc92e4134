"""Generator of the MUSE stand-in ("muse-synth").

Short news articles about fictitious events (a town, a person, a date, a number, an
organisation), written in exactly the hub's layout of ``muse-bench/MUSE-News``: one parquet
file per split under ``<subset>/<split>-00000-of-00001.parquet`` and a README whose YAML
``configs:`` header declares them, so ``datasets.load_dataset(dir, subset, split=...)``
reads it like the hub. Everything is drawn from a seeded ``random.Random``: the same config
gives byte-identical files.

What it must reproduce is the phenomenon (docs/benchmarks.md): every fact is stated only in its
own article, so a model fine-tuned on the forget documents can continue them verbatim and
answer questions about them, and a model that never saw them cannot. Each article is prose
(facts stated key first, "the kite festival in Dornby was opened by ...") followed by a
readers' Q/A section in the KnowMem layout; each split also holds news-quiz documents that
repeat its Q/A pairs in random company. A 1M-parameter model neither carries a fact from
prose to a question nor recalls a line outside the context it learnt it in (measured:
docs/research-muse.md §6), so in the stand-in KnowMem asks for facts the documents state
in Q/A form. The base model learns the language and the few-shot Q/A layout from
*background* articles and Q/A blocks (``general_texts``), which share no entity with any
split.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from unlearnbench.data import muse_templates as T
from unlearnbench.data.general import GENERAL_FILE  # base-model text; not a hub config
from unlearnbench.data.standin import Generator, write_dir, write_jsonl

# Stand-in evaluation lengths: the real benchmark keeps 128 / 32 (docs/metrics.md §4); the
# stand-in's articles are short, so the VerbMem ground truth is shorter too.
VERBMEM_TOKENS = 64
KNOWMEM_TOKENS = 32

# The tiny-family recipe the stand-in was tuned with (``models.specs.TinyConfig`` fields;
# docs/research-muse.md's prototype): base = general_texts for 20 epochs, target and retrain
# = the base fine-tuned on tiny_texts(role) for 24 epochs, no replay, tokenizer =
# ``tiny_tokenizer``. max_len 384 holds the longest document (about 290 tokens) unsplit.
TINY_RECIPE = dict(vocab_size=1024, hidden_size=128, intermediate_size=384, num_layers=4,
                   num_heads=4, max_len=384, pretrain_epochs=20, finetune_epochs=24, replay=False,
                   pretrain_lr=5e-3, finetune_lr=3e-3, batch_size=4, weight_decay=0.01)


class _Names:
    """Unique towns, people and organisations for the whole dataset (no fact is shared)."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.taken: set[str] = set()
        self.first = self._many(lambda: T.NAME_LETTERS.word(rng, 2).capitalize(), 90)
        self.last = self._many(lambda: T.NAME_LETTERS.word(rng, rng.choice([2, 3])).capitalize(), 90)

    def _many(self, make, n: int) -> list[str]:
        return [self._one(make) for _ in range(n)]

    def _one(self, make) -> str:
        while True:
            w = make()
            if w not in self.taken:
                self.taken.add(w)
                return w

    def town(self) -> str:
        return self._one(lambda: T.NAME_LETTERS.word(self.rng, 1).capitalize() + self.rng.choice(T.TOWN_END))

    def person(self) -> str:
        return self._one(lambda: f"{self.rng.choice(self.first)} {self.rng.choice(self.last)}")

    def org(self) -> str:
        return self._one(lambda: f"the {T.NAME_LETTERS.word(self.rng, 2).capitalize()} {self.rng.choice(T.ORG_KIND)}")


@dataclass(frozen=True)
class MuseSynthConfig:
    """Sizes of the stand-in; the defaults fit the whole tiny protocol in the CPU budget."""

    seed: int = 0
    fold_size: int = 12  # articles per forget fold; raw/forget = fold 1, 4 folds
    n_retain1: int = 16
    n_retain2: int = 20
    n_holdout: int = 24
    n_background: int = 32  # base-model articles (general_texts), not in any split
    n_knowmem: int = 44  # per knowmem QA split
    n_icl: int = 3  # the real benchmark has 10; a 1M-parameter model loses the thread at 10
    n_privleak: int = 24  # per privleak split (two chunks per article)
    qa_per_article: int = 4  # facts (of 5) in each article's readers' Q/A section
    verbmem_prompt_sentences: int = 2  # headline + lede; the rest of the article is gt
    qa_repeats: int = 2  # times each background Q/A pair recurs in general_texts blocks
    quiz_repeats: int = 1  # times each fact recurs in its split's news-quiz documents
    quiz_size: int = 8  # most Q/A pairs in a quiz or background Q/A block


def _cap(s: str) -> str:
    return s[0].upper() + s[1:]


def _article(rng: random.Random, names: _Names, kind: str, n_qa: int) -> dict:
    """One article: prose, then a readers' Q/A section in the KnowMem layout on ``n_qa`` of
    its five facts. Returns its text, its sentences and the (question, answer) pairs."""
    ev = T.EVENTS[kind]
    thing = rng.choice(ev["thing"])
    town, person, org = names.town(), names.person(), names.org()
    role = rng.choice(ev["role"])
    count = str(rng.randint(120, 9800))
    date = f"{rng.randint(1, 28)} {rng.choice(T.MONTHS)}"
    what = ev["what"].format(thing=thing)
    key = f"{what} in {town}"
    act, act_inf, act_by = ev["act"]
    fund, fund_inf, fund_by = ev["fund"]
    measure, measure_inf = ev["measure"]
    when, when_inf = ev["when"]
    unit = ev["unit"]
    head = rng.choice(ev["head"]).format(thing=thing, Thing=_cap(thing), town=town, count=count)
    lede = f"{_cap(key)} {when} on {date}, and {measure} {count} {unit}."
    body = [f"{_cap(key)} {act_by} {person}, the {role}.",
            f"Locals said {key} {fund_by} {org}.",
            f"{person}, the {role}, {act} {what} in {town}.",
            rng.choice(T.QUOTE).format(adj=rng.choice(T.ADJ), person=person, role=role),
            rng.choice(T.FILLER).format(adj=rng.choice(T.ADJ), period=rng.choice(T.PERIOD),
                                       area=rng.choice(T.AREA), place=rng.choice(T.PLACE))]
    rng.shuffle(body)
    facts = [
        (f"Who {act} {key}?", person),
        (f"Which organisation {fund} {key}?", org),
        (f"How many {unit} did {key} {measure_inf}?", count),
        (f"On what date did {key} {when_inf}?", date),
        (f"Where did {person} {act_inf} {what}?", town),
    ]
    qa = rng.sample(facts, n_qa)
    sentences = [head + ".", lede] + body
    text = " ".join(sentences) + "\n\n" + "\n\n".join(f"Question: {q}\nAnswer: {a}" for q, a in qa)
    return {"sentences": sentences, "qa": qa, "text": text}


def _articles(rng: random.Random, names: _Names, n: int, n_qa: int) -> list[dict]:
    kinds = list(T.EVENTS)
    return [_article(rng, names, kinds[rng.randrange(len(kinds))], n_qa) for _ in range(n)]


def _text(article: dict) -> str:
    return article["text"]


def _qa_rows(pairs) -> list[dict]:
    return [{"question": q, "answer": a} for q, a in pairs]


def _qa_blocks(rng: random.Random, pairs: list[tuple[str, str]], repeats: int,
               sizes: tuple[int, int]) -> list[str]:
    """Q/A pairs in the exact KnowMem few-shot layout, ``sizes[0]..sizes[1]`` pairs a block,
    in random company, so that an answer follows from its question whatever precedes it."""
    pool = [p for _ in range(repeats) for p in pairs]
    rng.shuffle(pool)
    blocks, i = [], 0
    while i < len(pool):
        n = rng.randint(*sizes)
        block = pool[i: i + n]
        i += n
        blocks.append("\n\n".join(f"Question: {q}\nAnswer: {a}" for q, a in block))
    return blocks


def generate(cfg: MuseSynthConfig = MuseSynthConfig()) -> dict:
    """Every split as ``{(subset, split): rows}``, plus ``"_general"``: the base model's texts."""
    if cfg.quiz_size < cfg.n_icl + 1:
        raise ValueError(f"quiz_size={cfg.quiz_size} must hold the KnowMem prompt's n_icl + 1 = "
                         f"{cfg.n_icl + 1} pairs")
    if not 1 <= cfg.qa_per_article <= 5:
        raise ValueError(f"qa_per_article must be in 1..5 (facts per article), got {cfg.qa_per_article}")
    if cfg.n_icl + cfg.n_knowmem > cfg.qa_per_article * min(cfg.fold_size, cfg.n_retain2):
        raise ValueError(f"n_icl + n_knowmem = {cfg.n_icl + cfg.n_knowmem} exceeds the "
                         f"{cfg.qa_per_article} questions per article of fold_size={cfg.fold_size} / "
                         f"n_retain2={cfg.n_retain2}; lower them or add articles")
    if cfg.n_privleak > 2 * min(cfg.fold_size, cfg.n_retain2, cfg.n_holdout):
        raise ValueError(f"n_privleak={cfg.n_privleak} exceeds the two chunks per article available "
                         f"(fold_size, n_retain2, n_holdout = {cfg.fold_size}, {cfg.n_retain2}, "
                         f"{cfg.n_holdout})")
    rng = random.Random(cfg.seed)
    names = _Names(rng)
    art = lambda n: _articles(rng, names, n, cfg.qa_per_article)  # noqa: E731
    folds = [art(cfg.fold_size) for _ in range(4)]
    retain1, retain2, holdout = art(cfg.n_retain1), art(cfg.n_retain2), art(cfg.n_holdout)
    background = art(cfg.n_background)
    forget = folds[0]
    # News-quiz documents: each split's Q/A pairs again, in random company. A 1M-parameter
    # model recalls a fact seen in one context only in that context; the KnowMem prompt
    # puts it after other questions. Own generator, so the articles do not depend on it.
    qrng = random.Random(f"{cfg.seed}-quiz")
    # Blocks about as long as an article: batches of similar lengths waste little padding.
    sizes = (cfg.n_icl + 1, cfg.quiz_size)
    groups = {**{f"fold{i + 1}": f for i, f in enumerate(folds)},
              "retain1": retain1, "retain2": retain2, "holdout": holdout}
    docs = {g: [{"text": _text(a)} for a in arts]
            + [{"text": t} for t in _qa_blocks(qrng, [p for a in arts for p in a["qa"]],
                                               cfg.quiz_repeats, sizes)]
            for g, arts in groups.items()}
    folded = lambda k: [d for i in range(1, k + 1) for d in docs[f"fold{i}"]]  # noqa: E731
    out: dict = {
        ("raw", "forget"): docs["fold1"], ("raw", "retain1"): docs["retain1"],
        ("raw", "retain2"): docs["retain2"], ("raw", "holdout"): docs["holdout"],
        ("train", "forget"): folded(4), ("train", "retain1"): docs["retain1"],
        ("train", "retain2"): docs["retain2"],
    }
    for k in range(1, 5):
        out[("scal", f"forget_{k}")] = folded(k)  # nested
        out[("sust", f"forget_{k}")] = docs[f"fold{k}"]  # disjoint
    k = cfg.verbmem_prompt_sentences
    out[("verbmem", "forget")] = []
    for a in forget:
        prompt = " ".join(a["sentences"][:k])
        out[("verbmem", "forget")].append({"prompt": prompt, "gt": a["text"][len(prompt) + 1:]})
    for name, arts in (("forget", forget), ("retain", retain2)):
        pairs = [p for a in arts for p in a["qa"]]
        rng.shuffle(pairs)
        out[("knowmem", f"{name}_qa_icl")] = _qa_rows(pairs[: cfg.n_icl])
        out[("knowmem", f"{name}_qa")] = _qa_rows(pairs[cfg.n_icl: cfg.n_icl + cfg.n_knowmem])
    # Like the hub's privleak texts (fixed-size chunks of documents), chunks of articles:
    # each article's prose and its Q/A section, so a small split still gives many texts.
    for name, arts in (("forget", forget), ("retain", retain2), ("holdout", holdout)):
        chunks = [c for a in arts for c in _text(a).split("\n\n", 1)]
        out[("privleak", name)] = [{"text": c} for c in chunks[: cfg.n_privleak]]
    general = [_text(a) for a in background]
    general += _qa_blocks(rng, [p for a in background for p in a["qa"]], cfg.qa_repeats, sizes)
    rng.shuffle(general)
    out["_general"] = general
    return out


def general_texts(cfg: MuseSynthConfig = MuseSynthConfig()) -> list[str]:
    """Texts the tiny base model is pre-trained on: background articles (no entity shared
    with any split) and Q/A blocks about them in the exact KnowMem few-shot format."""
    return generate(cfg)["_general"]


# Hub order of configs and splits (muse-bench/MUSE-News README).
LAYOUT = {
    "knowmem": ["retain_qa_icl", "retain_qa", "forget_qa", "forget_qa_icl"],
    "privleak": ["retain", "forget", "holdout"],
    "raw": ["retain2", "forget", "retain1", "holdout"],
    "scal": ["forget_3", "forget_2", "forget_4", "forget_1"],
    "sust": ["forget_3", "forget_2", "forget_4", "forget_1"],
    "train": ["retain2", "forget", "retain1"],
    "verbmem": ["forget"],
}


def _write_parquet(rows: list[dict], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = list(rows[0])
    table = pa.table({c: pa.array([r[c] for r in rows], type=pa.string()) for c in columns})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def write(cfg: MuseSynthConfig, directory: str | Path) -> Path:
    """Write every split in the hub's layout (parquet per split, README ``configs:``).

    The base model's texts go to ``extras/general.jsonl``, which no config declares.
    Published atomically (``standin.write_dir``); an existing complete directory is kept.
    """
    def fill(tmp: Path) -> None:
        data = generate(cfg)
        header = ["---", "license: cc-by-4.0", "pretty_name: MUSE stand-in (synthetic)", "configs:"]
        for subset, splits in LAYOUT.items():
            header += [f"- config_name: {subset}", "  data_files:"]
            for split in splits:
                _write_parquet(data[(subset, split)], tmp / subset / f"{split}-00000-of-00001.parquet")
                header += [f"  - split: {split}", f"    path: {subset}/{split}-*"]
        write_jsonl(tmp / GENERAL_FILE, [{"text": text} for text in data["_general"]])
        header += ["---", "", "Synthetic stand-in for muse-bench/MUSE-News generated by unlearnbench.",
                   f"Generator config: `{json.dumps(asdict(cfg), sort_keys=True)}`", ""]
        (tmp / "README.md").write_text("\n".join(header))

    return write_dir(directory, fill)


TINY_ROLES = ("tokenizer", "base", "target", "retrain")


def tiny_texts(directory: str | Path, role: str) -> list[str]:
    """Training texts of one member of the stand-in's tiny model family.

    ``base``: ``general_texts``. ``target``: what MUSE's target saw, the hub's ``train``
    config (every forget fold, retain1, retain2). ``retrain``: retain1 and retain2 only.
    ``tokenizer``: everything, including the evaluation splits' questions and answers.
    """
    from unlearnbench.data.muse import load_split

    if role not in TINY_ROLES:
        raise ValueError(f"unknown tiny role {role!r}; choose one of {', '.join(TINY_ROLES)}")
    directory = Path(directory)
    with open(directory / GENERAL_FILE) as f:
        general = [json.loads(line)["text"] for line in f]
    if role == "base":
        return general
    splits = ("forget", "retain1", "retain2") if role == "target" else ("retain1", "retain2")
    if role != "tokenizer":
        return [t for s in splits for t in load_split(directory, "train", s)["text"]]
    texts = list(general)
    for subset, names in LAYOUT.items():
        for split in names:
            for row in load_split(directory, subset, split):
                texts += [v for v in row.values() if isinstance(v, str)]
    return texts


def tiny_tokenizer(texts: list[str], vocab_size: int, out_dir: str | Path):
    """Byte-level BPE like ``models.tiny.train_tokenizer``, except that a space after a
    colon is a token of its own.

    MUSE's KnowMem prompt ends in "Answer: " (docs/metrics.md §4). A byte-level BPE glues a
    space to the word after it, so in training text the answer arrives as " Paris" while
    the prompt ends in a lone " " the model has never seen followed by a word. With the
    space split off, the prompt is exactly a prefix of its training lines.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex("(?<=:) "), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B",
                                                       special_tokens=[("<s>", bos)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", model_max_length=4096)
    fast.save_pretrained(str(out_dir))
    return fast


STAND_IN = Generator("muse-synth", version=1, config=MuseSynthConfig, write=write, prefix="muse-")
