"""What every stand-in benchmark shares: its generator config, its default directory (the
generated data in the cache) and the data key of its tiny model family.

A stand-in benchmark subclasses ``StandIn`` before the real benchmark it stands in for,
names its generator (``data.standin.Generator``) and says how its tiny family is trained
(``tiny_recipe``); it keeps no ``__init__``, ``default_path`` or ``recipe`` of its own.
"""

from __future__ import annotations

import hashlib
import json

from unlearnbench.benchmarks.base import TinyRecipe
from unlearnbench.data.standin import Generator
from unlearnbench.paths import dir_fingerprint


class StandIn:
    """Mixin of a stand-in benchmark: ``StandIn`` first, then the real benchmark's class."""

    generator: Generator

    def __init__(self, path: str | None = None, synth=None):
        self.synth = synth or self.config_for(path)
        super().__init__(path)

    def config_for(self, path: str | None):
        """The generator config of a benchmark built without one: the default stand-in's."""
        return self.generator.config()

    def default_path(self) -> str:
        return str(self.generator.directory(self.synth))

    def recipe(self) -> TinyRecipe:
        return self.tiny_recipe(stand_in_key(self, self.generator.data_key(self.synth)))

    def tiny_recipe(self, data_key: str) -> TinyRecipe:
        """The tiny family trained on ``self.path``'s data, cached under ``data_key``."""
        raise NotImplementedError


def stand_in_key(bench, config_key: str) -> str:
    """The tiny-family key of a stand-in: its generator config's, or — read from a directory
    other than the one generated for that config — the directory's files' (so another copy
    never reuses the wrong family)."""
    if bench.path == bench.default_path():
        return config_key
    blob = json.dumps([str(bench.path), dir_fingerprint(bench.path)], default=str).encode()
    return "dir-" + hashlib.sha256(blob).hexdigest()[:12]
