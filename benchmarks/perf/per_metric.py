"""The baseline of the evaluation benchmark: a straightforward TOFU evaluator that computes each
metric in its own pass over the data, as a per-metric evaluation framework does (each metric a
separate object with its own data loader and forward passes).

Metrics and their passes, per task: probability (answers), ROUGE-L recall (greedy generation),
truth ratio (paraphrased answers or, on real_authors / world_facts, the answers, and the
perturbed answers), exact memorisation (answers), extraction strength (answers); on the forget
and holdout sets one pass per MIA attack (LOSS, zlib, Min-K%, Min-K%++), the GradNorm attack one
text at a time (forward, ``loss.backward()``, norms of ``.grad``: open-unlearning's
``GradNormAttack``), and the Reference attack's pass of the retain model over the same texts;
forget quality and PrivLeak from the retain model's truth ratios and Min-K% AUC, which both
evaluators take as given (each framework evaluates its retain model once and keeps the figures).
Batches are in dataset order at the same batch size as the harness. The values are the harness's (same metric
functions); ``run.py`` checks that they agree. What differs is the work: the harness scores all
the answers of an item in one pass with the prompt computed once (``eval.scoring.score_items``),
takes every statistic from it, and generates once.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from unlearnbench.data.collate import pad_right
from unlearnbench.eval.generate import generate_greedy
from unlearnbench.metrics import mia, tofu


def _pass(model, enc, pairs, batch_size, per_row):
    """One forward pass over ``pairs`` in dataset order; ``per_row(token_logprobs, preds, labels,
    logp)`` (one sequence's scored positions) gives each pair's value."""
    return pass_encoded(model, [enc.encode(q, a) for q, a in pairs], enc.pad_id, batch_size, per_row)


@torch.no_grad()
def pass_encoded(model, encoded, pad_id, batch_size, per_row):
    """``_pass`` over already tokenised ``(input_ids, labels)`` sequences."""
    out = []
    for start in range(0, len(encoded), batch_size):
        b = pad_right(encoded[start: start + batch_size], pad_id)
        logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits[:, :-1].float()
        labels = b["labels"][:, 1:]
        logp = logits.log_softmax(-1)
        tok = logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        preds = logits.argmax(-1)
        for row in range(labels.shape[0]):
            m = labels[row] != -100
            out.append(per_row(tok[row][m], preds[row][m], labels[row][m], logp[row][m]))
    return out


def _avg_nll(model, enc, pairs, batch_size):
    return _pass(model, enc, pairs, batch_size, lambda lp, *_: float(-lp.mean()))


def _mia_pass(model, enc, rows, batch_size, attack):
    """One pass over the rows' answers, scored by one MIA attack (``metrics.mia``)."""
    pairs = [(r["question"], r["answer"]) for r in rows]
    if attack == "min_k_plus_plus":
        def score(lp, _preds, labels, logp):
            _, mu, sigma = mia.min_k_plus_plus_stats(logp, labels)
            return mia.min_k_plus_plus_score(lp.tolist(), mu.tolist(), sigma.tolist())

        return _pass(model, enc, pairs, batch_size, score)
    lps = _pass(model, enc, pairs, batch_size, lambda lp, *_: lp.tolist())
    if attack == "zlib":
        return [mia.zlib_score(s, r["answer"]) for s, r in zip(lps, rows)]
    return [mia.loss_score(s) if attack == "loss" else mia.min_k_score(s) for s in lps]


def _gradnorm_pass(model, enc, rows) -> list[float]:
    """GradNorm (p = 2) of each row's answer, one text at a time: ``loss.backward()`` and the
    mean over parameter tensors of ``‖.grad‖₂``, as open-unlearning computes it."""
    params = list(model.parameters())
    flags = [q.requires_grad for q in params]
    out = []
    try:
        for q in params:
            q.requires_grad_(True)
        for r in rows:
            ids, labels = enc.encode(r["question"], r["answer"])
            model.zero_grad()
            with torch.enable_grad():
                model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels])).loss.backward()
            out.append(float(torch.stack([q.grad.norm() for q in params if q.grad is not None]).mean()))
    finally:
        model.zero_grad(set_to_none=True)
        for q, flag in zip(params, flags):
            q.requires_grad_(flag)
    return out


