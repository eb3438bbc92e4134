"""Grid specs (YAML under ``benchmarks/``) and their expansion into cells with stable ids.

A grid names methods (with hyper-parameters, or sweeps of them), a benchmark and its
split(s), models, seeds, a strategy and a device count. Every cell gets the same shared
defaults, then the tiny-model defaults when the model is a tiny one, then its own params.
"""

from __future__ import annotations

import difflib
import functools
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from unlearnbench.benchmarks.base import Benchmark
from unlearnbench.errors import UserError
from unlearnbench.methods.settings import check_params
from unlearnbench.registry import benchmarks, methods, models
from unlearnbench.report import published as published_rows
from unlearnbench.runner.trainer_setup import STRATEGIES, logger_spec

SHIPPED_DIR = Path(__file__).resolve().parents[2] / "benchmarks"

GRID_KEYS = {"name", "description", "benchmark", "splits", "models", "seeds", "strategy", "real_models",
             "devices", "num_nodes", "defaults", "tiny_defaults", "real_defaults", "methods", "eval",
             "references", "published", "keep_models", "chain", "data_dir", "attacks", "logger", "select",
             "plugins", "eval_every", "keep"}
METHOD_KEYS = {"name", "label", "params", "sweep", "real_params", "tiny_params", "benchmark_params", "split_params"}


class GridError(UserError):
    """A grid (or a grid option) is wrong; printed as one line, exit status 2."""


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
    start_from: str | None = None  # a sequential chain's previous step (its cell id)
    chain: str | None = None
    step: int | None = None
    data_dir: str | None = None
    logger: dict = field(default_factory=dict)  # an experiment logger besides the CSV log
    select: bool = False  # a sweep picks its setting on validation items; rows report test items
    entry: str = ""  # the method entry's label (sweep points share it)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Grid:
    name: str
    raw: dict
    cells: list[Cell]
    references: dict
    published: list  # groups keyed by (benchmark, split, model, source): report.published
    path: Path | None = None
    attacks: dict = field(default_factory=dict)  # attack name -> its parameters
    plugins: list[str] = field(default_factory=list)  # the grid's own plugins, resolved
    method_checks: list = field(default_factory=list, repr=False, compare=False)  # check_methods=False

    def check_methods(self) -> None:
        """Run the method checks ``parse_grid`` left (raises GridError; a no-op once done)."""
        while self.method_checks:
            self.method_checks[0]()  # a check that fails stays, and fails again if called again
            self.method_checks.pop(0)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "-", text).strip("-")


def _check_keys(where: str, got: dict, allowed: set[str]) -> None:
    unknown = sorted(set(got) - allowed, key=str)
    if unknown:
        hints = [f"{k!r} -> {close[0]!r}" for k in unknown
                 if (close := difflib.get_close_matches(str(k), sorted(allowed), n=1, cutoff=0.6))]
        hint = f" (did you mean {', '.join(hints)}?)" if hints else ""
        raise GridError(f"{where}: unknown key(s) {unknown}{hint}; allowed: {sorted(allowed)}")


