"""What every stand-in generator shares: its versioned cache key, its cache directory, its
concurrent-safe writer and the invented-word generator. A generator module keeps only its
vocabularies, templates and ``generate()``, and declares one ``Generator`` at its end.

The cache key (``Generator.key``) is a short hash of the generator's config and of its code
version. The key names the cache directory and, prefixed, is the *data key* that every
result records and that the tiny model family is cached under; a grid re-runs a result
recorded with another data key (``runner.run.cell_state``). So a change to a generator's
output must bump its ``version``: the new key gets a fresh directory (never the stale one)
and marks the results computed on the old data as stale.

Version 1 (``FIRST_VERSION``) is each generator as it was when it was first keyed, before
the version was part of the key; its key hashes the config alone, so the data keys recorded
in committed results stay valid. From version 2 on, the key also hashes ``"generator":
<version>`` (WMDP's generator, versioned since before this module, is at 5).
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from unlearnbench.data.hub_layout import write_dir, write_jsonl  # noqa: F401  (the stand-ins' writers)
from unlearnbench.files import cache_root

FIRST_VERSION = 1


@dataclass(frozen=True)
class Generator:
    """One stand-in generator: what names its data, where it is cached, how it is written.

    ``write(cfg, directory)`` writes the stand-in for ``cfg`` (use ``write_dir`` for its
    atomic, concurrent-safe publication); ``prefix`` starts the data key recorded in results
    (``"wmdp-"``; TOFU's, the first stand-in, has none); ``salt`` is a ``"kind"`` field two
    generators' keys were first hashed with, kept so their keys do not change; ``base`` is
    the generator whose data this one extends (DETOX's stand-in holds the harmful one's), whose
    key it builds on.
    """

    name: str  # the cache directory's prefix, "<name>-<key>"
    version: int  # bump whenever generate()'s output changes for a given config
    config: type  # the generator's config dataclass; its default is the default stand-in
    write: Callable
    prefix: str = ""
    salt: str | None = None
    base: "Generator | None" = None

    def key(self, cfg) -> str:
        """Short hash of ``cfg`` and (from version 2) the generator version."""
        if self.base is not None:
            inner = self.base.key(cfg)
            return inner if self.version == FIRST_VERSION else _hash({"base": inner, "generator": self.version})
        fields = asdict(cfg)
        clash = {"kind", "generator"} & set(fields)
        if clash:  # would silently collide with the salt or the version
            raise ValueError(f"{self.name}: config field(s) {sorted(clash)} are reserved for the cache key")
        if self.salt is not None:
            fields["kind"] = self.salt
        if self.version != FIRST_VERSION:
            fields["generator"] = self.version
        return _hash(fields)

    def data_key(self, cfg) -> str:
        """The key results record for data generated from ``cfg``."""
        return self.prefix + self.key(cfg)

    def directory(self, cfg=None) -> Path:
        """The stand-in for ``cfg`` (default config) in the harness cache, written on first use."""
        cfg = cfg if cfg is not None else self.config()
        return Path(self.write(cfg, cache_root() / "data" / f"{self.name}-{self.key(cfg)}"))


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Letters:
    """A generator's letter inventories for invented words (each stand-in has its own, so its
    names do not look like another's; changing one changes the data: bump the version)."""

    onsets: tuple[str, ...]
    vowels: tuple[str, ...]
    codas: tuple[str, ...]

    def word(self, rng: random.Random, syllables: int) -> str:
        """``syllables`` onset+vowel pairs and a coda, lower case."""
        return "".join(rng.choice(self.onsets) + rng.choice(self.vowels) for _ in range(syllables)) \
            + rng.choice(self.codas)


def unique(rng: random.Random, make: Callable[[], str], n: int, taken: set[str]) -> list[str]:
    """``n`` strings from ``make()`` that are not in ``taken`` (and are added to it), in draw order."""
    out = []
    while len(out) < n:
        w = make()
        if w not in taken:
            taken.add(w)
            out.append(w)
    return out