def evaluate_per_metric(model, enc, bench, split: str, *, batch_size: int, max_new_tokens: int,
                        retain_model=None, retain_truth_ratios=None, retain_mia_auc=None) -> dict:
    """Every TOFU metric the harness reports, one pass per metric; returns the summary values.

    With ``retain_model`` the Reference attack scores the forget and holdout answers with it
    (its own pass); ``retain_truth_ratios`` and ``retain_mia_auc`` (the retain model's forget
    truth ratios and Min-K% AUC) give forget quality and PrivLeak."""
    model.eval()
    configs = {**bench.eval_configs(split), "holdout": bench.holdout_config(split)}
    rows = {task: [dict(r) for r in bench.config(config)] for task, config in configs.items()}
    out: dict = {"n_items": sum(len(v) for v in rows.values())}
    for task, rs in rows.items():
        if task == "holdout":
            continue
        qa = [(r["question"], r["answer"]) for r in rs]
        pert = [[(r["question"], a) for a in r["perturbed_answer"]] for r in rs]
        flat_pert = [p for ps in pert for p in ps]
        k = len(pert[0])
        # probability
        answer_nll = _avg_nll(model, enc, qa, batch_size)
        if task in ("real_authors", "world_facts"):
            pert_nll = _avg_nll(model, enc, flat_pert, batch_size)  # the option-normalised probability's own pass
            prob = tofu.normalised_probability(answer_nll, [pert_nll[i * k:(i + 1) * k] for i in range(len(rs))])
        else:
            prob = tofu.mean_probability(answer_nll)
        # ROUGE-L recall of greedy generations
        gens = generate_greedy(model, enc, [r["question"] for r in rs], batch_size, max_new_tokens)
        rouge = float(np.mean(tofu.rouge_l_recall(gens, [r["answer"] for r in rs])))
        # truth ratio
        if task in ("forget", "retain"):
            ref = _avg_nll(model, enc, [(r["question"], r["paraphrased_answer"]) for r in rs], batch_size)
        else:
            ref = _avg_nll(model, enc, qa, batch_size)
        pert_nll = _avg_nll(model, enc, flat_pert, batch_size)
        ratios = tofu.truth_ratio(ref, [pert_nll[i * k:(i + 1) * k] for i in range(len(rs))])
        # exact memorisation and extraction strength, each its own pass
        em = _pass(model, enc, qa, batch_size, lambda lp, p, lab, _: tofu.exact_memorisation(p.tolist(), lab.tolist()))
        es = _pass(model, enc, qa, batch_size, lambda lp, p, lab, _: tofu.extraction_strength(p.tolist(), lab.tolist()))
        out[task] = {"probability": prob, "rougeL_recall": rouge,
                     "truth_ratio": tofu.truth_ratio_score(list(ratios), task),
                     "exact_memorisation": float(np.mean(em)), "extraction_strength": float(np.mean(es))}
        if task == "forget" and retain_truth_ratios is not None:
            out["forget_quality"] = tofu.forget_quality(list(ratios), retain_truth_ratios)
    scores = {attack: {s: _mia_pass(model, enc, rows[s], batch_size, attack) for s in ("forget", "holdout")}
              for attack in mia.MIA_ATTACKS}
    scores["gradnorm"] = {s: _gradnorm_pass(model, enc, rows[s]) for s in ("forget", "holdout")}
    if retain_model is not None:
        scores["reference"] = {s: mia.reference_scores(scores["loss"][s], _mia_pass(retain_model, enc, rows[s],
                                                                                     batch_size, "loss"))
                               for s in ("forget", "holdout")}
    out["mia"] = {attack: mia.mia_auc(v["forget"], v["holdout"]) for attack, v in scores.items()}
    if retain_mia_auc is not None:
        out["privleak"] = None if retain_mia_auc >= 1.0 else mia.privleak(out["mia"]["min_k"], retain_mia_auc)
    assert all(math.isfinite(v) for v in out["mia"].values())
    return out
