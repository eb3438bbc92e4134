"""Prototype of the muse-synth tiny family: build tokenizer, base, target, retrain x2, evaluate.

Usage: PYTHONPATH=. python scripts/muse_tiny_prototype.py OUT_DIR [key=value ...]
Throwaway tooling for checking that the stand-in shows MUSE's phenomena (benchmarks.md);
the lead wires ``muse_synth.tiny_texts`` into the generic tiny family.
"""

from __future__ import annotations

import copy
import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch


@dataclass(frozen=True)
class Recipe:
    vocab_size: int = 1024
    hidden_size: int = 128
    intermediate_size: int = 384
    num_layers: int = 4
    num_heads: int = 4
    max_len: int = 384
    batch_size: int = 16
    weight_decay: float = 0.01
    pretrain_epochs: int = 20
    finetune_epochs: int = 15
    pretrain_lr: float = 3e-3
    finetune_lr: float = 2e-3
    replay: bool = False
    threads: int = 2


def main() -> None:
    out = Path(sys.argv[1])
    overrides = dict(a.split("=", 1) for a in sys.argv[2:])
    recipe = Recipe()
    recipe = replace(recipe, **{k: type(getattr(recipe, k))(v if type(getattr(recipe, k)) is not bool
                                                           else v == "1") for k, v in overrides.items()})
    torch.set_num_threads(recipe.threads)
    from unlearnbench.data.muse_synth import (KNOWMEM_TOKENS, VERBMEM_TOKENS, MuseSynthConfig,
                                              tiny_texts, tiny_tokenizer, write)
    from unlearnbench.eval.muse import evaluate_muse
    from unlearnbench.models.finetune import fit_causal_lm
    from unlearnbench.models.tiny import new_model

    data = write(MuseSynthConfig(), out / "data")
    t0 = time.time()
    tok = tiny_tokenizer(tiny_texts(data, "tokenizer"), recipe.vocab_size, out / "tok")
    base = new_model(recipe, tok, seed=0)
    fit_causal_lm(base, tok, texts=tiny_texts(data, "base"), epochs=recipe.pretrain_epochs,
                  lr=recipe.pretrain_lr, tiny=recipe, seed=0, desc="base")
    t_base = time.time() - t0
    models = {}
    general = tiny_texts(data, "base") if recipe.replay else []
    for name, role, seed in (("target", "target", 0), ("retrain0", "retrain", 0), ("retrain1", "retrain", 1)):
        m = copy.deepcopy(base)
        fit_causal_lm(m, tok, texts=tiny_texts(data, role) + general, epochs=recipe.finetune_epochs,
                      lr=recipe.finetune_lr, tiny=recipe, seed=seed, desc=name)
        models[name] = m
    build = time.time() - t0
    models["base"] = base
    rows = {}
    retrain_auc = None
    for name in ("retrain0", "target", "retrain1", "base"):
        t = time.time()
        s, recs = evaluate_muse(models[name], tok, data, retrain_auc=retrain_auc, benchmark="muse-synth",
                                verbmem_tokens=VERBMEM_TOKENS, knowmem_tokens=KNOWMEM_TOKENS, batch_size=16)
        if name == "retrain0":
            retrain_auc = s["mia"]["min_k"]
            s, recs = evaluate_muse(models[name], tok, data, retrain_auc=retrain_auc, benchmark="muse-synth",
                                    verbmem_tokens=VERBMEM_TOKENS, knowmem_tokens=KNOWMEM_TOKENS,
                                    batch_size=16)
        rows[name] = {"verbmem_f": s["verbmem_f"], "knowmem_f": s["knowmem_f"], "knowmem_r": s["knowmem_r"],
                      "auc_min_k": s["mia"]["min_k"], "privleak": s.get("privleak"),
                      "eval_s": time.time() - t}
        (out / f"records-{name}.json").write_text(json.dumps(recs, indent=1))
    print(json.dumps({"recipe": recipe.__dict__, "build_s": build, "base_s": t_base, "models": rows}, indent=1))


if __name__ == "__main__":
    main()
