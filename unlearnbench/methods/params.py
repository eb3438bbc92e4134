"""A method's hyper-parameters checked before anything runs: names against the settings the
method declares, types against their annotations, values against their ranges and choices.

A grid is checked when it is read (``--dry-run`` included) and ``--set`` before a target is
built or a reference evaluated, so a typo costs one line, not a cell's worth of compute.
The settings and their rules are declared as dataclasses (``methods.settings``): the shared
loop, loss weights and run options, and the method's own ``Settings``. A plugin class may
still take keywords in its own ``__init__`` and declare ``param_ranges = {"floor": "(0, 1)"}``
and ``param_choices``; those are checked too (by name, annotation and range).
"""

from __future__ import annotations

import inspect
import math

from unlearnbench.errors import UserError
from unlearnbench.methods import settings as S

# Set by the harness per cell, never a hyper-parameter.
HARNESS_SET = {"model_path", "model", "dtype", "ref_dtype", "seed"}
_NOT_PARAMS = {"self"} | HARNESS_SET
# Read by the training loop (runner.train.unlearn), not by the method's constructor.
# eval_every / keep: read by the runner (runner.periodic_eval, which checks them itself).
HARNESS_PARAMS = {"max_steps": ("int", ">= 1", "stop after this many optimiser steps (smoke runs)"),
                  "micro_batch_size": ("int", ">= 1", "rows per forward pass; gradients accumulate up to "
                                                      "batch_size (unset: the per-device batch)"),
                  "eval_every": ("Any", None, "{steps: N} or {epochs: K}: evaluate on validation items during "
                                              "unlearning (docs/running.md §3)"),
                  "keep": ("Any", None, "last, or best: test the checkpoint the ranking prefers among those "
                                        "evaluations (docs/running.md §3)")}


def _legacy_keywords(cls) -> dict[str, inspect.Parameter]:
    """Keywords of a plugin's own ``__init__`` (classes between ``cls`` and the base), the way
    a method took hyper-parameters before it declared ``Settings``."""
    from unlearnbench.methods.base import UnlearningMethod

    out: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        if klass is UnlearningMethod or not issubclass(klass, UnlearningMethod):
            break
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        for name, p in inspect.signature(init).parameters.items():
            if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and name not in _NOT_PARAMS:
                out.setdefault(name, p)
    return out


def _declared(cls, attr: str) -> dict:
    out: dict = {}
    for klass in reversed(cls.__mro__):
        out.update(klass.__dict__.get(attr, {}))
    return out


def known_params(cls) -> set[str]:
    """Every parameter name a method class takes (its settings, a plugin's own keywords)."""
    return (set(S.declared(cls)) | set(_legacy_keywords(cls))) - HARNESS_SET


def _rule(cls, key: str):
    """(type names, range, choices, default) of parameter ``key`` of ``cls``."""
    if key in HARNESS_PARAMS:
        return {HARNESS_PARAMS[key][0]}, HARNESS_PARAMS[key][1], None, None
    f = S.field_of(cls, key)
    if f is not None:
        default = S.declared(cls)[key][1]
        return S.types(f.type), f.metadata.get("range"), f.metadata.get("choices"), default
    p = _legacy_keywords(cls).get(key)
    if p is None:
        return set(), None, None, None
    ann = p.annotation
    names = (S.types(ann) if ann is not inspect.Parameter.empty
             else {type(p.default).__name__} if p.default not in (None, inspect.Parameter.empty) else set())
    default = None if p.default is inspect.Parameter.empty else p.default
    return names, _declared(cls, "param_ranges").get(key), _declared(cls, "param_choices").get(key), default


def check_params(method: str, params: dict, data_options=(), where: str = "") -> None:
    """Raise a one-line ``UserError`` for the first unknown, mistyped or out-of-range parameter.

    ``data_options`` are the benchmark's data keys (they go to the data module, not the method).
    """
    from unlearnbench.registry import methods

    cls = methods.get(method)
    if not isinstance(cls, type):
        return  # a factory registered by a plugin: its constructor checks what it gets
    prefix = f"{where}: " if where else ""
    own = known_params(cls)
    known = own | set(HARNESS_PARAMS) | set(data_options)
    # A wrapper (WAGLE) hands the keywords it does not take to the method it wraps.
    attr = getattr(cls, "delegates_to", None)
    inner = params.get(attr, S.declared(cls)[attr][1] if attr in S.declared(cls) else None) if attr else None
    inner_known: set[str] = set()
    if isinstance(inner, str) and inner in methods and isinstance(methods.get(inner), type):
        inner_known = known_params(methods.get(inner))
        passed = {k: v for k, v in params.items() if k in inner_known - own}
        check_params(inner, passed, data_options, where)
        known |= inner_known
    for key, value in params.items():
        if key in inner_known - own:
            continue  # checked against the wrapped method above
        if key == "seed":
            raise UserError(f"{prefix}'seed' is the cell's seed, not a parameter of method {method!r}; "
                            "set `seeds:` in the grid (or --seed)")
        if key not in known:
            raise S.unknown(method, key, known, prefix)
        names, rule, choices, default = _rule(cls, key)
        if key in own and default is None:
            names = names | {"None"}
        if not S.type_ok(value, names):
            want = " or ".join(sorted({S.WORDS.get(t, t) for t in names}))
            raise UserError(f"{prefix}parameter {key!r} of method {method!r} must be {want}, got {value!r}")
        if rule and isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value) or not S.in_range(value, rule):
                raise UserError(f"{prefix}parameter {key!r} of method {method!r} must be {rule}, got {value!r}")
        if choices and value not in choices:
            raise UserError(f"{prefix}parameter {key!r} of method {method!r} must be one of "
                            f"{', '.join(map(str, choices))}; got {value!r}")


def describe_params() -> list[str]:
    """Lines of ``unlearnbench ls methods --params``: the shared settings once, then per method
    its own settings and the shared defaults it changes, each with its default and doc."""
    from dataclasses import fields

    from unlearnbench.registry import methods

    def row(name, default, doc):
        return f"  {name:<28} {default!r:<12} {doc}"

    lines = []
    for group in S.SHARED:
        lines.append(f"{group.__name__} (every method): {inspect.getdoc(group).splitlines()[0]}")
        lines += [row(f.name, S.default_of(f), f.metadata["doc"]) for f in fields(group)]
    lines.append("runner options (every method; read by the training loop, not the method)")
    lines += [row(k, None, doc) for k, (_, _, doc) in HARNESS_PARAMS.items()]
    for name in methods.names():
        try:
            cls = methods.get(name)
        except Exception as exc:  # a broken plugin: say so, list the others
            lines.append(f"{name}: [broken] {exc}")
            continue
        if not isinstance(cls, type):
            lines.append(f"{name}: (a factory: its parameters are not declared)")
            continue
        own = getattr(cls, "Settings", None)
        rows = [row(f.name, S.default_of(f), f.metadata["doc"]) for f in fields(own)] if own else []
        for key, value in getattr(cls, "shared_defaults", {}).items():
            f = S.field_of(cls, key)
            how = "; unset: the method picks it, see its docstring" if value is None else ""
            rows.append(row(key, value, f"this method's default of the shared {key}{how} ({f.metadata['doc']})"))
        for key, p in _legacy_keywords(cls).items():
            rows.append(row(key, None if p.default is inspect.Parameter.empty else p.default, "(no doc: a keyword "
                            "of the class's __init__)"))
        lines.append(f"{name}:" + ("" if rows else " (the shared settings only)"))
        lines += rows
    return lines
