"""Generator of the copyright-completion stand-in ("copyright-synth").

It writes, into one directory:

- ``book.txt``: long-form fiction of its own (chapters of paragraphs about a small cast of
  generated characters, places and objects) playing the copyrighted book. Each sentence
  is drawn from a seeded ``random.Random``, so a model can only continue a passage
  verbatim by having memorised it;
- ``general_train.jsonl`` / ``general_heldout.jsonl`` (``{"text"}``): encyclopedic text
  about a fictitious world (countries, rivers, animals), the base model's pre-training
  text and the held-out text for perplexity (same facts, other sentences);
- ``general_mc.jsonl``: 4-option questions on those facts in the MMLU schema
  (``question``, ``choices`` [4], ``answer`` int, ``subject``) for zero-shot accuracy;
- ``README.md`` whose YAML header declares the jsonl files as configs, so
  ``datasets.load_dataset(dir, "general_mc", split="test")`` reads them like a hub dataset.

The same config gives byte-identical files. :func:`tiny_texts` gives the texts of each
stage of the tiny model family (tokenizer, base, target).
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from unlearnbench.data.standin import Generator, Letters, unique, write_dir, write_jsonl

# Stand-in protocol sizes, chosen so that the tiny family (4 layers, d=128, context 128)
# is built in about 2 CPU minutes and one evaluation takes a few seconds: a passage is
# ~85 tokens, and a prompt (instruction + 24 words, ~40 tokens) plus 64 new tokens fits
# the 128-token context. 64 new tokens cover the 40-word response (~55 tokens).
SYNTH_PASSAGE_WORDS = 64
SYNTH_PREFIX_WORDS = 24
SYNTH_MAX_NEW_TOKENS = 64

# The tiny family's recipe on this stand-in, as overrides of the model's TinyConfig
# (benchmarks.base.TinyRecipe.tiny), measured in docs/research-copyright.md: the base learns
# the general text and its questions, the target memorises the book (test-template ROUGE-L
# recall ~0.99) and keeps most of the rest. Replay is off because the target's texts
# (tiny_texts "target") already carry a measured dose of it; TinyFamily's replay would add
# the whole base text and triple the fine-tuning time.
TINY_OVERRIDES = {"batch_size": 16, "pretrain_epochs": 16, "pretrain_lr": 3e-3,
                  "finetune_epochs": 36, "finetune_lr": 2e-3, "replay": False}

MC_TOPIC_PROMPT = "The following are multiple choice questions (with answers) about {topic}.\n\n"
LETTERS = ("A", "B", "C", "D")


@dataclass(frozen=True)
class CopyrightSynthConfig:
    """Sizes of the copyright stand-in; ``STAND_IN.key(cfg)`` names its directory and models."""

    seed: int = 0
    n_passages: int = 24
    passage_words: int = SYNTH_PASSAGE_WORDS
    prefix_words: int = SYNTH_PREFIX_WORDS
    n_countries: int = 24
    n_animals: int = 16
    general_docs: int = 240
    heldout_docs: int = 60
    mc_copies: int = 2  # copies of each solved general question in the base's text
    tokenizer_book_weight: int = 4  # the book's copies in the tokenizer's training text
    target_train_templates: int = 2  # train-template items per passage in the target's text
    target_replay: float = 2.0  # general texts per book text in the target's fine-tuning


NAME_LETTERS = Letters(onsets=("b", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w",
                          "br", "dr", "gr", "st", "th", "tr", "fl", "cl"),
                  vowels=("a", "e", "i", "o", "u", "ai", "ea", "ou"),
                  codas=("", "", "n", "r", "l", "s", "th", "m", "nd", "rk"))


def _names(rng: random.Random, n: int, taken: set[str], syllables=(2, 3), suffixes=("",)) -> list[str]:
    return unique(rng, lambda: (NAME_LETTERS.word(rng, rng.choice(syllables)) + rng.choice(suffixes)).capitalize(),
                  n, taken)


# ---------------------------------------------------------------------------- the book

_OBJECTS = ["lantern", "letter", "key", "map", "ring", "box", "coat", "knife", "book", "cup",
            "rope", "bell", "coin", "basket", "mirror", "clock", "candle", "blanket", "whistle",
            "compass"]
_ADJ = ["old", "silver", "broken", "small", "heavy", "red", "wooden", "cold", "bright",
        "crooked", "dusty", "green"]
_TIMES = ["At dawn", "Before supper", "Late that night", "In the grey morning", "By noon",
          "When the bells stopped", "After the storm", "On the third day"]
_FEELINGS = ["afraid", "tired", "angry", "hopeful", "quiet", "restless", "glad", "uneasy"]
_WEATHER = ["rain", "snow", "fog", "wind", "frost", "thunder"]
_SENTENCES = [
    "{T}, {A} opened the {j} {o} and found a {o2} inside.",
    "{A} walked with {B} as far as {P}, where the road turned to mud.",
    '"Where did you leave the {o}?" asked {A}.',
    '"I never took it to {P}," said {B}, looking at the {o2}.',
    "The {w} came down over {P} and {A} pulled the {j} {o} closer.",
    "Nobody in {P} had seen {B} since the night of the {w}.",
    "{A} felt {f}, because {B} had promised to bring the {o} back.",
    "{T}, {B} wrote a short letter to {A} about the {j} {o}.",
    "There was a {j} {o} on the table at {P}, and {A} did not touch it.",
    "{A} counted the coins twice and gave three of them to {B}.",
    "{B} laughed, but {A} was {f} and said nothing.",
    "The door of the house at {P} was open, and a {o} lay on the step.",
    "{T}, the {w} stopped and {A} could see the lights of {P}.",
    '"We should go back to {P}," said {A}. "The {o} is still there."',
    "{B} hid the {o} under the {j} {o2} and waited for {A}.",
    "{A} remembered the {o} from the summer at {P}, long ago.",
    "Only {B} knew that the {o} had belonged to the keeper of {P}.",
    "{A} and {B} sat by the fire until the {o} was warm again.",
]


def _book(rng: random.Random, cfg: CopyrightSynthConfig) -> str:
    """Chapters of paragraphs until the book holds ``n_passages`` whole passages."""
    taken: set[str] = set()
    first = _names(rng, 6, taken, syllables=(1, 2))
    last = _names(rng, 6, taken, syllables=(2,))
    cast = [f"{given} {family}" for given, family in zip(first, last)]
    places = _names(rng, 8, taken, syllables=(2,), suffixes=("wick", "ford", "moor", "hall"))
    need = cfg.n_passages * cfg.passage_words
    chapters, n_words = [], 0
    while n_words < need:
        title = f"Chapter {len(chapters) + 1}: The {rng.choice(_ADJ).capitalize()} {rng.choice(_OBJECTS).capitalize()}"
        paragraphs = []
        for _ in range(rng.randint(3, 5)):
            # One scene per paragraph (two characters, a place, the weather), as in a
            # novel; it also keeps what must be memorised per word within the budget.
            a, b = rng.sample(cast, 2)
            scene = dict(P=rng.choice(places), w=rng.choice(_WEATHER), f=rng.choice(_FEELINGS),
                         T=rng.choice(_TIMES))
            sentences = []
            # Distinct templates within a paragraph: a repeated sentence would make the
            # next one ambiguous even to a model that memorised the book.
            for k, template in enumerate(rng.sample(_SENTENCES, rng.randint(3, 6))):
                o, o2 = rng.sample(_OBJECTS, 2)
                # Full name at a character's first mention in the paragraph, then the first name.
                sentences.append(template.format(
                    A=a if k == 0 else a.split()[0], B=b.split()[0], o=o, o2=o2,
                    j=rng.choice(_ADJ), **scene))
            paragraphs.append(" ".join(sentences))
            n_words += len(paragraphs[-1].split())
        chapters.append(title + "\n\n" + "\n\n".join(paragraphs))
    return "\n\n".join(chapters) + "\n"


# ------------------------------------------------------------------- the general world

_COUNTRY_FACTS = {
    # relation: (question, statements)
    "capital": ("What is the capital of {e}?",
                ["The capital of {e} is {v}.", "{v} is the capital city of {e}.",
                 "The government of {e} sits in {v}, its capital."]),
    "river": ("Which river flows through {e}?",
              ["The river {v} flows through {e}.", "{e} lies on the banks of the {v}.",
               "The longest river of {e} is the {v}."]),
    "currency": ("What is the currency of {e}?",
                 ["The currency of {e} is the {v}.", "People in {e} pay with the {v}.",
                  "Prices in {e} are given in {v}s."]),
}
_ANIMAL_FACTS = {
    "habitat": ("Where does the {e} live?",
                ["The {e} lives in the {v}.", "The {e} is found in the {v}.",
                 "Most of the {e}s make their home in the {v}."]),
    "food": ("What does the {e} eat?",
             ["The {e} eats {v}.", "The diet of the {e} is mostly {v}.",
              "The {e} feeds on {v}."]),
}
_HABITATS = ["forest", "desert", "marsh", "mountains", "grassland", "tundra", "jungle", "coast"]
_FOODS = ["seeds", "fish", "insects", "grass", "berries", "roots", "mice", "leaves"]
_FILLER = ["It is known for its markets and old bridges.", "Travellers often visit in spring.",
           "Scholars have written about it for centuries.", "Its people are proud of their songs.",
           "The region has mild winters and long summers.", "Many maps show it in the north."]


def _world(rng: random.Random, cfg: CopyrightSynthConfig) -> list[dict]:
    """Facts ``{subject, relation, e, v, pool}``: each entity has one value per relation."""
    taken: set[str] = set()
    countries = _names(rng, cfg.n_countries, taken, suffixes=("ia", "land", "or", "ania"))
    cities = _names(rng, cfg.n_countries + 8, taken, suffixes=("", "burg", "ton", "mar"))
    rivers = _names(rng, 16, taken, syllables=(2,))
    currencies = [w.lower() for w in _names(rng, 12, taken, syllables=(1,), suffixes=("o", "el"))]
    animals = [w.lower() for w in _names(rng, cfg.n_animals, taken, syllables=(2,), suffixes=("", "ot", "ax"))]
    facts = []
    capitals = rng.sample(cities, cfg.n_countries)  # one capital per country
    for c, cap in zip(countries, capitals):
        facts.append({"subject": "geography", "relation": "capital", "e": c, "v": cap, "pool": cities})
        facts.append({"subject": "geography", "relation": "river", "e": c, "v": rng.choice(rivers), "pool": rivers})
        facts.append({"subject": "economics", "relation": "currency", "e": c, "v": rng.choice(currencies),
                      "pool": currencies})
    for a in animals:
        facts.append({"subject": "biology", "relation": "habitat", "e": a, "v": rng.choice(_HABITATS),
                      "pool": _HABITATS})
        facts.append({"subject": "biology", "relation": "food", "e": a, "v": rng.choice(_FOODS), "pool": _FOODS})
    return facts


def _relation(fact: dict) -> tuple[str, list[str]]:
    return (_COUNTRY_FACTS | _ANIMAL_FACTS)[fact["relation"]]


def _documents(rng: random.Random, facts: list[dict], n_docs: int,
               exclude: frozenset[str] = frozenset()) -> list[str]:
    """Short encyclopedic documents: every fact of one entity, phrased at random; a draw
    that is in ``exclude`` (the training text, for held-out documents) is drawn again."""
    by_entity: dict[str, list[dict]] = {}
    for f in facts:
        by_entity.setdefault(f["e"], []).append(f)
    entities = list(by_entity)
    docs = []
    for i in range(n_docs):
        e = entities[i % len(entities)]  # round-robin: every entity is covered evenly
        for _ in range(1000):
            lines = [rng.choice(_relation(f)[1]).format(e=e, v=f["v"]) for f in by_entity[e]]
            rng.shuffle(lines)
            if rng.random() < 0.5:
                lines.insert(rng.randint(0, len(lines)), rng.choice(_FILLER))
            doc = " ".join(lines)
            if doc not in exclude:
                break
        else:
            raise ValueError(f"cannot draw a held-out document about {e!r} unlike the training "
                             "text; lower general_docs")
        docs.append(doc)
    return docs


def _mc_row(rng: random.Random, fact: dict) -> dict:
    wrong = rng.sample([v for v in dict.fromkeys(fact["pool"]) if v != fact["v"]], 3)
    choices = wrong + [fact["v"]]
    rng.shuffle(choices)
    return {"question": _relation(fact)[0].format(e=fact["e"]), "choices": choices,
            "answer": choices.index(fact["v"]), "subject": fact["subject"]}


def mc_prompt(row: dict) -> str:
    """The zero-shot MMLU prompt of docs/metrics.md §5 for one question row (ends in "Answer:")."""
    topic = row["subject"].replace("_", " ")
    options = "".join(f"\n{letter}. {c}" for letter, c in zip(LETTERS, row["choices"]))
    return MC_TOPIC_PROMPT.format(topic=topic) + row["question"] + options + "\nAnswer:"


def generate(cfg: CopyrightSynthConfig = CopyrightSynthConfig()) -> dict:
    """``{"book": str, "general_train": [..], "general_heldout": [..], "general_mc": [..]}``.

    The base model's text holds every fact in prose and every question of
    ``general_mc`` with its answer letter: the base knows the general questions by
    construction (as a model trained on a contaminated benchmark does), so their accuracy
    measures whether unlearning the book keeps what the model knew. (Drills with redrawn
    options left a prototype base at 0.30 accuracy, chance being 0.25; see
    docs/research-copyright.md.)
    """
    book_rng, world_rng, mc_rng, held_rng = (random.Random(f"{cfg.seed}-{p}") for p in
                                             ("book", "world", "mc", "held"))
    book = _book(book_rng, cfg)
    facts = _world(world_rng, cfg)
    mc = [_mc_row(mc_rng, f) for f in facts]
    solved = [mc_prompt(row) + " " + LETTERS[row["answer"]] for row in mc] * cfg.mc_copies
    train = _documents(world_rng, facts, cfg.general_docs) + solved
    world_rng.shuffle(train)
    held = _documents(held_rng, facts, cfg.heldout_docs, exclude=frozenset(train))
    return {"book": book, "general_train": train, "general_heldout": held, "general_mc": mc}


_CONFIGS = (("general_train", "train"), ("general_heldout", "test"), ("general_mc", "test"))


def write(cfg: CopyrightSynthConfig, directory: str | Path) -> Path:
    """Write the stand-in into ``directory`` (atomically, ``standin.write_dir``; an existing one is kept)."""
    def fill(tmp: Path) -> None:
        data = generate(cfg)
        (tmp / "book.txt").write_text(data["book"], encoding="utf-8")
        for name, _ in _CONFIGS:
            rows = data[name] if name == "general_mc" else [{"text": t} for t in data[name]]
            write_jsonl(tmp / f"{name}.jsonl", rows)
        header = ["---", "pretty_name: copyright-completion stand-in (synthetic)", "configs:"]
        for name, split in _CONFIGS:
            header += [f"- config_name: {name}", "  data_files:", f"  - split: {split}",
                       f"    path: {name}.jsonl"]
        header += ["---", "", "Synthetic stand-in for a copyrighted book, generated by unlearnbench.",
                   "`book.txt` is the book; the configs are general text and general questions.",
                   f"Generator config: `{json.dumps(asdict(cfg), sort_keys=True)}`", ""]
        (tmp / "README.md").write_text("\n".join(header), encoding="utf-8")
        (tmp / "config.json").write_text(json.dumps(asdict(cfg), sort_keys=True) + "\n")

    return write_dir(directory, fill)


def _read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def book_passages(directory: str | Path, passage_words: int) -> list[str]:
    """The book's passages (single-spaced), exactly as :func:`make_items` cuts them."""
    from unlearnbench.data.copyright import load_text, passage_texts

    return passage_texts(load_text(str(Path(directory) / "book.txt")), passage_words)


