"""What a grid job's ``result.json`` holds: its kind, its status, and the failed result.

The runner writes these files and the report reads them, so the format is their contract.
It lives here, on the reader's side, because the report may not import the runner
(tests/test_package_edges.py); the runner's job type (``runner.jobs.Job``) builds on it.

Committed results directories are compared with a new grid key by key
(``runner.run.cell_state``), so the keys and values written here must not change.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Mapping, TypedDict


class Kind(str, Enum):
    """What a job is. The value is the ``kind`` string of cell.json and result.json; a ``str``
    enum, so that a result's string (and a pandas column of them) compares equal to it."""

    REF = "ref"  # a reference model (target, retain, ...), evaluated once per block
    CELL = "cell"  # a method cell: unlearn, then evaluate
    ATTACK = "attack"  # a robustness attack on a reference's or a cell's model

    @classmethod
    def of(cls, record: Mapping[str, Any]) -> Kind:
        """The kind of a job or result dict; ``cell`` where it has none (the format's first
        results had no ``kind``: every job was a cell)."""
        return cls(record.get("kind") or cls.CELL.value)

    @property
    def group(self) -> str:
        """The plural the grid counts and times jobs by, and (references, cells) the
        directory of a results tree they live in."""
        return {Kind.REF: "refs", Kind.CELL: "cells", Kind.ATTACK: "attacks"}[self]


class Status(str, Enum):
    OK = "ok"
    FAILED = "failed"
    # A method that cannot train on its benchmark's data shape (or an attack on such a
    # cell): done, nothing to retry, listed apart from the failures.
    NOT_APPLICABLE = "not_applicable"


NOT_APPLICABLE = Status.NOT_APPLICABLE.value


# What the report asks of a result (or of a row of its table). Unlike ``Kind.of`` these never
# raise: a result file with an odd ``kind`` is still a row to show, not a report that fails.
def _kind(record: Mapping[str, Any]) -> str:
    return record.get("kind") or Kind.CELL.value


def is_ref(record: Mapping[str, Any]) -> bool:
    return _kind(record) == Kind.REF.value


def is_cell(record: Mapping[str, Any]) -> bool:
    return _kind(record) == Kind.CELL.value


def is_attack(record: Mapping[str, Any]) -> bool:
    return _kind(record) == Kind.ATTACK.value


class Result(TypedDict, total=False):
    """The keys of a ``result.json``. Every result has the identity (``result_base``) and
    ``status``; an ok one adds what its job measured (``summary``, ``metrics``, ``cost``,
    ``benchmark_meta``, ...: see docs/running.md), a failed one ``error`` and ``traceback``,
    a not-applicable one ``reason``. The job process adds ``elapsed_s`` and ``provenance``."""

    cell_id: str
    kind: str
    attack: str  # attacks only: the attack's name ...
    parent: str  # ... and the id of the job it attacked
    method: str | None
    method_label: str | None
    benchmark: str
    split: str
    model: str
    seed: int | None
    config: dict  # the job's cell.json: what decides whether the result is still valid
    status: str
    error: str | None
    traceback: str
    reason: str
    elapsed_s: float
    provenance: dict


def result_base(config: Mapping[str, Any]) -> dict:
    """The identity every result of the job ``config`` (its cell.json) starts with."""
    base: dict[str, Any] = {"cell_id": config["cell_id"], "kind": Kind.of(config).value}
    if Kind.of(config) is Kind.ATTACK:  # which attack, on which job: the report folds it there
        base.update(attack=config["attack"], parent=config["parent"])
    base.update(method=config.get("method"), method_label=config.get("label"), benchmark=config["benchmark"],
                split=config["split"], model=config["model"], seed=config.get("seed"), config=config)
    return base


def failed_result(config: Mapping[str, Any], error: str | None, traceback: str = "",
                  status: Status = Status.FAILED, reason: str | None = None) -> Result:
    """The result of a job that did not produce one: it raised (``error``, the traceback's
    tail), its process died, it cannot run (``reason``; ``status`` not applicable when that
    is not a failure)."""
    result = {**result_base(config), "status": status.value, "error": error, "traceback": traceback}
    if reason is not None:
        result["reason"] = reason
    return result  # type: ignore[return-value]
