"""Prototype of the copyright-synth tiny family (a measurement script, not part of the package).

Builds tokenizer → base (general text) → target (base fine-tuned on the book) through the
harness's TinyFamily with copyright_synth.tiny_recipe (the "tiny" model spec: hidden 128,
4 layers, context 128, with TINY_OVERRIDES), evaluates both with evaluate_copyright on the
test-template items, then runs a crude gradient ascent on the train-template items (tiny-qa template, as the harness's QA
machinery would feed them) and re-evaluates. Zero-shot accuracy on the general questions is
scored here with the metrics.md §4 prompt (argmax over " A".." D"), ad hoc, until
eval.multiple_choice exists.

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 python scripts/copyright_tiny_prototype.py OUT_DIR
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from unlearnbench.data import copyright_synth as cs
from unlearnbench.data.collate import Encoder, pad_right
from unlearnbench.data.copyright import test_items, train_items
from unlearnbench.eval.copyright import evaluate_copyright
from unlearnbench.models.specs import ModelSpec
from unlearnbench.models.tiny import TinyFamily


def timed(fn):
    w, c = time.time(), time.process_time()
    out = fn()
    return out, time.time() - w, time.process_time() - c


@torch.no_grad()
def mc_accuracy(model, tok, rows) -> float:
    model.eval()
    letters = [tok(" " + x, add_special_tokens=False)["input_ids"] for x in cs.LETTERS]
    assert all(len(x) == 1 for x in letters), letters
    correct = 0
    for r in rows:
        ids = tok(cs.mc_prompt(r), return_tensors="pt")["input_ids"]
        lp = model(input_ids=ids).logits[0, -1]
        correct += int(max(range(4), key=lambda i: lp[letters[i][0]]) == r["answer"])
    return correct / len(rows)


def main(out: Path) -> None:
    torch.set_num_threads(1)
    cfg = cs.CopyrightSynthConfig()
    data = cs.write(cfg, out / "data")
    family = TinyFamily(ModelSpec.from_name("tiny"), cs.tiny_recipe(data), root=out / "models")
    times = {}
    _, *times["tokenizer"] = timed(family.tokenizer_dir)
    base_dir, *times["base"] = timed(family.base)
    target_dir, *times["target"] = timed(lambda: family.checkpoint("target", "book"))
    for k, (w, c) in times.items():
        print(f"BUILD {k}: wall {w:.1f}s cpu {c:.1f}s")
    print(f"BUILD family: wall {sum(w for w, _ in times.values()):.1f}s "
          f"cpu {sum(c for _, c in times.values()):.1f}s")
    tok = AutoTokenizer.from_pretrained(base_dir)
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    target = AutoModelForCausalLM.from_pretrained(target_dir)

    book = (data / "book.txt").read_text()
    kw = dict(passage_words=cfg.passage_words, prefix_words=cfg.prefix_words, seed=cfg.seed)
    items = test_items(book, **kw)
    held = [json.loads(x)["text"] for x in open(data / "general_heldout.jsonl")]
    mc = [json.loads(x) for x in open(data / "general_mc.jsonl")]

    def row(name, model):
        (s, _), w, c = timed(lambda: evaluate_copyright(model, tok, items, held, batch_size=64,
                                                        max_new_tokens=cs.SYNTH_MAX_NEW_TOKENS))
        print(f"| {name} | {s['rougeL_recall']:.3f} | {s['bleu']:.1f} | {s['perplexity']:.2f} | "
              f"{mc_accuracy(model, tok, mc):.3f} | {w:.1f}s wall / {c:.1f}s cpu |", flush=True)

    print(f"test items: {len(items)}, general texts: {len(held)}, questions: {len(mc)}")
    print("| model | ROUGE-L recall | BLEU | perplexity | MC accuracy | evaluation |")
    print("|---|---|---|---|---|---|")
    row("base", base)
    row("target", target)
    enc = Encoder(tok, "tiny-qa", max_len=family.tiny.max_len)
    forget = [enc.encode(r["question"], r["answer"]) for r in train_items(book, **kw)]
    model = AutoModelForCausalLM.from_pretrained(target_dir)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    for step in range(1, 21):
        model.train()
        batch = pad_right([forget[i] for i in torch.randperm(len(forget), generator=g)[:32].tolist()], enc.pad_id)
        (-model(**batch).loss).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        if step in (10, 20):
            row(f"target + GA {step} steps (lr 1e-4, batch 32)", model)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
