"""Grid specs (YAML under ``benchmarks/``) and their expansion into cells with stable ids.

A grid names methods (with hyper-parameters, or sweeps of them), a benchmark and its
split(s), models, seeds, a strategy and a device count. Every cell gets the same shared
defaults, then the tiny-model defaults when the model is a tiny one, then its own params.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from unlearnbench.registry import benchmarks, methods, models
from unlearnbench.runner.strategies import STRATEGIES

GRID_KEYS = {"name", "description", "benchmark", "splits", "models", "seeds", "strategy",
             "devices", "num_nodes", "defaults", "tiny_defaults", "methods", "eval",
             "references", "published", "keep_models"}
METHOD_KEYS = {"name", "label", "params", "sweep"}
EVAL_KEYS = {"batch_size", "max_new_tokens", "max_items"}


class GridError(ValueError):
    pass


@dataclass
class Cell:
    """One (method config, benchmark split, model, seed) run."""

    cell_id: str
    method: str
    label: str
    benchmark: str
    split: str
    model: str
    seed: int
    params: dict
    strategy: str = "single"
    devices: int = 1
    num_nodes: int = 1
    eval: dict = field(default_factory=dict)
    keep_model: bool = False

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Grid:
    name: str
    raw: dict
    cells: list[Cell]
    references: dict
    published: dict
    path: Path | None = None


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "-", text).strip("-")


def _check_keys(where: str, got: dict, allowed: set[str]) -> None:
    unknown = sorted(set(got) - allowed)
    if unknown:
        raise GridError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")


def _sweep(entry: dict) -> list[tuple[str, dict]]:
    """(label, params) for each point of a method entry's sweep (or the entry itself)."""
    base = dict(entry.get("params") or {})
    sweep = entry.get("sweep") or {}
    label = entry.get("label") or entry["name"]
    if not sweep:
        return [(label, base)]
    keys = sorted(sweep)
    for k in keys:
        if not isinstance(sweep[k], list) or not sweep[k]:
            raise GridError(f"method {entry['name']!r}: sweep {k!r} must be a non-empty list")
    points = []
    for values in itertools.product(*(sweep[k] for k in keys)):
        params = {**base, **dict(zip(keys, values))}
        points.append((f"{label}[{','.join(f'{k}={v}' for k, v in zip(keys, values))}]", params))
    return points


def load_grid(path: str | Path, model: str | None = None) -> Grid:
    """Read and validate a grid YAML; ``model`` replaces the grid's models (``MODEL=``)."""
    path = Path(path)
    if not path.is_file():
        raise GridError(f"grid file {path} does not exist; shipped grids: "
                        f"{', '.join(str(p) for p in sorted(Path('benchmarks').glob('*.yaml')))}")
    raw = yaml.safe_load(path.read_text()) or {}
    return parse_grid(raw, model=model, path=path)


def parse_grid(raw: dict, model: str | None = None, path: Path | None = None) -> Grid:
    where = str(path or "grid")
    _check_keys(where, raw, GRID_KEYS)
    for key in ("name", "benchmark", "methods"):
        if key not in raw:
            raise GridError(f"{where}: missing required key {key!r}")
    model_names = [model] if model else list(raw.get("models") or ["tiny"])
    for m in model_names:
        if m not in models and not Path(m).is_dir():
            raise GridError(f"{where}: {models.unknown_message(m)}")
    strategy = raw.get("strategy", "single")
    if strategy not in STRATEGIES:
        raise GridError(f"{where}: unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    _check_keys(f"{where}: eval", raw.get("eval") or {}, EVAL_KEYS)
    seeds = [int(s) for s in raw.get("seeds") or [42]]
    splits = list(raw.get("splits") or ["forget10"])
    cells: list[Cell] = []
    for m in model_names:
        spec = models.get(m) if m in models else None
        bench = raw["benchmark"]
        if spec is not None and not spec.is_tiny and bench == "tofu-synth":
            bench = "tofu"  # a real model is evaluated on the real dataset
        if bench not in benchmarks:
            raise GridError(f"{where}: {benchmarks.unknown_message(bench)}")
        defaults = dict(raw.get("defaults") or {})
        if spec is None or spec.is_tiny:
            defaults.update(raw.get("tiny_defaults") or {})
        for entry in raw["methods"]:
            entry = {"name": entry} if isinstance(entry, str) else dict(entry)
            _check_keys(f"{where}: method {entry.get('name')!r}", entry, METHOD_KEYS)
            if entry.get("name") not in methods:
                raise GridError(f"{where}: {methods.unknown_message(str(entry.get('name')))}")
            for label, params in _sweep(entry):
                for split, seed in itertools.product(splits, seeds):
                    cell_id = "__".join(_slug(x) for x in (label, f"{bench}-{split}", Path(m).name, f"s{seed}"))
                    cells.append(Cell(cell_id, entry["name"], label, bench, split, m, seed,
                                      {**defaults, **params}, strategy, int(raw.get("devices", 1)),
                                      int(raw.get("num_nodes", 1)), dict(raw.get("eval") or {}),
                                      bool(raw.get("keep_models", False))))
    ids = [c.cell_id for c in cells]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise GridError(f"{where}: duplicate cell ids {dupes}; give the method entries distinct labels")
    name = raw["name"] if not model else f"{raw['name']}-{_slug(Path(model).name)}"
    return Grid(name, raw, cells, dict(raw.get("references") or {}), dict(raw.get("published") or {}), path)
