"""A benchmark is a plugin, like a method: one object owns everything benchmark-specific.

A ``Benchmark`` subclass declares its data shape, forget splits, reference models,
leaderboard columns (with their better direction), published numbers and, for a stand-in,
the recipe of its tiny model family; it loads its forget/retain data and evaluates a model.
The runner, the reference cache, the CLI and the report only talk to this interface, so
none of them branches on a benchmark's name.

Register a new benchmark like a method: ``@benchmarks.register("my-bench")`` on the class
(from a ``--plugin`` file or an entry point in the group ``unlearnbench.benchmarks``).
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from unlearnbench.data.parts import in_part, is_validation  # noqa: F401 (is_validation: public here too)
from unlearnbench.data.standin import Generator
from unlearnbench.errors import UserError
from unlearnbench.files import dir_fingerprint
from unlearnbench.models.tiny import TinyFamily

SHAPES = ("qa", "text")
DIRECTIONS = ("max", "min", "zero", "half", "none")


class BenchmarkError(UserError):
    """A benchmark was asked for something it does not have (split, chain, option)."""


@dataclass(frozen=True)
class Column:
    """One leaderboard column: where its value sits in an evaluation summary, and which way is better.

    ``direction``: ``max``/``min`` (higher/lower is better), ``zero`` (closest to 0),
    ``half`` (closest to 0.5, an MIA AUC at chance) or ``none`` (no best marked).

    ``gap_to``: the name of a reference (one of the benchmark's ``references``). The column
    is then ``|value at path − that reference's value at path|`` in the same (split, model)
    block, e.g. FLAT's gap to the model that never saw the book. References are separate
    jobs, so the report computes it (``report.results``) from the two summaries; an
    evaluation's own ``metrics`` leave it out.
    """

    name: str
    path: tuple[str, ...]
    direction: str = "none"
    sci: bool = False  # printed as 1.2e-05 (p-values)
    shown: bool = True  # in the Markdown/LaTeX tables (every column is in the CSV)
    gap_to: str | None = None

    def __post_init__(self):
        if self.direction not in DIRECTIONS:
            raise ValueError(f"column {self.name!r}: direction must be one of {DIRECTIONS}, "
                             f"got {self.direction!r}")


@dataclass(frozen=True)
class Reference:
    """A reference model evaluated once per (benchmark, split, model): its row label, the
    checkpoint role it is (``base``, ``target``, ``retain``) and the training seed."""

    name: str
    role: str
    seed: int = 0


@dataclass(frozen=True)
class Chain:
    """A sequence of unlearning requests (MUSE's scalability / sustainability).

    ``sequential`` chains start each step from the previous step's unlearned model
    (sustainability); the others start every step from the target (scalability).
    """

    splits: tuple[str, ...]
    sequential: bool
    description: str = ""


@dataclass(frozen=True)
class Ranking:
    """How the leaderboard ranks methods: by ``forget`` among the rows whose ``utility`` is at
    least ``min_ratio`` × the reference ``anchor``'s utility (for a lower-is-better utility
    such as perplexity: at most the anchor's / ``min_ratio``); the others follow, unranked."""

    forget: str
    utility: str
    min_ratio: float = 0.9
    anchor: str = "target"

    def describe(self) -> str:
        return (f"ranked by `{self.forget}` among methods whose `{self.utility}` is at least "
                f"{self.min_ratio:g} × the {self.anchor}'s; methods below that utility are ranked after")


@dataclass(frozen=True)
class TinyRecipe:
    """What a stand-in's tiny model family is trained on (see ``models.tiny.TinyFamily``).

    ``finetune(role, split)`` returns ``(qa_rows, texts)`` a role in ``finetuned_roles`` is
    fine-tuned on from the base; any other role is the base itself (WMDP unlearns the base).
    ``tiny`` overrides fields of the model's ``TinyConfig`` (e.g. a longer context).
    """

    data_key: str
    tokenizer_texts: Callable[[], list[str]]
    base_texts: Callable[[], list[str]]
    finetune: Callable[[str, str], tuple[list[dict] | None, list[str] | None]] | None = None
    finetuned_roles: tuple[str, ...] = ("target", "retain")
    tiny: dict = field(default_factory=dict)
    ft_key: Callable[[str, str], dict] | None = None  # cache-key parts of a fine-tuned role
    build_tokenizer: Callable | None = None  # (texts, vocab_size, out_dir) -> tokenizer; default BPE


class Benchmark:
    """Base class of every benchmark (see the module docstring); subclasses fill the class attributes."""

    name: str = ""
    family: str = ""  # key into ModelSpec.checkpoints for the published checkpoints
    shape: str = "qa"  # the data shape methods train on: "qa" or "text"
    splits: tuple[str, ...] = ()
    default_split: str = ""
    references: tuple[Reference, ...] = ()
    compare_to: str | None = None  # the reference every other evaluation is scored against
    columns: tuple[Column, ...] = ()
    tradeoff: tuple[str, str] | None = None  # (utility column, forget column) for the plot
    headline_forget: str | None = None  # higher = more remembered; robustness recovery uses it
    ranking: Ranking | None = None
    chains: dict[str, Chain] = {}
    # Published numbers beside its leaderboards: groups keyed by (benchmark, split, model,
    # source), shown only in their own block (report.published).
    published: tuple[dict, ...] = ()
    stand_in_for: str | None = None  # a stand-in names the real benchmark it stands for
    template: str | None = None  # a prompt template of the benchmark's own (None: the model's)
    tiny_template: str | None = None  # its variant for the harness's tiny models (default: template)
    target_is_base: bool = False  # the model before unlearning is the pre-trained model itself
    eval_options: dict[str, Any] = {}  # evaluation options and their defaults
    # Values of the ``parity`` eval option besides false: whose evaluation code the numbers
    # reproduce where its conventions differ from this harness's (docs/metrics.md).
    parity_modes: tuple[str, ...] = ()
    data_options: dict[str, Any] = {}  # options of the training data (method params may set them)
    # ``evaluate(..., part="validation")`` scores the validation items alone. Evaluation during
    # unlearning (``eval_every``) needs only part summaries (``summarise_records``): without
    # this, ``evaluate_part`` scores every item and keeps the part's records.
    evaluates_parts: bool = False
    # The extra data a raw-text benchmark's batches can carry for a method's ``needs``:
    # "template" where it offers general text (``general_rows``: documents that are neither
    # forget nor retain data), which FLAT pairs with each forget chunk as its "good" text (its
    # public code pairs Harry Potter passages with random C4 documents; data.general).
    # Question/answer benchmarks carry every extra.
    text_extras: tuple[str, ...] = ()

    # What a grid resolved for one job (``inputs``, then ``pin`` in the job's process): the data
    # key and where the tiny model family's checkpoints are, so the job derives neither again.
    _pinned: dict | None = None

    def __init__(self, path: str | None = None):
        self.path = str(path) if path else self.default_path()

    # -- what subclasses provide ----------------------------------------------------
    def default_path(self) -> str:
        """Hub id of the real dataset, or the generated directory of a stand-in."""
        raise NotImplementedError

    def forget_rows(self, split: str) -> list[dict]:
        """Rows a method unlearns: ``{"question", "answer"}`` (qa) or ``{"text"}`` (text)."""
        raise NotImplementedError

    def retain_rows(self, split: str) -> list[dict]:
        """Rows of the retain (normal) data, same shape as the forget rows."""
        raise NotImplementedError

    def general_rows(self, split: str) -> list[dict]:
        """General text ``{"text"}`` of a raw-text benchmark whose ``text_extras`` has "template"."""
        raise NotImplementedError(f"benchmark {self.name!r} offers no general text")

    def normal_answers(self, split: str) -> list[str]:
        """The pool LLMU's random mismatch answers (and FLAT's ``template="normal"``) are drawn
        from: the retain rows' answers, unless a benchmark has a pool of its own."""
        return [r["answer"] for r in self.retain_rows(split)]

    def alternate_answers(self, split: str, file: str | None = None) -> list[list[str]]:
        """Per forget row, its alternate (plausible, wrong) answers for AltPO, read from
        ``file`` in open-unlearning's format (``data.alternates``); a benchmark whose data
        carries alternates of its own reads them when no file is given."""
        from unlearnbench.data.alternates import align, read_alternates

        if file is None:
            raise BenchmarkError(f"benchmark {self.name!r} has no alternate answers for {split!r}; AltPO needs a "
                                 "file of them: --set alternate_file=PATH (JSON lines {question, answer, "
                                 "alternate}, as open-unlearning's community/methods/AltPO/generate.py writes)")
        return align(self.forget_rows(split), read_alternates(file), str(file))

    def evaluate(self, model, encoder, split: str, *, reference=None, models=None,
                 **options) -> tuple[dict, list[dict]]:
        """``(summary, per-item records)`` of ``model``; ``reference`` is the ``compare_to``
        reference's own ``(summary, records)``; ``models(role)`` loads another checkpoint
        (e.g. the original model, for fluency)."""
        raise NotImplementedError

    def target_data(self, split: str) -> tuple[list[dict] | None, list[str] | None]:
        """``(qa_rows, texts)`` a target model is fine-tuned on (``unlearnbench finetune``), for a
        benchmark whose protocol starts from a fine-tuned model you build yourself."""
        raise BenchmarkError(f"benchmark {self.name!r} has no fine-tuning data of its own: its "
                             "targets are published or the pre-trained model itself")

    def eval_dtype(self, options: dict):
        """The dtype to load a checkpoint in for evaluation (None: the harness's default)."""
        return None

    def recipe(self) -> TinyRecipe | None:
        """The tiny-family recipe of a stand-in (``None``: no tiny models for this benchmark)."""
        return None

    def checkpoint_key(self, role: str, split: str) -> str:
        """Key of ``ModelSpec.checkpoints[self.family]`` holding ``role``'s published checkpoint."""
        return role

    # -- shared behaviour -------------------------------------------------------------
    # Class methods: the grid validates a YAML without instantiating (or generating) anything.
    @classmethod
    def template_for(cls, spec) -> str:
        """The prompt template of this benchmark's data for a model: the benchmark's own
        (its tiny variant for a tiny model) or else the model's."""
        own = (cls.tiny_template or cls.template) if spec.is_tiny else cls.template
        return own or spec.template

    @classmethod
    def check_split(cls, split: str) -> str:
        if split not in cls.splits:
            close = difflib.get_close_matches(str(split), cls.splits, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise BenchmarkError(f"benchmark {cls.name!r} has no split {split!r}.{hint} "
                                 f"Choose one of: {', '.join(cls.splits)}")
        return split

    @classmethod
    def chain(cls, name: str) -> Chain:
        if name not in cls.chains:
            have = (f"it has: {', '.join(cls.chains)}" if cls.chains
                    else "it has no chains of unlearning requests")
            raise BenchmarkError(f"benchmark {cls.name!r} has no {name!r} chain ({have}); "
                                 f"drop `chain: {name}` or pick a benchmark that has one")
        return cls.chains[name]

    @classmethod
    def eval_split(cls, split: str) -> str:
        """The split whose references and evaluation serve ``split`` (its own, by default)."""
        return split

    @classmethod
    def check_eval_options(cls, options: dict) -> dict:
        """``options`` over the defaults; an unknown option is an error naming the known ones."""
        unknown = sorted(set(options) - set(cls.eval_options))
        if unknown:
            raise BenchmarkError(f"benchmark {cls.name!r}: unknown eval option(s) {unknown}; "
                                 f"known: {sorted(cls.eval_options)}")
        for key, value in options.items():  # typed like its default: a typo fails before any evaluation
            default = cls.eval_options[key]
            if value is None or default is None or key == "parity":  # parity: checked by check_parity
                continue
            if isinstance(default, bool) and not isinstance(value, bool):
                raise BenchmarkError(f"benchmark {cls.name!r}: eval option {key!r} is true or false, got {value!r}")
            if isinstance(default, int) and not isinstance(default, bool) and \
                    (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise BenchmarkError(f"benchmark {cls.name!r}: eval option {key!r} must be an integer >= 1 "
                                     f"(default {default}), got {value!r}")
        out = {**cls.eval_options, **{k: v for k, v in options.items() if v is not None}}
        if "parity" in cls.eval_options:
            out["parity"] = cls.check_parity(out["parity"])
        return out

    @classmethod
    def check_parity(cls, value):
        """``False`` or one of ``parity_modes``; ``true`` names a benchmark's only mode."""
        if value is True and len(cls.parity_modes) == 1:
            return cls.parity_modes[0]
        if value is False or value in cls.parity_modes:
            return value
        raise BenchmarkError(f"benchmark {cls.name!r}: unknown eval option parity={value!r}; "
                             f"use false or one of: {', '.join(cls.parity_modes)}")

    def data_key(self) -> str | None:
        """What identifies the data read, the same on every machine: a stand-in's generator
        config key (or its directory's fingerprint, ``stand_in_key``), a real benchmark's local
        directory, ``None`` for the hub. Results record it; a grid re-runs a result recorded
        with another one (``runner.run.cell_state``), e.g. after a stand-in's default changed."""
        if self._pinned is not None:
            return self._pinned["data_key"]
        recipe = self.recipe()
        return recipe.data_key if recipe is not None else (str(self.path) if self.path else None)

    def inputs(self, spec, split: str) -> dict:
        """What a job on ``split`` with the model ``spec`` reads, resolved once by the grid: the data
        path and key and, for a tiny model, the directories its roles are (or, before the family's
        first job, will be) cached in. The job's process ``pin``s them and then locates, generates
        and keys nothing of the stand-in again (``runner.jobs.benchmark_of``)."""
        recipe = self.recipe()  # once: a copied stand-in's key fingerprints its directory
        out = {"data_path": self.path, "data_key": recipe.data_key if recipe is not None else self.data_key(),
               "checkpoints": {}}
        if recipe is not None and spec.is_tiny:
            family = TinyFamily(spec, recipe)
            roles = {("base", 0), ("target", 0)} | {(r.role, r.seed) for r in self.references}
            for s in sorted({split, self.eval_split(split)}):
                for role, seed in sorted(roles):
                    if role in recipe.finetuned_roles or seed == 0:  # the base has one seed
                        out["checkpoints"][_checkpoint_id(spec, role, s, seed)] = str(family.path(role, s, seed))
        return out

    def pin(self, inputs: dict) -> Benchmark:
        """Use what a grid resolved (``inputs``) for this benchmark's data key and checkpoints."""
        self._pinned = inputs
        return self

    def fingerprint(self, split: str) -> dict:
        """Everything an evaluation depends on besides the model and the options (cache key)."""
        return {"benchmark": self.name, "path": self.path, "split": self.eval_split(split)}

    @staticmethod
    def in_part(record: dict, part: str | None) -> bool:
        """Whether an evaluation record is in ``part`` ("validation", "test", or None: all)."""
        return in_part(record, part)

    def summarise_records(self, records: list[dict], reference=None, part: str | None = None,
                          options: dict | None = None) -> dict:
        """The summary of the items of ``part`` only (a reference scored on the same part), for
        selecting a sweep's setting on validation items and reporting it on the others.
        ``options`` are the evaluation options the records were made with (e.g. a parity
        mode that fixes a constant the summary uses)."""
        raise BenchmarkError(f"benchmark {self.name!r} cannot summarise a part of its items, which a "
                             "grid's `select: validation` needs; drop `select` for this benchmark")

    @classmethod
    def summarises_parts(cls) -> bool:
        """Whether the benchmark has validation items: it summarises a part of its items (its
        own ``summarise_records``), so a grid can select on them and evaluate on them during
        unlearning."""
        return cls.summarise_records is not Benchmark.summarise_records

    def evaluate_part(self, model, encoder, split: str, *, part: str, reference=None,
                      **options) -> tuple[dict, list[dict]]:
        """``(summary, records)`` of ``part``'s items only, for ``summarise_records(records,
        reference, part)`` (the summary returned here is not the part's: cost and bookkeeping).
        A benchmark that ``evaluates_parts`` scores those items alone; any other scores every
        item and drops the other part's records before anything reads them."""
        if self.evaluates_parts:
            return self.evaluate(model, encoder, split, reference=reference, part=part, **options)
        summary, records = self.evaluate(model, encoder, split, reference=reference, **options)
        return {"part": part, "cost": summary.get("cost", {})}, [r for r in records if self.in_part(r, part)]

    def metrics(self, summary: dict) -> dict[str, float | None]:
        """Flat leaderboard values of an evaluation summary, by ``columns`` (a ``gap_to``
        column needs another job's summary: the report adds it)."""
        return {c.name: _dig(summary, c.path) for c in self.columns if c.gap_to is None}

    def column_meta(self) -> list[dict]:
        return [asdict(c) for c in self.columns]

    def datamodule(self, split: str, encoder=None, *, batch_size: int = 8, seed: int = 42,
                   needs=(), **data_params):
        """The LightningDataModule a method trains on (see ``data.datamodule``)."""
        from unlearnbench.data.datamodule import UnlearnDataModule

        self.check_split(split)
        unknown = sorted(set(data_params) - set(self.data_options))
        if unknown:
            raise BenchmarkError(f"benchmark {self.name!r}: unknown data option(s) {unknown}; "
                                 f"known: {sorted(self.data_options) or 'none'}")
        return UnlearnDataModule(self, split, encoder, batch_size=batch_size, seed=seed, needs=needs,
                                 **{**self.data_options, **data_params})

    def checkpoint(self, spec, role: str, split: str, seed: int = 0) -> str:
        """Hub id or local directory of ``role`` (base, target, retain) of ``spec`` for ``split``.

        Tiny models are built (or found in the cache) from the stand-in's recipe; real
        models map to their published checkpoints, so no re-finetuning is needed.
        """
        if role not in ("base", "target", "retain"):
            raise BenchmarkError(f"unknown model role {role!r}; choose base, target or retain")
        pinned = (self._pinned or {}).get("checkpoints", {}).get(_checkpoint_id(spec, role, split, seed))
        if pinned is not None and (Path(pinned) / "config.json").exists():  # else: built below, at that path
            return pinned
        if spec.is_tiny:
            recipe = self.recipe()
            if recipe is None:
                raise BenchmarkError(f"benchmark {self.name!r} has no tiny-model recipe; "
                                     f"tiny models run on the stand-ins (e.g. {self.name}-synth)")
            return str(TinyFamily(spec, recipe).checkpoint(role, split, seed))
        if role == "base":
            if spec.is_local and spec.base_id is None:
                raise BenchmarkError(f"model directory {spec.hub_id} does not record the model it was fine-tuned "
                                     f"from, which the {self.name!r} 'base' row needs (`unlearnbench finetune` "
                                     "writes it to unlearnbench.json: {\"base\": \"<hub id or dir>\"})")
            return spec.base_id or spec.hub_id
        if role == "target" and (self.target_is_base or spec.is_local):
            return spec.hub_id  # a local directory is its own target (e.g. a model you fine-tuned)
        published = spec.checkpoints.get(self.family, {})
        key = self.checkpoint_key(role, split)
        if key not in published:
            if spec.is_local:
                raise BenchmarkError(f"model directory {spec.hub_id} names no {self.family} {key} checkpoint, "
                                     f"which the {self.name!r} {role!r} reference needs; add it to "
                                     f"{spec.hub_id}/unlearnbench.json: "
                                     f"{{\"checkpoints\": {{\"{self.family}\": {{\"{key}\": \"<hub id or dir>\"}}}}}}")
            raise BenchmarkError(f"model {spec.name!r} has no published {self.family} {key} "
                                 f"checkpoint; known: {', '.join(published) or 'none'}")
        if seed != 0:
            raise BenchmarkError(f"model {spec.name!r}: only one published {self.family} {key} "
                                 "checkpoint exists (seed 0); a second seed needs a fine-tune of your own")
        return published[key]


# -- the stand-ins ----------------------------------------------------------------------------
# What every stand-in benchmark shares: its generator config, its default directory (the
# generated data in the cache) and the data key of its tiny model family.
#
# A stand-in benchmark subclasses ``StandIn`` before the real benchmark it stands in for,
# names its generator (``data.standin.Generator``) and says how its tiny family is trained
# (``tiny_recipe``); it keeps no ``__init__``, ``default_path`` or ``recipe`` of its own.
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


def _checkpoint_id(spec, role: str, split: str, seed: int) -> str:
    return f"{spec.name}/{role}/{split}/{seed}"


def _dig(obj: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def get_benchmark(name: str, path: str | Path | None = None) -> Benchmark:
    """The registered benchmark ``name``, reading its data from ``path`` (default: its own)."""
    from unlearnbench.registry import benchmarks

    cls = benchmarks.get(name)
    if path is not None:  # a local copy: a missing file or a bad row is named before it is read
        from unlearnbench.data.local_check import check_data_path

        check_data_path(path)
    return cls(path=path)

