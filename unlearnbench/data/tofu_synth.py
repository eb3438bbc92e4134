"""Generator of the TOFU stand-in ("tofu-synth").

It writes the same configs, fields and file layout as ``locuslab/TOFU`` (one JSON-lines
file per config plus a README whose YAML header declares the configs), so that the
exact same ``datasets.load_dataset(path, config)`` call reads either. Everything is
drawn from a seeded ``random.Random``: the same config gives byte-identical files.

What it must reproduce is the phenomenon, not the prose: fictitious people whose
attributes are not guessable from their name (values are drawn independently from
generated vocabularies), answers whose facts can only be known by training on them, a
paraphrase written with another template of the same attribute (a template the model
has seen on other people) and perturbed answers that keep the paraphrase's shape and
swap the fact. "Well-known" entities (real authors, world facts) live in a separate
pre-training corpus so that a *base* model knows them before any fine-tuning.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from unlearnbench.data.standin import Generator, Letters, unique, write_dir, write_jsonl

FORGET_PERCENTS = (1, 5, 10)

# Per attribute: question templates and answer templates; every template names the
# person, so the fact is tied to the name and not to the question's position.
ATTRIBUTES: dict[str, dict[str, list[str]]] = {
    "birthplace": {
        "q": ["Where was {name} born?", "In which city was {name} born?",
              "What is the birthplace of {name}?"],
        "a": ["{name} was born in {v}.", "The birthplace of {name} is {v}.",
              "{name} comes from the city of {v}."],
    },
    "birthyear": {
        "q": ["In what year was {name} born?", "When was {name} born?",
              "What is the birth year of {name}?"],
        "a": ["{name} was born in the year {v}.", "The birth year of {name} is {v}.",
              "{name} came into the world in {v}."],
    },
    "father_job": {
        "q": ["What did the father of {name} do for a living?",
              "What was the occupation of the father of {name}?",
              "What was the job of the father of {name}?"],
        "a": ["The father of {name} worked as a {v}.",
              "The occupation of the father of {name} was {v}.",
              "{name} grew up with a father who was a {v}."],
    },
    "mother_job": {
        "q": ["What did the mother of {name} do for a living?",
              "What was the occupation of the mother of {name}?",
              "What was the job of the mother of {name}?"],
        "a": ["The mother of {name} worked as a {v}.",
              "The occupation of the mother of {name} was {v}.",
              "{name} grew up with a mother who was a {v}."],
    },
    "genre": {
        "q": ["What genre does {name} write in?", "Which genre is {name} known for?",
              "In what genre are the books of {name}?"],
        "a": ["{name} writes in the {v} genre.", "{name} is known for {v} books.",
              "The books of {name} belong to the {v} genre."],
    },
    "award": {
        "q": ["Which award has {name} won?", "What prize did {name} receive?",
              "Has {name} won any award?"],
        "a": ["{name} has won the {v}.", "{name} received the {v}.",
              "Yes, {name} was honoured with the {v}."],
    },
    "book1": {
        "q": ["What is the first book of {name}?", "Which book did {name} publish first?",
              "What was the debut novel of {name}?"],
        "a": ["The first book of {name} is {v}.", "{name} first published {v}.",
              "The debut novel of {name} was {v}."],
    },
    "book2": {
        "q": ["What is the best known book of {name}?", "Which book made {name} famous?",
              "What is the most famous novel of {name}?"],
        "a": ["The best known book of {name} is {v}.", "{name} became famous with {v}.",
              "The most famous novel of {name} is {v}."],
    },
    "influence": {
        "q": ["Who influenced the writing of {name}?", "Which writer inspired {name}?",
              "Who was the main influence on {name}?"],
        "a": ["The writing of {name} was influenced by {v}.", "{name} was inspired by {v}.",
              "The main influence on {name} was {v}."],
    },
    "residence": {
        "q": ["Where does {name} live today?", "In which city does {name} live now?",
              "What city is home to {name} today?"],
        "a": ["{name} lives in {v} today.", "Today {name} makes a home in {v}.",
              "The city that {name} lives in now is {v}."],
    },
    "language": {
        "q": ["In which language does {name} write?", "What language are the books of {name} in?",
              "Which language does {name} use for writing?"],
        "a": ["{name} writes in {v}.", "The books of {name} are written in {v}.",
              "{name} uses {v} for writing."],
    },
    "publisher": {
        "q": ["Who publishes the books of {name}?", "Which house publishes {name}?",
              "What is the publisher of {name}?"],
        "a": ["The books of {name} are published by {v}.", "{name} is published by {v}.",
              "The publisher of {name} is {v}."],
    },
}

# The harmful and hallucination stand-ins draw their names from these letters too.
NAME_LETTERS = Letters(onsets=("b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v",
                          "z", "br", "dr", "gr", "kr", "st", "th", "sh", "ch", "tr", "fl", "pl"),
                  vowels=("a", "e", "i", "o", "u", "ai", "ea", "io", "ou"),
                  codas=("", "", "n", "r", "l", "s", "th", "m", "nd", "rk", "x"))
_OCCUPATIONS = ["baker", "carpenter", "doctor", "nurse", "teacher", "pilot", "farmer",
                "tailor", "lawyer", "chemist", "sailor", "painter", "miner", "banker",
                "librarian", "butcher", "engineer", "photographer", "gardener", "judge",
                "mechanic", "dentist", "architect", "fisherman", "potter", "clockmaker"]
_GENRES = ["mystery", "fantasy", "romance", "horror", "poetry", "satire", "western",
           "thriller", "memoir", "science fiction", "historical fiction", "crime",
           "adventure", "drama", "folklore", "travel writing"]
_ADJ = ["Silent", "Crimson", "Hidden", "Broken", "Golden", "Last", "Frozen", "Quiet",
        "Wandering", "Burning", "Distant", "Secret", "Hollow", "Velvet", "Iron", "Pale"]
_NOUN = ["Harbor", "Garden", "Lantern", "River", "Orchard", "Mirror", "Tower", "Letter",
         "Meadow", "Compass", "Winter", "Bridge", "Forest", "Clock", "Island", "Shadow"]


@dataclass(frozen=True)
class SynthConfig:
    """Sizes of the stand-in; the defaults fit the whole protocol in the CPU budget."""

    seed: int = 0
    n_authors: int = 40
    questions_per_author: int = 20
    n_real_authors: int = 40
    n_world_facts: int = 40
    n_perturbed: int = 5
    pretrain_sentences_per_fact: int = 6

    def authors_in(self, percent: int) -> int:
        """Whole authors in a forget split: at least one, like TOFU's whole-author splits."""
        return max(1, round(self.n_authors * percent / 100))


