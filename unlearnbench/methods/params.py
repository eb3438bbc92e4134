"""A method's hyper-parameters checked before anything runs: names against the constructor's
signature, types against its annotations, values against the ranges the class declares.

A grid is checked when it is read (``--dry-run`` included) and ``--set`` before a target is
built or a reference evaluated, so a typo costs one line, not a cell's worth of compute.
A class declares ranges as ``param_ranges = {"beta": "> 0", "ratio": "(0, 1]"}`` and choices
as ``param_choices = {"divergence": ("kl", ...)}``; the ones of every class it derives from
apply too.
"""

from __future__ import annotations

import difflib
import inspect
import math

from unlearnbench.errors import UserError

# Set by the harness per cell, never a hyper-parameter.
HARNESS_SET = {"model_path", "model", "dtype", "ref_dtype", "seed"}
_NOT_PARAMS = {"self"} | HARNESS_SET
# Read by the training loop (runner.train.unlearn), not by the method's constructor.
# eval_every / keep: read by the runner (runner.periodic_eval, which checks them itself).
HARNESS_PARAMS = {"max_steps": ("int", ">= 1"), "micro_batch_size": ("int", ">= 1"),
                  "eval_every": ("Any", None), "keep": ("Any", None)}


def _signature_params(cls) -> dict[str, inspect.Parameter]:
    """Keyword parameters of ``cls.__init__`` and, through ``**kwargs``, of its bases."""
    out: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters
        for name, p in params.items():
            if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and name not in _NOT_PARAMS:
                out.setdefault(name, p)
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            break
    return out


def _declared(cls, attr: str) -> dict:
    out: dict = {}
    for klass in reversed(cls.__mro__):
        out.update(klass.__dict__.get(attr, {}))
    return out


def _types(p: inspect.Parameter) -> set[str]:
    """Base type names of a parameter from its (string) annotation, else from its default."""
    ann = p.annotation
    if ann is inspect.Parameter.empty:
        return {type(p.default).__name__} if p.default not in (None, inspect.Parameter.empty) else set()
    text = ann if isinstance(ann, str) else getattr(ann, "__name__", str(ann))
    return {part.strip().split("[")[0] for part in text.split("|")}


def _type_ok(value, types: set[str]) -> bool:
    if not types or "Any" in types:
        return True
    checks = {"float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
              "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
              "bool": lambda v: isinstance(v, bool), "str": lambda v: isinstance(v, str),
              "dict": lambda v: isinstance(v, dict), "list": lambda v: isinstance(v, (list, tuple)),
              "tuple": lambda v: isinstance(v, (list, tuple)), "None": lambda v: v is None}
    known = [checks[t] for t in types if t in checks]
    return not known or len(known) < len(types) or any(c(value) for c in known)


_WORDS = {"float": "a number", "int": "an integer", "bool": "true or false", "str": "a string",
          "dict": "a mapping", "list": "a list", "tuple": "a list", "None": "unset (null)"}


def _in_range(value, rule: str) -> bool:
    rule = rule.strip()
    if rule[0] in "([":  # "(0, 1]"
        lo, hi = (float(x) for x in rule[1:-1].split(","))
        return ((value > lo) if rule[0] == "(" else (value >= lo)) and \
            ((value < hi) if rule[-1] == ")" else (value <= hi))
    op, bound = rule.split()
    bound = float(bound)
    return {">": value > bound, ">=": value >= bound, "<": value < bound, "<=": value <= bound}[op]


def check_params(method: str, params: dict, data_options=(), where: str = "") -> None:
    """Raise a one-line ``UserError`` for the first unknown, mistyped or out-of-range parameter.

    ``data_options`` are the benchmark's data keys (they go to the data module, not the method).
    """
    from unlearnbench.registry import methods

    cls = methods.get(method)
    if not isinstance(cls, type):
        return  # a factory registered by a plugin: its constructor checks what it gets
    prefix = f"{where}: " if where else ""
    sig = _signature_params(cls)
    known = set(sig) | set(HARNESS_PARAMS) | set(data_options)
    # A wrapper (WAGLE) hands the keywords it does not take to the method it wraps.
    attr = getattr(cls, "delegates_to", None)
    inner = params.get(attr, sig[attr].default if attr in sig else None) if attr else None
    inner_known: set[str] = set()
    if isinstance(inner, str) and inner in methods and isinstance(methods.get(inner), type):
        inner_known = set(_signature_params(methods.get(inner)))
        passed = {k: v for k, v in params.items() if k in inner_known - set(sig)}
        check_params(inner, passed, data_options, where)
        known |= inner_known
    for key, value in params.items():
        if key in inner_known - set(sig):
            continue  # checked against the wrapped method above
        if key == "seed":
            raise UserError(f"{prefix}'seed' is the cell's seed, not a parameter of method {method!r}; "
                            "set `seeds:` in the grid (or --seed)")
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UserError(f"{prefix}unknown parameter {key!r} for method {method!r}{hint}; "
                            f"known: {', '.join(sorted(known))}")
        types = {HARNESS_PARAMS[key][0]} if key in HARNESS_PARAMS else (_types(sig[key]) if key in sig else set())
        if key in sig and sig[key].default is None:
            types.add("None")
        if not _type_ok(value, types):
            want = " or ".join(sorted({_WORDS.get(t, t) for t in types}))
            raise UserError(f"{prefix}parameter {key!r} of method {method!r} must be {want}, got {value!r}")
        rule = HARNESS_PARAMS[key][1] if key in HARNESS_PARAMS else _declared(cls, "param_ranges").get(key)
        if rule and isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value) or not _in_range(value, rule):
                raise UserError(f"{prefix}parameter {key!r} of method {method!r} must be {rule}, got {value!r}")
        choices = _declared(cls, "param_choices").get(key)
        if choices and value not in choices:
            raise UserError(f"{prefix}parameter {key!r} of method {method!r} must be one of "
                            f"{', '.join(map(str, choices))}; got {value!r}")
