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
    """TinyConfig's fields (defaults: muse_synth.TINY_RECIPE) plus prototype switches."""

    vocab_size: int = 1024
    hidden_size: int = 128
    intermediate_size: int = 384
    num_layers: int = 4
    num_heads: int = 4
    max_len: int = 384
    batch_size: int = 4
    weight_decay: float = 0.01
    pretrain_epochs: int = 20
    finetune_epochs: int = 24
    pretrain_lr: float = 5e-3
    finetune_lr: float = 3e-3
    replay: bool = False
    threads: int = 1  # more threads than free cores slows torch down by an order of magnitude
    lightning: bool = False  # True: models.finetune.fit_causal_lm; False: the same recipe, plain loop


def _fit(model, tok, texts, *, epochs, lr, tiny, seed, desc):
    """fit_causal_lm's recipe (AdamW, 1-epoch warm-up then linear decay, clip 1.0) without
    Lightning, printing the loss per epoch."""
    from torch.utils.data import DataLoader

    from unlearnbench.data.collate import Encoder, pad_right
    from unlearnbench.models.finetune import linear_warmup_decay

    enc = Encoder(tok, "phi", max_len=tiny.max_len)
    examples = [enc.encode_text(t) for t in texts]
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    loader = DataLoader(examples, batch_size=tiny.batch_size, shuffle=True, generator=g,
                        collate_fn=lambda b: pad_right(b, enc.pad_id))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=tiny.weight_decay)
    sched = linear_warmup_decay(opt, len(loader), len(loader) * epochs)
    model.train()
    t0 = time.time()
    for epoch in range(epochs):
        total = 0.0
        for batch in loader:
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            total += loss.item()
        print(f"{desc} epoch {epoch} loss {total / len(loader):.3f} {time.time() - t0:.0f}s", flush=True)
    model.eval()


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

    fit = fit_causal_lm if recipe.lightning else _fit

    data = write(MuseSynthConfig(), out / "data")
    t0, c0 = time.time(), time.process_time()
    tok = tiny_tokenizer(tiny_texts(data, "tokenizer"), recipe.vocab_size, out / "tok")
    if (out / "base" / "config.json").exists():  # re-use a base built by an earlier run
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(out / "base")
        base = AutoModelForCausalLM.from_pretrained(out / "base")
    else:
        base = new_model(recipe, tok, seed=0)
        fit(base, tok, texts=tiny_texts(data, "base"), epochs=recipe.pretrain_epochs,
            lr=recipe.pretrain_lr, tiny=recipe, seed=0, desc="base")
        base.save_pretrained(out / "base")
        tok.save_pretrained(out / "base")
    t_base = time.time() - t0
    models = {}
    general = tiny_texts(data, "base") if recipe.replay else []
    for name, role, seed in (("target", "target", 0), ("retrain0", "retrain", 0), ("retrain1", "retrain", 1)):
        m = copy.deepcopy(base)
        fit(m, tok, texts=tiny_texts(data, role) + general, epochs=recipe.finetune_epochs,
                      lr=recipe.finetune_lr, tiny=recipe, seed=seed, desc=name)
        models[name] = m
    build, build_cpu = time.time() - t0, time.process_time() - c0
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
    print(json.dumps({"recipe": recipe.__dict__, "build_s": build, "build_cpu_s": build_cpu, "base_s": t_base, "models": rows}, indent=1))


if __name__ == "__main__":
    main()