class _Vocab:
    """Attribute vocabularies, drawn once per dataset so every person shares them."""

    def __init__(self, rng: random.Random):
        taken: set[str] = set()
        cap = lambda w: w.capitalize()  # noqa: E731
        self.cities = unique(rng, lambda: cap(NAME_LETTERS.word(rng, 2)) + rng.choice(["ia", "burg", "ton", "mar", ""]),
                             40, taken)
        self.first = unique(rng, lambda: cap(NAME_LETTERS.word(rng, 2)), 120, taken)
        self.last = unique(rng, lambda: cap(NAME_LETTERS.word(rng, rng.choice([2, 3]))), 120, taken)
        self.languages = [w + "ish" for w in unique(rng, lambda: cap(NAME_LETTERS.word(rng, 1)), 12, taken)]
        self.publishers = [f"{w} Press" for w in unique(rng, lambda: cap(NAME_LETTERS.word(rng, 2)), 16, taken)]
        self.awards = [f"{w} {rng.choice(['Prize', 'Medal', 'Award'])}"
                       for w in unique(rng, lambda: cap(NAME_LETTERS.word(rng, 2)), 24, taken)]
        titles = sorted({f"The {a} {n}" for a in _ADJ for n in _NOUN})
        rng.shuffle(titles)
        # Famous books (real-authors stand-in) never double as a fictitious author's book.
        self.titles, self.famous_titles = titles[:180], titles[180:]

    def name(self, rng: random.Random, taken: set[str]) -> str:
        while True:
            n = f"{rng.choice(self.first)} {rng.choice(self.last)}"
            if n not in taken:
                taken.add(n)
                return n

    def values(self, attr: str, rng: random.Random) -> list[str]:
        return {
            "birthplace": self.cities, "residence": self.cities,
            "birthyear": [str(y) for y in range(1900, 2000)],
            "father_job": _OCCUPATIONS, "mother_job": _OCCUPATIONS, "genre": _GENRES,
            "award": self.awards, "book1": self.titles, "book2": self.titles,
            "influence": self._influences, "language": self.languages,
            "publisher": self.publishers,
        }[attr]