def _mapping(where: str, value, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise GridError(f"{where}: {what} must be a mapping (key: value), got {type(value).__name__} {value!r}")
    return dict(value)


def _list(where: str, value, what: str, default: list) -> list:
    if value is None:
        return list(default)
    if not isinstance(value, list) or not value:
        raise GridError(f"{where}: {what} must be a non-empty list, got {value!r}")
    return value


def _int(where: str, value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise GridError(f"{where}: {what} must be an integer, got {value!r}")
    return value


# A cell id is a directory name; 255 bytes is the usual file-name limit, and the attack
# directories, temp files (".result.json.<pid>.<hex>.tmp") and chain suffixes need room.
MAX_ID_BYTES = 200


def _check_name(where: str, name) -> None:
    """A grid name is one directory under the results root: nothing that could leave it."""
    text = str(name)
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.=+-]*", text) or len(text.encode()) > MAX_ID_BYTES:
        raise GridError(f"{where}: name {text[:60]!r} must be a plain directory name of at most "
                        f"{MAX_ID_BYTES} characters (letters, digits, _ . = + -, not starting with '.'); "
                        "results go to results/<name>")


def _sweep(entry: dict, grid_where: str = "grid") -> list[tuple[str, dict, dict]]:
    """(label, params, swept values) for each point of a method entry's sweep (or the entry)."""
    where = f"{grid_where}: method {entry['name']!r}"
    base = _mapping(where, entry.get("params"), "params")
    sweep = _mapping(where, entry.get("sweep"), "sweep")
    label = str(entry.get("label") or entry["name"])
    if not sweep:
        return [(label, base, {})]
    keys = sorted(sweep)
    for k in keys:
        if not isinstance(sweep[k], list) or not sweep[k]:
            raise GridError(f"{where}: sweep {k!r} must be a non-empty list")
    points = []
    for values in itertools.product(*(sweep[k] for k in keys)):
        params = {**base, **dict(zip(keys, values))}
        points.append((f"{label}[{','.join(f'{k}={v}' for k, v in zip(keys, values))}]", params,
                       dict(zip(keys, values))))
    return points


def _keyed(where: str, entry: dict, key: str, known: list[str]) -> dict[str, dict]:
    """``benchmark_params`` / ``split_params``: a mapping from a benchmark / split of the grid to parameters."""
    value = _mapping(f"{where}: method {entry['name']!r}", entry.get(key), key)
    if unknown := sorted(set(value) - set(known)):
        raise GridError(f"{where}: method {entry['name']!r}: {key} names {unknown}, which the grid does not run; "
                        f"use one of {', '.join(known)}")
    return {k: _mapping(f"{where}: method {entry['name']!r}", v, f"{key}.{k}") for k, v in value.items()}


def _placement(where: str, block: dict) -> tuple[str, int, int]:
    """(strategy, devices, num_nodes), validated; devices -1 means every visible GPU."""
    strategy = block.get("strategy", "single")
    if strategy not in STRATEGIES:
        raise GridError(f"{where}: unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    devices = _int(where, block.get("devices", 1), "devices")
    num_nodes = _int(where, block.get("num_nodes", 1), "num_nodes")
    if (devices < 1 and devices != -1) or num_nodes < 1:
        raise GridError(f"{where}: devices must be >= 1 (or -1 for all GPUs) and num_nodes >= 1, "
                        f"got {devices} and {num_nodes}")
    if strategy == "single" and (devices != 1 or num_nodes != 1):
        raise GridError(f"{where}: strategy 'single' runs on one device; use 'ddp' or 'fsdp' "
                        f"for devices={devices}, num_nodes={num_nodes}")
    return strategy, devices, num_nodes


def _benchmark(where: str, name: str, kind: str):
    """The benchmark class a grid names; a real model runs on the real benchmark a stand-in
    stands for (``make bench MODEL=llama2-7b`` on the default grid evaluates on real TOFU)."""
    if name not in benchmarks:
        raise GridError(f"{where}: {benchmarks.unknown_message(name)}")
    cls = benchmarks.get(name)
    if kind == "real" and getattr(cls, "stand_in_for", None):
        return _benchmark(where, cls.stand_in_for, kind)
    return cls


def _attacks(where: str, raw: dict) -> dict:
    """``attacks: [relearn, quant4]`` or ``{relearn: {fraction: 0.5}, quant4: {}}``, validated."""
    from unlearnbench.registry import attacks

    value = raw.get("attacks") or {}
    if isinstance(value, list):
        value = {str(a): {} for a in value}
    if not isinstance(value, dict):
        raise GridError(f"{where}: attacks must be a list of names or a mapping name -> parameters, got {value!r}")
    out = {}
    for name, params in value.items():
        if name not in attacks:
            raise GridError(f"{where}: {attacks.unknown_message(str(name))}")
        params = _mapping(where, params, f"attack {name!r} parameters")
        try:
            attacks.get(name)(**params)  # unknown parameters fail here, not hours later
        except ValueError as exc:
            raise GridError(f"{where}: {exc}") from exc
        out[str(name)] = params
    return out


def _check_method(where: str, label: str, name: str, bench_cls, merged: list[dict]) -> None:
    """A method entry's parameters (one dict per split variant): a parity the method does not
    offer, and names, types and ranges, fail before any target is built or reference evaluated."""
    from unlearnbench.methods.base import check_parity

    try:
        for params in merged:
            check_parity(methods.get(name), params)
    except ValueError as exc:
        raise GridError(f"{where}: {exc}") from exc
    for params in merged:
        check_params(name, params, bench_cls.data_options, where=f"{where}: method {label!r}")


def _bench_names(where: str, raw: dict) -> list[str]:
    """``benchmark:`` is one name or a list of names (e.g. LLMU's three scenarios)."""
    value = raw["benchmark"]
    names = value if isinstance(value, list) else [value]
    if not names or not all(isinstance(n, str) for n in names):
        raise GridError(f"{where}: benchmark must be a name or a non-empty list of names, got {value!r}")
    if len(names) > 1 and (raw.get("splits") is not None or raw.get("chain") is not None):
        raise GridError(f"{where}: with several benchmarks each runs its default split; "
                        "drop `splits`/`chain` or use one benchmark per grid")
    return names


def _per_benchmark(options: dict, names: list[str], name: str) -> dict:
    """``eval:`` as one mapping for every benchmark, or keyed by benchmark name."""
    if options and all(k in names for k in options):
        return dict(options.get(name) or {})
    return dict(options)


def _check_periodic(where: str, params: dict, bench_cls, select) -> None:
    """``eval_every`` / ``keep`` of a cell (runner.periodic_eval), checked at grid-read time."""
    from unlearnbench.runner.eval_every import check

    try:
        _, keep = check(params, bench_cls)
    except ValueError as exc:
        raise GridError(f"{where}: {exc}") from exc
    if keep["keep"] == "best" and not select:
        raise GridError(f"{where}: keep: best chooses a checkpoint on validation items; add `select: validation` "
                        "so the leaderboard reports the test items only")


def _splits(where: str, raw: dict, bench_cls) -> tuple[list[str], tuple | None]:
    """The forget splits of a grid, or of its ``chain:`` (name, Chain)."""
    if raw.get("chain") is not None:
        if raw.get("splits") is not None:
            raise GridError(f"{where}: give either `splits` or `chain`, not both (a chain names its splits)")
        try:
            chain = bench_cls.chain(str(raw["chain"]))
        except ValueError as exc:
            raise GridError(f"{where}: {exc}") from exc
        return list(chain.splits), (str(raw["chain"]), chain)
    splits = [str(s) for s in _list(where, raw.get("splits"), "splits", [bench_cls.default_split])]
    for split in splits:
        try:
            bench_cls.check_split(split)
        except ValueError as exc:
            raise GridError(f"{where}: {exc}") from exc
    return splits, None


def _local_data_dir(model: str, bench: str) -> str | None:
    """The data directory a local model directory's unlearnbench.json names for ``bench``
    (``{"data": {"tofu": DIR}}``, written by ``unlearnbench rehearse``), used when the grid names none."""
    import json

    meta = Path(model) / "unlearnbench.json"
    if not meta.is_file():
        return None
    data = json.loads(meta.read_text()).get("data")
    return data.get(bench) if isinstance(data, dict) else None


def parse_seeds(text: str) -> list[int]:
    """``--seeds 42,43`` -> [42, 43]."""
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        seeds = []
    if not seeds:
        raise GridError(f"--seeds {text!r}: give integers separated by commas, e.g. --seeds 42,43")
    return seeds


def grid_plugins(raw, path: Path | None) -> list[str]:
    """The grid's ``plugins:``: a ``.py`` path (relative to the grid file) or a module name.

    Paths are made absolute so every cell process, started elsewhere, finds them."""
    value = raw.get("plugins") if isinstance(raw, dict) else None
    if value is None:
        return []
    where = str(path or "grid")
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(p, str) and p for p in items):
        raise GridError(f"{where}: plugins must be a list of .py files (relative to the grid file) "
                        f"or module names, got {value!r}")
    base = path.resolve().parent if path is not None else Path.cwd()
    out = []
    for item in items:
        if item.endswith(".py") or "/" in item:
            file = (base / item).resolve()
            if not file.is_file():
                raise GridError(f"{where}: plugin {item!r} is not a file (looked for {file}); "
                                "plugin paths are relative to the grid file")
            out.append(str(file))
        else:
            out.append(item)
    return out


def load_grid(path: str | Path, model: str | None = None, attacks: list[str] | None = None,
              seeds: list[int] | None = None, check_methods: bool = True) -> Grid:
    """Read and validate a grid YAML; ``model`` replaces the grid's models (``MODEL=``),
    ``attacks`` its robustness attacks (``ATTACKS=``) and ``seeds`` its seeds (``--seeds``).
    The grid's ``plugins:`` are loaded first: they may register what the grid names."""
    path = Path(path)
    if not path.is_file():
        shipped = sorted(SHIPPED_DIR.glob("*.yaml"))
        raise GridError(f"grid file {path} does not exist; shipped grids: "
                        f"{', '.join(str(p) for p in shipped) or '(none found)'}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise GridError(f"{path}: not valid YAML: {exc}") from exc
    raw = {} if raw is None else raw
    if attacks is not None and isinstance(raw, dict):
        raw = {**raw, "attacks": attacks}
    if seeds is not None and isinstance(raw, dict):
        raw = {**raw, "seeds": list(seeds)}
    from unlearnbench.registry import load_plugin

    plugins = grid_plugins(raw, path)
    for plugin in plugins:
        load_plugin(plugin)
    grid = parse_grid(raw, model=model, path=path, check_methods=check_methods)
    grid.plugins = plugins
    return grid


def parse_grid(raw: dict, model: str | None = None, path: Path | None = None, check_methods: bool = True) -> Grid:
    """The grid's cells, every key checked. ``check_methods=False`` leaves the checks that load
    each method's class (its parities and parameters) to ``Grid.check_methods``: loading one
    imports Lightning (about 4 s), so a grid that is about to run checks its model and data
    references first (runner.run) and answers an offline hub id in a second or two."""
    where = str(path or "grid")
    if not isinstance(raw, dict):
        raise GridError(f"{where}: a grid must be a mapping of keys ({', '.join(sorted(GRID_KEYS))}), "
                        f"got {type(raw).__name__}")
    _check_keys(where, raw, GRID_KEYS)
    for key in ("name", "benchmark", "methods"):
        if key not in raw:
            raise GridError(f"{where}: missing required key {key!r}")
    _check_name(where, raw["name"])
    model_names = [model] if model else [str(m) for m in _list(where, raw.get("models"), "models", ["tiny"])]
    for m in model_names:
        if m not in models and not Path(m).is_dir():
            raise GridError(f"{where}: {models.unknown_message(m)}")
        if m not in models:
            from unlearnbench.models.local import check_model_dir

            check_model_dir(m)
    placement = _placement(where, raw)
    # Real models (`make bench MODEL=llama2-7b`) may need another placement than the
    # CPU stand-in grid, e.g. FSDP over every visible GPU.
    real_block = _mapping(where, raw.get("real_models"), "real_models")
    _check_keys(f"{where}: real_models", real_block, {"strategy", "devices", "num_nodes"})
    real_placement = _placement(f"{where}: real_models", {**raw, **real_block}) if real_block else placement
    eval_kw = _mapping(where, raw.get("eval"), "eval")
    seeds = [_int(where, s, "every seed") for s in _list(where, raw.get("seeds"), "seeds", [42])]
    method_entries = _list(where, raw["methods"], "methods", [])
    refs = _mapping(where, raw.get("references"), "references")
    _check_keys(f"{where}: references", refs, {"retain_seeds"})
    for seed in _list(where, refs.get("retain_seeds"), "references.retain_seeds", [0, 1]):
        if _int(where, seed, "references.retain_seeds") < 0:
            raise GridError(f"{where}: references.retain_seeds are training seeds >= 0, got {seed!r}")
    defaults_all = _mapping(where, raw.get("defaults"), "defaults")
    kind_defaults = {"tiny": _mapping(where, raw.get("tiny_defaults"), "tiny_defaults"),
                     "real": _mapping(where, raw.get("real_defaults"), "real_defaults")}
    cells: list[Cell] = []
    method_checks: list = []
    bench_names = _bench_names(where, raw)
    attack_specs = _attacks(where, raw)
    select = raw.get("select")
    if select not in (None, "validation"):
        raise GridError(f"{where}: select must be 'validation' (sweeps choose each method's setting by "
                        f"the benchmark's ranking rule on validation items), got {select!r}")
    try:
        logger = logger_spec(raw.get("logger"))
    except ValueError as exc:
        raise GridError(f"{where}: {exc}") from exc
    for m, bench_name in itertools.product(model_names, bench_names):
        # A local model directory (a model you fine-tuned, say) is a real model: its own target.
        spec = models.get(m) if m in models else None
        kind = "tiny" if spec is not None and spec.is_tiny else "real"
        bench_cls = _benchmark(where, bench_name, kind)
        bench = bench_cls.name
        splits, chain = _splits(where, raw, bench_cls)
        bench_eval = _per_benchmark(eval_kw, bench_names, bench_name)
        data_dir = raw.get("data_dir")
        data_dir = data_dir.get(bench_name) if isinstance(data_dir, dict) else data_dir
        if data_dir is None and spec is None:
            data_dir = _local_data_dir(m, bench)
        if data_dir is not None:
            from unlearnbench.data.local_check import check_data_path

            check_data_path(data_dir)
        try:
            bench_cls.check_eval_options(bench_eval)
        except ValueError as exc:
            raise GridError(f"{where}: eval: {exc}") from exc
        if select and (bench_cls.ranking is None or bench_cls.summarise_records is Benchmark.summarise_records):
            raise GridError(f"{where}: benchmark {bench!r} cannot select a sweep's setting on validation "
                            "items (it needs a ranking rule and summaries of a part of its items); drop `select`")
        strategy, devices, num_nodes = real_placement if kind == "real" else placement
        # eval_every / keep: the grid's, unless defaults or a method's params say otherwise.
        defaults = {**{k: raw[k] for k in ("eval_every", "keep") if k in raw}, **defaults_all, **kind_defaults[kind]}
        for entry in method_entries:
            if isinstance(entry, str):
                entry = {"name": entry}
            if not isinstance(entry, dict) or "name" not in entry:
                raise GridError(f"{where}: a method entry is a name or a mapping with a 'name' "
                                f"(and label, params, sweep, tiny_params, real_params), got {entry!r}")
            entry = dict(entry)
            _check_keys(f"{where}: method {entry.get('name')!r}", entry, METHOD_KEYS)
            if entry.get("name") not in methods:
                raise GridError(f"{where}: {methods.unknown_message(str(entry.get('name')))}")
            # A method's recipe may differ by model kind (LLMU: the paper's 1000-step budget
            # on real models, a scaled one on the tiny model).
            own = _mapping(where, entry.get(f"{kind}_params"), f"{kind}_params")
            # A published recipe may differ by corpus or split (SimNPO: beta 2.5 on TOFU
            # forget05, 4.5 on forget10; 0.7 on MUSE News, 0.75 on Books).
            own = {**own, **_keyed(where, entry, "benchmark_params", bench_names).get(bench_name, {})}
            by_split = _keyed(where, entry, "split_params", splits)
            for label, params, swept in _sweep(entry, where):
                _check_periodic(f"{where}: method {label!r}", {**defaults, **params, **own, **swept}, bench_cls, select)
                method_checks.append(functools.partial(
                    _check_method, where, label, entry["name"], bench_cls,
                    [{**defaults, **params, **own, **extra, **swept} for extra in [{}, *by_split.values()]]))
                for seed in seeds:
                    prev = None
                    for step, split in enumerate(splits, 1):
                        cell_id = "__".join(_slug(x) for x in (label, f"{bench}-{split}", Path(m).name, f"s{seed}"))
                        sequential = chain is not None and chain[1].sequential
                        cells.append(Cell(cell_id, entry["name"], label, bench, split, m, seed,
                                          # a swept value is what the sweep varies: it wins
                                          {**defaults, **params, **own, **by_split.get(split, {}), **swept},
                                          strategy, devices, num_nodes,
                                          dict(bench_eval),
                                          # kept until its chain successor and its attacks are done
                                          bool(raw.get("keep_models", False)) or bool(attack_specs)
                                          or (sequential and step < len(splits)),
                                          start_from=prev if sequential else None,
                                          chain=chain[0] if chain else None, step=step if chain else None,
                                          data_dir=data_dir, logger=logger, select=bool(select),
                                          entry=str(entry.get("label") or entry["name"])))
                        prev = cell_id
    ids = [c.cell_id for c in cells]
    long = next((c for c in cells if len(c.cell_id.encode()) > MAX_ID_BYTES), None)
    if long is not None:
        raise GridError(f"{where}: method entry {long.label[:40]!r}... makes the cell id {len(long.cell_id)} "
                        f"characters long, over the {MAX_ID_BYTES} a file name allows here; give it a "
                        "shorter `label:`")
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise GridError(f"{where}: duplicate cell ids {dupes}; give the method entries distinct labels "
                        "(e.g. `label: wagle[npo]`)")
    name = str(raw["name"]) if not model else f"{raw['name']}-{_slug(Path(model).name)}"
    try:
        published_rows.parse(raw.get("published"), f"{where}: published")
    except published_rows.PublishedError as exc:
        raise GridError(str(exc)) from exc
    grid = Grid(name, raw, cells, refs, raw.get("published") or [], path, attack_specs,
                method_checks=method_checks)
    if check_methods:
        grid.check_methods()
    return grid