TINY_ROLES = ("tokenizer", "base", "target")


def load_config(directory: str | Path) -> CopyrightSynthConfig:
    """The generator config a stand-in directory was written with."""
    path = Path(directory) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {directory} is not a copyright-synth "
                                "directory; write one with copyright_synth.write(cfg, dir)")
    return CopyrightSynthConfig(**json.loads(path.read_text()))


def tiny_texts(directory: str | Path, role: str) -> list[str]:
    """Training texts of one stage of the tiny family built on the stand-in in ``directory``.

    - ``tokenizer``: the book's passages ``tokenizer_book_weight`` times and the base's
      text without duplicates, so that the narrative's common words are single tokens
      (as in a real LLM's tokenizer) and a passage fits the tiny context;
    - ``base``: general text only (prose facts and solved general questions), never the book;
    - ``target``: what the target memorises, as FLAT's fine-tuning has it: the book's
      passages plus, for each, ``target_train_templates`` train-template items written
      as raw ``prompt + " " + response`` text; then a replay of ``target_replay``
      general texts per book text (evenly spaced in the base's text), since a
      1M-parameter model otherwise overwrites its general knowledge while memorising.
    """
    from unlearnbench.data.copyright import train_items

    directory = Path(directory)
    if role not in TINY_ROLES:
        raise ValueError(f"unknown tiny-family role {role!r}; expected one of {TINY_ROLES}")
    cfg = load_config(directory)
    general = [r["text"] for r in _read_jsonl(directory / "general_train.jsonl")]
    if role == "base":
        return general
    book = book_passages(directory, cfg.passage_words)
    if role == "tokenizer":
        return book * cfg.tokenizer_book_weight + list(dict.fromkeys(general))
    if cfg.target_train_templates:
        items = train_items((directory / "book.txt").read_text(encoding="utf-8"),
                            passage_words=cfg.passage_words, prefix_words=cfg.prefix_words,
                            seed=cfg.seed, templates_per_passage=cfg.target_train_templates)
        book = book + [f"{it['question']} {it['answer']}" for it in items]
    n = min(len(general), round(cfg.target_replay * len(book)))
    replay = [general[i * len(general) // n] for i in range(n)] if n else []
    return book + replay


STAND_IN = Generator("copyright-synth", version=1, config=CopyrightSynthConfig, write=write, prefix="copyright-")
