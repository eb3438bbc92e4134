"""The grid keys ``eval_every`` and ``keep`` (runner.periodic_eval), parsed and checked.

Apart from the callback so that reading a grid checks them without importing Lightning and
torch: a grid's preflight (a bad key, an offline hub id) answers in a few seconds.
"""

from __future__ import annotations

UNITS = ("steps", "epochs")


# ----------------------------------------------------------------------------- validation
def parse_eval_every(value, bench_cls=None) -> dict | None:
    """``{steps: N}`` / ``{epochs: K}`` (N, K positive integers), or None; an optional ``eval``
    mapping overrides evaluation options for these evaluations only (e.g. a shorter
    ``max_new_tokens``, see docs/running.md), checked against the benchmark's options."""
    if value is None:
        return None
    if isinstance(value, dict):
        units = [k for k in value if k in UNITS]
        n = value.get(units[0]) if len(units) == 1 else None
        extra = set(value) - set(UNITS) - {"eval"}
        if not extra and isinstance(n, int) and not isinstance(n, bool) and n >= 1 \
                and isinstance(value.get("eval", {}), dict):
            out = {units[0]: n}
            if value.get("eval"):
                if bench_cls is not None:
                    bench_cls.check_eval_options(dict(value["eval"]))  # an unknown option names the known
                out["eval"] = dict(value["eval"])
            return out
    raise ValueError(f"eval_every must be {{steps: N}} or {{epochs: K}} with a positive integer (and optionally "
                     f"eval: {{option: value}}), got {value!r}")


def parse_keep(value, bench_cls) -> dict:
    """``last`` (default), ``best`` (the benchmark's ranking rule) or ``{best: RULE}`` with RULE
    ``ranking`` or a leaderboard column that has a better direction."""
    if value is None or value == "last":
        return {"keep": "last"}
    rule = "ranking" if value == "best" else (value.get("best") if isinstance(value, dict) and list(value) == ["best"]
                                              else None)
    # A gap_to column needs a reference's evaluation, which a training run does not have.
    directed = [c.name for c in bench_cls.columns if c.direction != "none" and c.gap_to is None]
    if rule == "ranking":
        if bench_cls.ranking is None:
            raise ValueError(f"keep: benchmark {bench_cls.name!r} has no ranking rule; use keep: {{best: COLUMN}} "
                             f"with a column of {directed}")
        return {"keep": "best", "rule": "ranking"}
    if isinstance(rule, str) and rule in directed:
        return {"keep": "best", "rule": rule}
    raise ValueError(f"keep: unknown rule {value!r}; use last, best (the benchmark's ranking rule) or "
                     f"{{best: COLUMN}} with a column of {directed}")


def has_validation_items(bench_cls) -> bool:
    """Whether the benchmark summarises its validation items apart (``summarise_records``):
    then ``Benchmark.evaluate_part`` evaluates them, alone where it ``evaluates_parts``."""
    return bench_cls.summarises_parts()


def check(params: dict, bench_cls) -> tuple[dict | None, dict]:
    """(eval_every, keep) of a cell's parameters, validated against its benchmark."""
    if params.get("eval_every") is not None and not has_validation_items(bench_cls):
        raise ValueError(f"eval_every: benchmark {bench_cls.name!r} has no validation items to evaluate on "
                         "during unlearning; drop eval_every for it")
    every = parse_eval_every(params.get("eval_every"), bench_cls)
    keep = parse_keep(params.get("keep"), bench_cls)
    if keep["keep"] == "best" and every is None:
        raise ValueError("keep: best chooses among periodic evaluations; add eval_every: {epochs: 1} "
                         "(or {steps: N}) or drop keep")
    return every, keep

