"""An attack takes a model (the unlearned one, or a reference) and returns an attacked model that
the benchmark evaluates again. Attacks are registered like methods (``registry.attacks``), so a
plugin can add one.

The recovery an attack achieves on a benchmark's headline forget metric ``m`` (higher = more
remembered) is ``(m(attacked) − m(unlearned)) / (m(target) − m(unlearned))``, clipped to
[0, 1] when the denominator is positive (docs/metrics.md §10); ``recovery`` computes it.
"""

from __future__ import annotations

import math


class Attack:
    """Base class: subclasses set ``name``, ``defaults`` and implement ``apply``."""

    name: str = ""
    defaults: dict = {}

    def __init__(self, **params):
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise ValueError(f"attack {self.name!r}: unknown parameter(s) {unknown}; "
                             f"known: {sorted(self.defaults) or 'none'}")
        self.params = {**self.defaults, **params}

    def apply(self, model, *, tokenizer, encoder, bench, split: str, spec, seed: int, source: str | None = None):
        """Return the attacked model (it may be ``model`` changed in place); ``source`` is the
        checkpoint ``model`` was loaded from (an attack may reload it its own way)."""
        raise NotImplementedError


def recovery(attacked: float, unlearned: float, target: float) -> float:
    """How much of what unlearning removed an attack brings back, in [0, 1] (docs/metrics.md §10).

    NaN when the unlearned model removed nothing measurable (target ≤ unlearned): there is
    nothing to recover, and a ratio would be meaningless.
    """
    values = (attacked, unlearned, target)
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in values):
        return math.nan
    removed = target - unlearned
    if removed <= 0:
        return math.nan
    return min(1.0, max(0.0, (attacked - unlearned) / removed))
