"""Per-metric baselines of the MUSE and WMDP/MMLU evaluators, in the spirit of ``per_metric.py``:
every metric the harness reports, each computed in its own pass over its data.

* MUSE: VerbMem (greedy continuations of the forget prompts), KnowMem on the forget and on the
  retain questions (greedy answers), and, on each PrivLeak split (forget, holdout, retain), one
  teacher-forced pass per MIA attack (LOSS, zlib, Min-K%, Min-K%++); PrivLeak from the Min-K%
  AUC and the retrain model's AUC, which both evaluators take as given.
* WMDP/MMLU: one forward pass per (question, option) request, as a log-likelihood evaluator
  that does not notice that a question's four requests share one input; the harness scores
  each distinct input once.

Generation is the harness's in both (the same work); ``run.py`` checks that the values agree.
"""

from __future__ import annotations

import numpy as np

from per_metric import pass_encoded

from unlearnbench.metrics import mia


def evaluate_muse_per_metric(model, tok, path, *, batch_size: int, verbmem_tokens: int, knowmem_tokens: int,
                             mia_max_tokens: int, retrain_auc: float) -> dict:
    """The MUSE summary values (``eval.muse.summarise``'s), one pass per metric."""
    from unlearnbench.data.muse import load_split
    from unlearnbench.eval.muse import _decode, _generate, _pad_id, _text_ids
    from unlearnbench.metrics import muse as metrics

    model.eval()
    out: dict = {}
    verb = list(load_split(path, "verbmem", "forget"))
    prompts = [tok(r["prompt"], add_special_tokens=True)["input_ids"] for r in verb]
    refs = [_decode(tok, tok(r["gt"], add_special_tokens=False)["input_ids"][:verbmem_tokens]) for r in verb]
    out["verbmem_f"] = float(np.mean(metrics.verbmem_score(_generate(model, tok, prompts, verbmem_tokens,
                                                                     batch_size), refs)))
    for task, name in (("knowmem_f", "forget"), ("knowmem_r", "retain")):
        icl = [(q["question"], q["answer"]) for q in load_split(path, "knowmem", f"{name}_qa_icl")]
        rows = list(load_split(path, "knowmem", f"{name}_qa"))
        prompts = [tok(metrics.knowmem_prompt(icl, r["question"]), add_special_tokens=True)["input_ids"]
                   for r in rows]
        raw = _generate(model, tok, prompts, knowmem_tokens, batch_size, stops=metrics.STOP_STRINGS)
        out[task] = float(np.mean(metrics.knowmem_score([metrics.cut_answer(g) for g in raw],
                                                        [r["answer"] for r in rows])))
    scores: dict = {a: {} for a in mia.MIA_ATTACKS}
    for split in ("forget", "holdout", "retain"):
        texts = [r["text"] for r in load_split(path, "privleak", split)]
        encoded = [_text_ids(tok, t, mia_max_tokens) for t in texts]
        seqs = [(ids, labels) for ids, labels, _ in encoded]
        scored = [_decode(tok, ids) if cut else t for (ids, _, cut), t in zip(encoded, texts)]
        for attack in mia.MIA_ATTACKS:
            if attack == "min_k_plus_plus":
                def score(lp, _preds, labels, logp):
                    _, mu, sigma = mia.min_k_plus_plus_stats(logp, labels)
                    return mia.min_k_plus_plus_score(lp.tolist(), mu.tolist(), sigma.tolist(), k=0.4)

                scores[attack][split] = pass_encoded(model, seqs, _pad_id(tok), batch_size, score)
                continue
            lps = pass_encoded(model, seqs, _pad_id(tok), batch_size, lambda lp, *_: lp.tolist())
            if attack == "zlib":
                scores[attack][split] = [mia.zlib_score(s, t) for s, t in zip(lps, scored)]
            else:
                scores[attack][split] = [mia.loss_score(s) if attack == "loss" else mia.min_k_score(s, k=0.4)
                                         for s in lps]
    out["mia"] = {a: mia.mia_auc(v["forget"], v["holdout"]) for a, v in scores.items()}
    out["privleak"] = mia.privleak(out["mia"]["min_k"], retrain_auc)
    return out


def evaluate_wmdp_per_metric(model, tok, sets: dict, *, batch_size: int) -> dict:
    """Accuracy per set (``eval.multiple_choice.evaluate_wmdp``'s), one forward per request."""
    import torch

    from unlearnbench.eval.multiple_choice import (LETTERS, TARGET_DELIMITER, _topic_for, encode_pair,
                                                   mc_prompt)

    model.eval()
    out = {}
    for name, rows in sets.items():
        rows = list(rows)
        topic_of = _topic_for(name, rows)
        requests = [encode_pair(tok, mc_prompt(topic_of(r), r["question"], list(r["choices"])),
                                TARGET_DELIMITER + letter) for r in rows for letter in LETTERS]
        # Each request alone: its input is context + continuation without the last token.
        seqs = [(ctx + cont, [-100] * len(ctx) + cont) for ctx, cont in requests]
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        with torch.no_grad():
            lls = pass_encoded(model, seqs, pad, batch_size, lambda lp, *_: float(lp.sum()))
        correct = [max(range(4), key=lambda j, k=k: (lls[4 * k + j], -j)) == int(r["answer"])
                   for k, r in enumerate(rows)]
        out[name] = {"accuracy": sum(correct) / len(rows), "n_items": len(rows)}
    return out
