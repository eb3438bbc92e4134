"""The baseline of the evaluation benchmark: a straightforward TOFU evaluator that makes one pass
over the data per metric, as a per-metric evaluation framework does.

Each metric has its own pass in dataset order, batched at the same batch size as the harness:
answer probability, paraphrased answers, perturbed answers, the MIA statistics of the forget
and holdout answers, and greedy generation. It computes the same numbers as the harness's
evaluator (the benchmark checks a few agree); what differs is the work: the harness scores
every answer of an item in one length-sorted pass (with the MIA statistics on the way) and
generates once.
"""

from __future__ import annotations

import torch

from unlearnbench.data.collate import pad_left, pad_right


@torch.no_grad()
def _avg_nll(model, enc, pairs, batch_size):
    out = []
    for start in range(0, len(pairs), batch_size):
        b = pad_right([enc.encode(q, a) for q, a in pairs[start: start + batch_size]], enc.pad_id)
        logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits[:, :-1].float()
        labels = b["labels"][:, 1:]
        mask = labels != -100
        lp = logits.log_softmax(-1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        out += ((-(lp * mask).sum(1)) / mask.sum(1)).tolist()
    return out


@torch.no_grad()
def _mia_stats(model, enc, pairs, batch_size):
    """Min-K%++ statistics need the whole next-token distribution: one more pass."""
    out = []
    for start in range(0, len(pairs), batch_size):
        b = pad_right([enc.encode(q, a) for q, a in pairs[start: start + batch_size]], enc.pad_id)
        logp = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits[:, :-1].float().log_softmax(-1)
        p = logp.exp()
        mu = (p * logp).sum(-1)
        out.append(float(mu.mean()))
    return out


@torch.no_grad()
def _generate(model, enc, questions, batch_size, max_new_tokens):
    out = []
    for start in range(0, len(questions), batch_size):
        b = pad_left([enc.prompt_ids(q) for q in questions[start: start + batch_size]], enc.pad_id)
        gen = model.generate(input_ids=b["input_ids"], attention_mask=b["attention_mask"], do_sample=False,
                             max_new_tokens=max_new_tokens, pad_token_id=enc.pad_id, eos_token_id=enc.eos_id,
                             temperature=None, top_p=None, top_k=None)
        out += [enc.tokenizer.decode(g[b["input_ids"].shape[1]:], skip_special_tokens=True).strip() for g in gen]
    return out


def evaluate_per_metric(model, enc, bench, split: str, *, batch_size: int, max_new_tokens: int) -> dict:
    """Every TOFU metric's raw ingredients, one pass per metric; returns the number of items and
    the forget task's mean answer NLL (a value the harness's evaluator must match)."""
    model.eval()
    n_items, forget_nll = 0, None
    configs = {**bench.eval_configs(split), "holdout": bench.holdout_config(split)}
    for task, config in configs.items():
        rows = [dict(r) for r in bench.config(config)]
        n_items += len(rows)
        answers = _avg_nll(model, enc, [(r["question"], r["answer"]) for r in rows], batch_size)
        if task == "forget":
            forget_nll = sum(answers) / len(answers)
        if task in ("forget", "holdout"):
            _mia_stats(model, enc, [(r["question"], r["answer"]) for r in rows], batch_size)
        if task == "holdout":
            continue
        if task in ("forget", "retain"):
            _avg_nll(model, enc, [(r["question"], r["paraphrased_answer"]) for r in rows], batch_size)
        _avg_nll(model, enc, [(r["question"], a) for r in rows for a in r["perturbed_answer"]], batch_size)
        _generate(model, enc, [r["question"] for r in rows], batch_size, max_new_tokens)
    return {"n_items": n_items, "forget_avg_nll": forget_nll}
