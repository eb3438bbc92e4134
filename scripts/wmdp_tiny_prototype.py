"""Prototype of the wmdp-synth phenomenon (not part of the package; figures in docs/research-wmdp.md).

Builds the tiny base model the way the harness's tiny family does (BPE tokenizer on
``tiny_texts(root, "tokenizer")``, ``new_model`` + ``fit_causal_lm`` on
``tiny_texts(root, "base")`` with ``TINY_OVERRIDES``), times it, and measures accuracy on
the hazard / benign / general sets. Options (``key=value``):

* ``out=DIR`` where the data, tokenizer and model go (default /tmp/wmdp_tiny_prototype);
* ``drop=hazard``: leave the hazard corpus and hazard practice out (the "never trained on
  it" control);
* ``rmu=1``: then run a minimal RMU (forget: the hazard corpus; retain: the benign and
  general corpora; layer ``layer``, coefficient ``c``, ``alpha``, ``lr``, ``steps``) and
  measure again;
* any ``WmdpSynthConfig`` or ``TinyConfig`` field overrides the defaults.

    PYTHONPATH=. OMP_NUM_THREADS=1 python scripts/wmdp_tiny_prototype.py rmu=1
"""

from __future__ import annotations

import copy
import json
import random
import sys
import time
from dataclasses import fields, replace
from pathlib import Path

import torch

from unlearnbench.data import wmdp
from unlearnbench.data.collate import pad_right
from unlearnbench.data.wmdp_synth import TINY_OVERRIDES, WmdpSynthConfig, tiny_texts, write
from unlearnbench.eval.multiple_choice import evaluate_wmdp
from unlearnbench.methods import losses
from unlearnbench.models.finetune import fit_causal_lm
from unlearnbench.models.specs import TinyConfig
from unlearnbench.models.tiny import new_model, train_tokenizer


def _typed(cls, args: dict) -> dict:
    # Both dataclasses use postponed annotations: field types are the strings below.
    conv = {"int": lambda v: int(float(v)), "float": float, "bool": lambda v: v in ("1", "true", "True")}
    return {f.name: conv[f.type](args[f.name]) for f in fields(cls) if f.name in args}


TOPICS = {"hazard": "biology"}  # the others carry an MMLU subject


def _sets(root: Path) -> dict:
    sets = wmdp.eval_sets(str(root), wmdp_configs=("wmdp-bio",),
                          mmlu_subjects=("college_biology", "high_school_geography"))
    return {"hazard": sets["wmdp_bio"], "benign": sets["mmlu_college_biology"],
            "general": sets["mmlu_high_school_geography"]}


def _rmu(model, tok, root: Path, layer: int, c: float, alpha: float, lr: float, steps: int, bs: int = 4):
    ref = copy.deepcopy(model).eval()
    forget = wmdp.load_corpus("bio-forget-corpus", str(root))
    retain = wmdp.load_corpus("bio-retain-corpus", str(root)) + wmdp.load_corpus("wikitext", str(root))
    random.Random(0).shuffle(retain)
    control = losses.rmu_control_vector(model.config.hidden_size, c, torch.Generator().manual_seed(0))
    model.requires_grad_(False)
    params = [model.model.layers[i].mlp.down_proj.weight for i in range(max(0, layer - 2), layer + 1)]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)

    def hidden(m, batch):
        cache = []
        h = m.model.layers[layer].register_forward_hook(
            lambda _m, _i, o: cache.append(o[0] if isinstance(o, tuple) else o))
        m(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        h.remove()
        return cache[0]

    def enc(texts):
        return pad_right([(tok(t)["input_ids"],) * 2 for t in texts], tok.pad_token_id)

    model.train()
    for s in range(steps):
        f = enc(forget[(s * bs) % len(forget):][:bs])
        r = enc(retain[(s * bs) % len(retain):][:bs])
        with torch.no_grad():
            h_ref = hidden(ref, r)
        lf, lr_ = losses.rmu_loss(hidden(model, f), control, hidden(model, r), h_ref, alpha,
                                  f["attention_mask"], r["attention_mask"])
        (lf + lr_).backward()
        opt.step()
        opt.zero_grad()
    model.eval()


def main(argv: list[str]) -> dict:
    args = dict(a.split("=", 1) for a in argv)
    out = Path(args.get("out", "/tmp/wmdp_tiny_prototype"))
    syn = WmdpSynthConfig(**_typed(WmdpSynthConfig, args))
    tiny = replace(TinyConfig(), **{**TINY_OVERRIDES, **_typed(TinyConfig, args)})
    torch.set_num_threads(1)
    root = write(syn, out / f"data-{syn.key()}")
    t0 = time.time()
    tok = train_tokenizer(tiny_texts(root, "tokenizer"), tiny.vocab_size, out / "tokenizer")
    texts = tiny_texts(root, "base")
    if args.get("drop") == "hazard":
        drop = set(wmdp.load_corpus("bio-forget-corpus", str(root)))
        with open(root / "extras" / "practice.json") as f:
            drop |= {r["text"] for r in map(json.loads, f) if r["domain"] == "hazard"}
        texts = [t for t in texts if t not in drop]
    model = new_model(tiny, tok, seed=0)
    fit_causal_lm(model, tok, texts=texts, epochs=tiny.pretrain_epochs, lr=tiny.pretrain_lr,
                  tiny=tiny, seed=0, desc="wmdp-synth base")
    model.eval()
    model.save_pretrained(out / "model")
    tok.save_pretrained(out / "model")
    result = {"synth": syn.key(), "tiny": {k: getattr(tiny, k) for k in ("vocab_size", "pretrain_epochs", "pretrain_lr")},
              "texts": len(texts), "build_s": round(time.time() - t0, 1)}
    sets = _sets(root)
    t1 = time.time()
    summary, _ = evaluate_wmdp(model, tok, sets, topics=TOPICS)
    result["eval_s"] = round(time.time() - t1, 2)
    result["accuracy"] = {k: round(v["accuracy"], 3) for k, v in summary.items()}
    if args.get("rmu") == "1":
        hp = {"layer": int(args.get("layer", 2)), "c": float(args.get("c", 50)),
              "alpha": float(args.get("alpha", 10)), "lr": float(args.get("lr", 2e-2)),
              "steps": int(args.get("steps", 300))}
        _rmu(model, tok, root, **hp)
        after, _ = evaluate_wmdp(model, tok, sets, topics=TOPICS)
        result["rmu"] = {**hp, "accuracy": {k: round(v["accuracy"], 3) for k, v in after.items()}}
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