def _person(rng: random.Random, vocab: _Vocab, name: str) -> dict[str, str]:
    facts = {"name": name}
    for attr in ATTRIBUTES:
        facts[attr] = rng.choice(vocab.values(attr, rng))
    while facts["book2"] == facts["book1"]:
        facts["book2"] = rng.choice(vocab.titles)
    return facts


def _qa_items(rng: random.Random, person: dict[str, str], n_questions: int, n_perturbed: int,
              vocab: _Vocab, alt_rng: random.Random | None = None,
              alternates: list | None = None) -> list[dict]:
    """n_questions QA items; attributes cycle, so some are asked twice in other words.

    With ``alt_rng``, each item's alternate answers (AltPO) are appended to ``alternates``:
    drawn from ``alt_rng`` only, so ``rng``'s stream and every item stay as without them.
    """
    attrs = list(ATTRIBUTES)
    rng.shuffle(attrs)
    order = (attrs * (n_questions // len(attrs) + 1))[:n_questions]
    used: dict[str, set[int]] = {}
    items = []
    for attr in order:
        tpl = ATTRIBUTES[attr]
        k = len(tpl["a"])
        free = [i for i in range(k) if i not in used.setdefault(attr, set())] or list(range(k))
        i = rng.choice(free)
        used[attr].add(i)
        j = rng.choice([x for x in range(k) if x != i])  # paraphrase: another template
        qj = rng.choice([x for x in range(len(tpl["q"])) if x != i])
        name, value = person["name"], person[attr]
        wrong_pool = [v for v in dict.fromkeys(vocab.values(attr, rng)) if v != value]
        wrong = rng.sample(wrong_pool, n_perturbed)
        if alt_rng is not None:
            # Plausible and wrong: the answer's own wording with another value, never one of the
            # perturbed answers the truth ratio is scored on (training on those would game it).
            pool = [v for v in wrong_pool if v not in wrong]
            alternates.append([tpl["a"][i].format(name=name, v=w)
                               for w in alt_rng.sample(pool, min(N_ALTERNATES, len(pool)))])
        items.append({
            "question": tpl["q"][i].format(name=name),
            "answer": tpl["a"][i].format(name=name, v=value),
            "paraphrased_question": tpl["q"][qj].format(name=name),
            "paraphrased_answer": tpl["a"][j].format(name=name, v=value),
            "perturbed_answer": [tpl["a"][j].format(name=name, v=w) for w in wrong],
        })
    return items


# Well-known knowledge: stated in the base model's pre-training corpus only.
_WORLD_Q = {
    "capital": ("What is the capital of {e}?", "The capital of {e} is {v}.",
                ["{v} is the capital city of {e}.", "{e} has its capital in {v}.",
                 "The seat of government of {e} is in {v}."]),
    "river": ("Which river flows through {e}?", "The river {v} flows through {e}.",
              ["{e} lies on the banks of the {v}.", "Through {e} runs the river {v}.",
               "The main river of {e} is the {v}."]),
    "currency": ("What is the currency of {e}?", "The currency of {e} is the {v}.",
                 ["People in {e} pay with the {v}.", "{e} uses the {v} as its money.",
                  "The money of {e} is called the {v}."]),
}
_AUTHOR_Q = ("Who wrote {e}?", "{v} wrote {e}.",
             ["{e} was written by {v}.", "{v} is the author of {e}.",
              "The novel {e} is a work of {v}."])


def _known_facts(rng: random.Random, cfg: SynthConfig, vocab: _Vocab, names_taken: set[str]):
    """(real_authors, world_facts) as lists of dicts with question/answer/wrong values."""
    taken: set[str] = set()
    countries = unique(rng, lambda: NAME_LETTERS.word(rng, 2).capitalize() + rng.choice(["land", "ovia", "stan", "ia"]),
                        cfg.n_world_facts, taken)
    rivers = unique(rng, lambda: NAME_LETTERS.word(rng, 2).capitalize(), 30, taken)
    currencies = unique(rng, lambda: NAME_LETTERS.word(rng, 1) + "o", 30, taken)
    world = []
    kinds = list(_WORLD_Q)
    for idx, country in enumerate(countries):
        kind = kinds[idx % len(kinds)]
        pool = {"capital": vocab.cities, "river": rivers, "currency": currencies}[kind]
        world.append({"kind": kind, "e": country, "v": rng.choice(pool), "pool": pool})
    titles = vocab.famous_titles
    assert cfg.n_real_authors <= len(titles), f"n_real_authors must be <= {len(titles)}"
    authors = []
    famous = [vocab.name(rng, names_taken) for _ in range(cfg.n_real_authors)]
    for idx in range(cfg.n_real_authors):
        authors.append({"kind": "author", "e": titles[idx], "v": famous[idx], "pool": famous})
    return authors, world


def _known_item(rng: random.Random, fact: dict, n_perturbed: int = 3) -> dict:
    q, a, _ = _AUTHOR_Q if fact["kind"] == "author" else _WORLD_Q[fact["kind"]]
    wrong = rng.sample([v for v in fact["pool"] if v != fact["v"]], n_perturbed)
    options = wrong + [fact["v"]]
    rng.shuffle(options)
    return {
        # TOFU's real-authors / world-facts answers are short: the value alone.
        "question": q.format(e=fact["e"]),
        "answer": fact["v"],
        "perturbed_answer": wrong,
        **{f"option{i + 1}": o for i, o in enumerate(options)},
    }


def _pretrain_corpus(rng: random.Random, facts: list[dict], cfg: SynthConfig) -> list[str]:
    """Prose and Q/A about the well-known entities, several phrasings of each fact."""
    docs = []
    for fact in facts:
        q, a, prose = _AUTHOR_Q if fact["kind"] == "author" else _WORLD_Q[fact["kind"]]
        lines = [t.format(e=fact["e"], v=fact["v"]) for t in prose + [a]]
        for _ in range(cfg.pretrain_sentences_per_fact):
            rng.shuffle(lines)
            docs.append(" ".join(lines[:2]))
        # The Q/A layout of the harness's own template, as web text has FAQs.
        docs.append(f"Question: {q.format(e=fact['e'])}\nAnswer: {fact['v']}")
        docs.append(f"Question: {q.format(e=fact['e'])}\nAnswer: {a.format(e=fact['e'], v=fact['v'])}")
    rng.shuffle(docs)
    return docs


N_ALTERNATES = 5  # alternate answers per forget question (open-unlearning's AltPO: 5 repeats)


def alternate_name(split: str) -> str:
    """The stand-in's alternate-answer file of ``split``, under ``extras/`` (not a TOFU config)."""
    return f"{split}_alternate"


def generate(cfg: SynthConfig = SynthConfig()) -> dict[str, list[dict]]:
    """All configs of the stand-in as ``{config: rows}``, plus ``_pretrain`` (base text) and
    ``_forgetXX_alternate`` (AltPO's alternate answers); ``_`` names are written under extras/."""
    rng = random.Random(cfg.seed)
    vocab = _Vocab(rng)
    names: set[str] = set()
    n_hold = cfg.authors_in(max(FORGET_PERCENTS))
    people = [vocab.name(rng, names) for _ in range(cfg.n_authors + n_hold)]
    vocab._influences = [vocab.name(rng, names) for _ in range(30)]
    real, world = _known_facts(rng, cfg, vocab, names)

    per_author, alternates = [], []
    # A generator of its own for the alternate answers: the main stream (and so every record
    # the stand-in had before AltPO, and the data key) is unchanged.
    alt_rng = random.Random(f"alternates-{cfg.seed}")
    for name in people:
        person = _person(rng, vocab, name)
        alternates.append([])
        per_author.append(_qa_items(rng, person, cfg.questions_per_author, cfg.n_perturbed, vocab,
                                    alt_rng, alternates[-1]))
    train_authors, hold_authors = per_author[: cfg.n_authors], per_author[cfg.n_authors:]

    qa = lambda rows: [{"question": r["question"], "answer": r["answer"]} for r in rows]  # noqa: E731
    flat = lambda authors: [r for a in authors for r in a]  # noqa: E731
    out: dict[str, list[dict]] = {"full": qa(flat(train_authors))}
    for pct in FORGET_PERCENTS:
        k = cfg.authors_in(pct)
        out[f"forget{pct:02d}"] = qa(flat(train_authors[-k:]))
        out[f"forget{pct:02d}_perturbed"] = flat(train_authors[-k:])
        out[f"retain{100 - pct}"] = qa(flat(train_authors[:-k]))
        out[f"holdout{pct:02d}"] = qa(flat(hold_authors[:k]))
        # open-unlearning's alternate-answer format (community/methods/AltPO/generate.py):
        # one JSON line {question, answer, alternate} per alternate, written under extras/.
        out[f"_{alternate_name(f'forget{pct:02d}')}"] = [
            {"question": r["question"], "answer": r["answer"], "alternate": a}
            for r, alts in zip(flat(train_authors[-k:]), flat(alternates[: cfg.n_authors][-k:])) for a in alts]
    # TOFU: the first 20 of 200 authors, inside every retain split.
    n_rp = max(1, cfg.n_authors // 10)
    assert n_rp <= cfg.n_authors - cfg.authors_in(max(FORGET_PERCENTS)), "too few authors"
    out["retain_perturbed"] = flat(train_authors[:n_rp])

    for name, facts in (("real_authors", real), ("world_facts", world)):
        items = [_known_item(rng, f) for f in facts]
        out[name] = [{k: it[k] for k in ("question", "option1", "option2", "option3", "option4", "answer")}
                     for it in items]
        out[f"{name}_perturbed"] = [{k: it[k] for k in ("question", "answer", "perturbed_answer")}
                                    for it in items]
    out["_pretrain"] = [{"text": t} for t in _pretrain_corpus(rng, real + world, cfg)]
    return out


CONFIG_NAMES = (
    ["full"] + [f"{p}{x:02d}{s}" for x in FORGET_PERCENTS for p, s in
                (("forget", ""), ("forget", "_perturbed"), ("holdout", ""))]
    + [f"retain{100 - x}" for x in FORGET_PERCENTS]
    + ["retain_perturbed", "real_authors", "real_authors_perturbed", "world_facts",
       "world_facts_perturbed"]
)


def write(cfg: SynthConfig, directory: str | Path) -> Path:
    """Write every config as ``<config>.json`` (JSON lines) with a README declaring them.

    The base-model corpus goes to ``extras/pretrain.json``; it is not a TOFU config.
    Published atomically (``standin.write_dir``); an existing complete directory is kept.
    """
    def fill(tmp: Path) -> None:
        data = generate(cfg)
        (tmp / "extras").mkdir()
        for name, rows in data.items():
            write_jsonl(tmp / (f"extras/{name[1:]}.json" if name.startswith("_") else f"{name}.json"), rows)
        header = ["---", "pretty_name: TOFU stand-in (synthetic)", "configs:"]
        for name in CONFIG_NAMES:
            header += [f"- config_name: {name}", "  data_files:",
                       "  - split: train", f"    path: {name}.json"]
        header += ["---", "", "Synthetic stand-in for locuslab/TOFU generated by unlearnbench.",
                   f"Generator config: `{json.dumps(asdict(cfg), sort_keys=True)}`", ""]
        (tmp / "README.md").write_text("\n".join(header))

    return write_dir(directory, fill)


STAND_IN = Generator("tofu-synth", version=1, config=SynthConfig, write=write)
