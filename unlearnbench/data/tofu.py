"""TOFU as a LightningDataModule: the real hub dataset or the stand-in, one code path.

Both sources are read with ``datasets.load_dataset(path, config, split="train")``: the
hub name ``locuslab/TOFU`` or a local directory with the same files (the stand-in, or a
mirror of the hub for machines without internet).
"""

from __future__ import annotations

import random
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from unlearnbench.data.collate import Encoder, pad_right

HUB_PATH = "locuslab/TOFU"
FORGET_SPLITS = ("forget01", "forget05", "forget10")

_QA = {"question": str, "answer": str}
_PERTURBED = {**_QA, "paraphrased_answer": str, "paraphrased_question": str, "perturbed_answer": list}
_KNOWN_PERTURBED = {**_QA, "perturbed_answer": list}
_OPTIONS = {**_QA, **{f"option{i}": str for i in range(1, 5)}}


def schema_for(config: str) -> dict[str, type]:
    """Fields (and their types) a TOFU config must have."""
    if config in ("real_authors", "world_facts"):
        return _OPTIONS
    if config in ("real_authors_perturbed", "world_facts_perturbed"):
        return _KNOWN_PERTURBED
    if config.endswith("_perturbed"):
        return _PERTURBED
    return _QA


class SchemaError(ValueError):
    pass


def validate(rows, config: str, source: str) -> None:
    """Raise SchemaError naming the config, field and row of the first problem."""
    if len(rows) == 0:
        raise SchemaError(f"TOFU config {config!r} from {source} is empty; regenerate or re-download it")
    fields = schema_for(config)
    missing = [f for f in fields if f not in rows.column_names]
    if missing:
        raise SchemaError(f"TOFU config {config!r} from {source} lacks field(s) {missing}; "
                          f"it has {rows.column_names}")
    for i, row in enumerate(rows):
        for name, kind in fields.items():
            value = row[name]
            if not isinstance(value, kind) or (kind is list and not all(isinstance(v, str) for v in value)):
                raise SchemaError(f"TOFU config {config!r} from {source}, row {i}: field {name!r} "
                                  f"should be {kind.__name__}{' of str' if kind is list else ''}, "
                                  f"got {type(value).__name__}: {value!r:.80}")
            if kind is str and not value.strip():
                raise SchemaError(f"TOFU config {config!r} from {source}, row {i}: field {name!r} is empty")


def load_config(path: str, config: str):
    """One TOFU config as a ``datasets.Dataset``, validated."""
    import datasets

    try:
        rows = datasets.load_dataset(str(path), config, split="train")
    except StopIteration as exc:  # datasets' JSON builder on an empty file
        raise SchemaError(f"TOFU config {config!r} from {path} is empty; "
                          "regenerate or re-download it") from exc
    except ValueError as exc:  # `[]`: 'Instruction "train" corresponds to no data!'
        if "no data" not in str(exc):
            raise
        raise SchemaError(f"TOFU config {config!r} from {path} is empty ({exc}); "
                          "regenerate or re-download it") from exc
    validate(rows, config, str(path))
    return rows


class QADataset(Dataset):
    """Question/answer rows (tokenised later by ``Collator``); extra fields ride along."""

    def __init__(self, rows: list[dict]):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        return {"index": i, **self.rows[i]}


class Collator:
    """Batches rows into padded tensors: the answer, plus any declared extra answers.

    ``extras`` maps a batch key to a row field holding an alternative answer (a string,
    or a list of strings scored as several rows per prompt): e.g. ``{"idk": "idk_answer"}``.
    """

    def __init__(self, encoder: Encoder, extras: dict[str, str] | None = None):
        self.encoder = encoder
        self.extras = extras or {}

    def __call__(self, rows: list[dict]) -> dict:
        enc = self.encoder
        batch = pad_right([enc.encode(r["question"], r["answer"]) for r in rows], enc.pad_id)
        batch["index"] = torch.tensor([r["index"] for r in rows])
        for key, field in self.extras.items():
            pairs = []
            for r in rows:
                answers = r[field] if isinstance(r[field], list) else [r[field]]
                pairs += [enc.encode(r["question"], a) for a in answers]
            batch[key] = pad_right(pairs, enc.pad_id)
        return batch


