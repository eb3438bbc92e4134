"""A method's settings, declared as dataclasses: what each one means, its default, its checks.

Three groups every method shares, held by ``base.UnlearningMethod``:

* ``LoopSettings``: the shared training loop (optimiser, schedule, batch, clipping, seed);
* ``LossWeights``: γ and λ, the weights of the forget and retain terms;
* ``RunOptions``: how the run is carried out (reference model, LoRA, checkpointing, parity).

A method with hyper-parameters of its own declares them as a dataclass in its own file and
names it ``Settings = ...`` on the class; a method may also change the default of a shared
setting with ``shared_defaults = {"lr": 1e-4}``. A grid's ``params:`` (and ``--set``) stay one
flat mapping: its keys are split among these groups by field name (``split``).

Every field is made with ``setting(default, doc, range=..., choices=...)``: the one-line doc
and the default are what ``unlearnbench ls methods --params`` prints, the range and choices are
checked twice, when a grid is read (``check_params``, one line naming the parameter) and
when the method is built (``check``), before any model is loaded. Both read the rules here.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import MISSING, dataclass, field, fields

from unlearnbench.errors import UserError


def setting(default, doc: str, *, range: str | None = None, choices: tuple | None = None):
    """A dataclass field with its one-line ``doc``, an optional ``range`` ("> 0", ">= 1",
    "(0, 1]") and ``choices``; a mutable default (a list) is copied per instance."""
    meta = {"doc": doc, "range": range, "choices": choices}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class LoopSettings:
    """The shared training loop (docs/methods.md §3).

    The same for every method, so that a comparison holds the optimiser and the schedule fixed."""

    lr: float = setting(1e-5, "peak learning rate of AdamW (linear warm-up, then linear decay to 0)", range="> 0")
    weight_decay: float = setting(0.01, "AdamW's decoupled weight decay (matrices only; biases and norms get 0)",
                                  range=">= 0")
    warmup_epochs: float = setting(1.0, "length of the linear warm-up, in epochs of the forget data", range=">= 0")
    epochs: int = setting(5, "passes over the forget set (ignored when steps is set)", range=">= 1")
    steps: int | None = setting(None, "a fixed budget of optimiser steps instead of epochs (the forget data "
                                      "cycles); unset: epochs", range=">= 1")
    batch_size: int = setting(32, "global forget batch per optimiser step, split over the ranks (must divide)",
                              range=">= 1")
    grad_clip: float = setting(1.0, "clip the total gradient norm to this value (0 disables)", range=">= 0")
    seed: int = setting(42, "seeds the data order, the per-batch draws and any random vector; set per cell "
                            "by the grid's seeds: (or --seed), not a parameter")


@dataclass
class LossWeights:
    """γ and λ, the weights of the forget and retain terms (a method may change their defaults)."""

    gamma_forget: float = setting(1.0, "γ, weight of the forget term", range=">= 0")
    lambda_retain: float = setting(1.0, "λ, weight of the retain term (unused by forget-only methods)",
                                   range=">= 0")


@dataclass
class RunOptions:
    """How a run is carried out: reference model, LoRA, checkpointing, parity.

    None of them changes the loss, ``parity`` aside (the published definition or a public code's)."""

    reference: str = setting("cached", "cached: score the frozen reference once and free it (npo, npo_rt, dpo, "
                                       "altpo); resident: keep it loaded (the other methods always do)",
                             choices=("cached", "resident"))  # methods.reference.MODES
    lora: dict | None = setting(None, "{r, alpha, dropout, target_modules}: train LoRA adapters around frozen "
                                      "weights; unset: full fine-tuning")
    gradient_checkpointing: bool = setting(False, "recompute activations in the backward pass (memory for time)")
    parity: str = setting("paper", "paper: the published definition; reference/wagle: a public code's variant "
                                   "(the method's parities)")


SHARED = (LoopSettings, LossWeights, RunOptions)


def names(*groups) -> tuple[str, ...]:
    """The field names of these settings dataclasses, in declaration order."""
    return tuple(f.name for g in groups for f in fields(g))


def declared(cls) -> dict[str, tuple[type, object]]:
    """Every setting ``cls`` (a method class) takes: name -> (its group, its default for ``cls``)."""
    own = getattr(cls, "Settings", None)
    overrides = getattr(cls, "shared_defaults", {})
    out = {}
    for group in (*SHARED, *([own] if own else [])):
        for f in fields(group):
            out[f.name] = (group, overrides.get(f.name, default_of(f)))
    return out


def default_of(f):
    return f.default_factory() if f.default is MISSING else f.default


def field_of(cls, name: str):
    """The dataclass field of setting ``name`` of method class ``cls`` (None if it has none)."""
    own = getattr(cls, "Settings", None)
    for group in (*SHARED, *([own] if own else [])):
        for f in fields(group):
            if f.name == name:
                return f
    return None


def split(cls, params: dict) -> tuple[list, dict]:
    """Build (loop, weights, options, own settings or None) of ``cls`` from a flat ``params``,
    each group with ``cls.shared_defaults`` applied and checked; returns them and the keys no
    group has (the caller refuses or forwards those)."""
    params = dict(params)
    own = getattr(cls, "Settings", None)
    overrides = getattr(cls, "shared_defaults", {})
    built = []
    for group in (*SHARED, own):
        if group is None:
            built.append(None)
            continue
        keys = names(group)
        values = {k: params.pop(k) for k in keys if k in params}
        defaults = {k: v for k, v in overrides.items() if k in keys and k not in values}
        obj = group(**defaults, **values)
        check(obj, cls.name, coerce=group is own)
        built.append(obj)
    return built, params


def check(obj, method: str, *, coerce: bool = False) -> None:
    """Refuse a value of ``obj``'s fields that breaks its type, range or choices (one line
    naming the method and the setting, before any model is loaded). ``coerce``: store the
    number of a float field as a float (a method's own settings, read by its loss)."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        if value is None and default_of(f) is None:
            continue  # unset where unset is the default
        rule, choices = f.metadata.get("range"), f.metadata.get("choices")
        want = problem(value, types(f.type), rule, choices, allow_none=default_of(f) is None)
        if want:
            raise ValueError(f"method {method!r}: {f.name} must be {want}, got {value!r}")
        if coerce and "float" in types(f.type) and isinstance(value, int) and not isinstance(value, bool):
            setattr(obj, f.name, float(value))


# -- the rules, shared with the grid-time check (check_params below) ------------------------------
WORDS = {"float": "a number", "int": "an integer", "bool": "true or false", "str": "a string",
         "dict": "a mapping", "list": "a list", "tuple": "a list", "None": "unset (null)"}


def types(annotation) -> set[str]:
    """Base type names of an annotation (a string under ``from __future__ import annotations``)."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    return {part.strip().split("[")[0] for part in text.split("|")}


def type_ok(value, names: set[str]) -> bool:
    if not names or "Any" in names:
        return True
    checks = {"float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
              "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
              "bool": lambda v: isinstance(v, bool), "str": lambda v: isinstance(v, str),
              "dict": lambda v: isinstance(v, dict), "list": lambda v: isinstance(v, (list, tuple, range)),
              "tuple": lambda v: isinstance(v, (list, tuple, range)), "None": lambda v: v is None}
    known = [checks[t] for t in names if t in checks]
    return not known or len(known) < len(names) or any(c(value) for c in known)


def in_range(value, rule: str) -> bool:
    rule = rule.strip()
    if rule[0] in "([":  # "(0, 1]"
        lo, hi = (float(x) for x in rule[1:-1].split(","))
        return ((value > lo) if rule[0] == "(" else (value >= lo)) and \
            ((value < hi) if rule[-1] == ")" else (value <= hi))
    op, bound = rule.split()
    bound = float(bound)
    return {">": value > bound, ">=": value >= bound, "<": value < bound, "<=": value <= bound}[op]


def problem(value, names: set[str], rule: str | None, choices, *, allow_none: bool = False) -> str | None:
    """What ``value`` must be, when it breaks the type ``names``, the range ``rule`` or the
    ``choices``; None when it is fine. A number must be finite."""
    names = names | ({"None"} if allow_none else set())
    if not type_ok(value, names):
        want = " or ".join(sorted({WORDS.get(t, t) for t in names}))
        if rule and ("int" in names) and isinstance(value, (int, float)):
            return f"an integer {rule}" + (" or unset" if "None" in names else "")
        return want
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            return rule or "finite"
        if rule and not in_range(value, rule):
            return rule
    if choices and value not in choices:
        return f"one of {', '.join(map(str, choices))}"
    return None


def unknown(method: str, key, known, prefix: str = "") -> UserError:
    """The one-line error for a parameter ``method`` does not take, with the closest name."""
    import difflib

    close = difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return UserError(f"{prefix}unknown parameter {key!r} for method {method!r}{hint}; "
                     f"known: {', '.join(sorted(known))}")


# -- a method's parameters checked before anything runs ------------------------------------
# A grid is checked when it is read (``--dry-run`` included) and ``--set`` before a target is
# built or a reference evaluated, so a typo costs one line, not a cell's worth of compute:
# names against the settings the method declares, types against their annotations, values
# against their ranges and choices. A plugin class may still take keywords in its own
# ``__init__`` and declare ``param_ranges = {"floor": "(0, 1)"}`` and ``param_choices``; those
# are checked too (by name, annotation and range).

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
    return (set(declared(cls)) | set(_legacy_keywords(cls))) - HARNESS_SET


def _rule(cls, key: str):
    """(type names, range, choices, default) of parameter ``key`` of ``cls``."""
    if key in HARNESS_PARAMS:
        return {HARNESS_PARAMS[key][0]}, HARNESS_PARAMS[key][1], None, None
    f = field_of(cls, key)
    if f is not None:
        default = declared(cls)[key][1]
        return types(f.type), f.metadata.get("range"), f.metadata.get("choices"), default
    p = _legacy_keywords(cls).get(key)
    if p is None:
        return set(), None, None, None
    ann = p.annotation
    names = (types(ann) if ann is not inspect.Parameter.empty
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
    inner = params.get(attr, declared(cls)[attr][1] if attr in declared(cls) else None) if attr else None
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
            raise unknown(method, key, known, prefix)
        names, rule, choices, default = _rule(cls, key)
        if key in own and default is None:
            names = names | {"None"}
        if not type_ok(value, names):
            want = " or ".join(sorted({WORDS.get(t, t) for t in names}))
            raise UserError(f"{prefix}parameter {key!r} of method {method!r} must be {want}, got {value!r}")
        if rule and isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value) or not in_range(value, rule):
                raise UserError(f"{prefix}parameter {key!r} of method {method!r} must be {rule}, got {value!r}")
        if choices and value not in choices:
            raise UserError(f"{prefix}parameter {key!r} of method {method!r} must be one of "
                            f"{', '.join(map(str, choices))}; got {value!r}")


def describe_params() -> list[str]:
    """Lines of ``unlearnbench ls methods --params``: the shared settings once, then per method
    its own settings and the shared defaults it changes, each with its default and doc."""
    from unlearnbench.registry import methods

    def row(name, default, doc):
        return f"  {name:<28} {default!r:<12} {doc}"

    lines = []
    for group in SHARED:
        lines.append(f"{group.__name__} (every method): {inspect.getdoc(group).splitlines()[0]}")
        lines += [row(f.name, default_of(f), f.metadata["doc"]) for f in fields(group)]
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
        rows = [row(f.name, default_of(f), f.metadata["doc"]) for f in fields(own)] if own else []
        for key, value in getattr(cls, "shared_defaults", {}).items():
            f = field_of(cls, key)
            how = "; unset: the method picks it, see its docstring" if value is None else ""
            rows.append(row(key, value, f"this method's default of the shared {key}{how} ({f.metadata['doc']})"))
        for key, p in _legacy_keywords(cls).items():
            rows.append(row(key, None if p.default is inspect.Parameter.empty else p.default, "(no doc: a keyword "
                            "of the class's __init__)"))
        lines.append(f"{name}:" + ("" if rows else " (the shared settings only)"))
        lines += rows
    return lines