class TofuDataModule(L.LightningDataModule):
    """TOFU forget/retain/eval splits for ``forget01|05|10`` from the hub or a local dir."""

    def __init__(self, path: str = HUB_PATH, split: str = "forget10", encoder: Encoder | None = None,
                 batch_size: int = 8, seed: int = 42, extras: dict[str, str] | None = None,
                 augment=None, num_workers: int = 0):
        super().__init__()
        if split not in FORGET_SPLITS:
            raise ValueError(f"unknown TOFU split {split!r}; choose one of {', '.join(FORGET_SPLITS)}")
        self.path = str(path)
        self.split = split
        self.encoder = encoder
        self.batch_size = batch_size
        self.seed = seed
        self.extras = extras or {}
        # augment(rows, rng, retain_rows) adds the fields a method declared (refusals, ...).
        self.augment = augment
        self.num_workers = num_workers
        self._cache: dict[str, object] = {}

    @property
    def retain_config(self) -> str:
        return f"retain{100 - int(self.split[-2:])}"

    @property
    def holdout_config(self) -> str:
        return f"holdout{self.split[-2:]}"

    def config(self, name: str):
        if name not in self._cache:
            self._cache[name] = load_config(self.path, name)
        return self._cache[name]

    def eval_configs(self) -> dict[str, str]:
        """TOFU task -> config evaluated for it (metrics.md §1)."""
        return {"forget": f"{self.split}_perturbed", "retain": "retain_perturbed",
                "real_authors": "real_authors_perturbed", "world_facts": "world_facts_perturbed"}

    def prepare_data(self) -> None:
        for name in (self.split, self.retain_config):
            self.config(name)

    def setup(self, stage: str | None = None) -> None:
        rng = random.Random(self.seed)
        forget = [dict(r) for r in self.config(self.split)]
        retain = [dict(r) for r in self.config(self.retain_config)]
        if self.augment is not None:
            forget = self.augment(forget, rng, retain)
        self.forget_set = QADataset(forget)
        self.retain_set = QADataset(retain)

    def train_dataloader(self) -> DataLoader:
        g = torch.Generator().manual_seed(self.seed)
        return DataLoader(self.forget_set, batch_size=self.batch_size, shuffle=True, generator=g,
                          collate_fn=Collator(self.encoder, self.extras), num_workers=self.num_workers)

    def retain_loader(self, seed: int) -> DataLoader:
        """A shuffled retain loader; the method cycles it with a per-rank seed."""
        g = torch.Generator().manual_seed(seed)
        return DataLoader(self.retain_set, batch_size=self.batch_size, shuffle=True, generator=g,
                          collate_fn=Collator(self.encoder), num_workers=self.num_workers)


class TofuHub(TofuDataModule):
    """TOFU (Maini et al. 2024): fictitious-author QA, the real dataset ``locuslab/TOFU``."""

    def __init__(self, path: str = HUB_PATH, **kwargs):
        super().__init__(path=path, **kwargs)


class TofuSynth(TofuDataModule):
    """TOFU stand-in: generated fictitious authors with TOFU's exact configs and fields."""

    def __init__(self, path: str | None = None, synth=None, **kwargs):
        from unlearnbench.data.tofu_synth import SynthConfig

        synth = synth or SynthConfig()
        super().__init__(path=str(path or synth_dir(synth)), **kwargs)
        self.synth = synth


def synth_dir(synth=None) -> Path:
    """Directory of the stand-in for ``synth`` (a SynthConfig), generated on first use."""
    from unlearnbench.data.tofu_synth import SynthConfig, write
    from unlearnbench.paths import cache_root

    synth = synth or SynthConfig()
    return write(synth, cache_root() / "data" / f"tofu-synth-{synth.key()}")
