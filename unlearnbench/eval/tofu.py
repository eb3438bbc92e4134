"""The TOFU evaluation suite (docs/metrics.md §2), MIA scores (§2) and cost (§7).

Per-item records are computed on each rank's share of the items and gathered, then every
aggregate is computed from the full list of items, so a 2-process evaluation returns the
same numbers as a 1-process one.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from unlearnbench.data.collate import IGNORE, Encoder, pad_right
from unlearnbench.eval.generate import generate_greedy
from unlearnbench.eval.progress import Progress
from unlearnbench.eval.scoring import Scored, score_items, score_logits
from unlearnbench.metrics import mia, tofu
from unlearnbench.metrics.cost import CostTracker
from unlearnbench.parallel import sharded_eval

TASKS = ("forget", "retain", "real_authors", "world_facts")


# -- which tokens the token-level metrics score: this harness's convention or open-unlearning's
# Every TOFU answer is scored as its tokens plus the closing EOS (docs/metrics.md §2). The
# harness's default keeps the EOS in every metric: it is part of the answer the model was
# fine-tuned to produce, and ending the answer there is part of what it memorised.
# open-unlearning (locuslab/open-unlearning @d3d7cf9, ``evals/metrics/utils.py``
# ``tokenwise_logprobs`` / ``tokenwise_vocab_logprobs``) drops the final labelled position
# (``[:-1]``, "ignore eos prediction") in Min-K, Min-K++, GradNorm, exact memorisation and
# extraction strength, and keeps it in probability and LOSS (``evaluate_probability``). Its
# zlib attack divides that LOSS by the compressed size of the decoded labels
# (``tokenizer.decode(labels, skip_special_tokens=True)``: the answer as tokenised, a leading
# space included), not of the answer string. ``parity="open-unlearning"`` reproduces all of
# this so numbers can be read against its published logs.
OPEN_UNLEARNING = "open-unlearning"


def drops_eos(parity) -> bool:
    """Whether ``parity`` drops the final scored position (the EOS) from the token metrics."""
    return parity == OPEN_UNLEARNING


def token_metrics(s, parity=False) -> dict:
    """Exact memorisation and extraction strength of a ``Scored`` answer."""
    if not drops_eos(parity):
        return {"exact_memorisation": tofu.exact_memorisation(s.preds, s.labels),
                "extraction_strength": tofu.extraction_strength(s.preds, s.labels)}
    preds, labels = s.preds[:-1], s.labels[:-1]
    return {"exact_memorisation": tofu.exact_memorisation(preds, labels),
            "extraction_strength": tofu.extraction_strength_open_unlearning(preds, labels)}


def mia_scores(s, text: str, tokenizer=None, parity=False) -> dict:
    """LOSS, zlib, Min-K% and Min-K%++ scores of a ``Scored`` text (``text``: the answer)."""
    lp, mu, sigma = s.token_logprobs, s.mu, s.sigma
    if drops_eos(parity):
        # LOSS (and the LOSS inside zlib) keeps the EOS there; only the Min-K family drops it.
        text = tokenizer.decode(s.labels, skip_special_tokens=True)
        short = lp[:-1], mu[:-1], sigma[:-1]
    else:
        short = lp, mu, sigma
    return {
        "mia_loss": mia.loss_score(lp),
        "mia_zlib": mia.zlib_score(lp, text),
        "mia_min_k": mia.min_k_score(short[0]),
        "mia_min_k_plus_plus": mia.min_k_plus_plus_score(*short),
    }


def gradnorm_labels(labels: list[int], parity=False) -> list[int]:
    """The labels GradNorm's loss averages over: without their final scored position under
    open-unlearning's convention (its GradNorm uses ``tokenwise_logprobs``)."""
    if not drops_eos(parity):
        return labels
    last = max(i for i, t in enumerate(labels) if t != IGNORE)
    return labels[:last] + [IGNORE] + labels[last + 1:]


def _answers_and_gradnorms(model, enc: Encoder, rows: list[dict], batch_size: int,
                           parity=False) -> tuple[list[Scored], list[float]]:
    """Each row's answer scored (a ``Scored`` with its Min-K%++ statistics, as ``score_items``
    gives it) and its GradNorm MIA score (metrics.mia.gradnorm_scores), from the GradNorm pass's
    one forward: the answer is not run through the model a second time."""
    encoded = enc.encode_many([(r["question"], r["answer"]) for r in rows])
    scored: list[Scored | None] = [None] * len(rows)

    def keep(i: int, logits) -> None:
        # The answer's own labels (EOS included), whatever GradNorm's convention averages over.
        target = torch.tensor(encoded[i][1][1:], device=logits.device)
        mask = target != IGNORE
        scored[i] = score_logits(logits[mask], target[mask], [int(mask.sum())], [True])[0]

    labelled = [(ids, gradnorm_labels(labels, parity)) for ids, labels in encoded]
    batches = (pad_right(labelled[i: i + batch_size], enc.pad_id) for i in range(0, len(labelled), batch_size))
    norms = mia.gradnorm_scores(model, batches, on_logits=keep)
    if any(s is None for s in scored):
        raise RuntimeError("GradNorm pass returned no logits for an answer; its records cannot be scored")
    return scored, norms


def _task_records(model, enc: Encoder, task: str, rows: list[dict], generations: list[str], batch_size: int,
                  cost: CostTracker, gradnorm: bool = False, parity=False) -> list[dict]:
    """Score one task's rows, given their greedy answers (``_generate_pooled``); one record per row."""
    paraphrased = task in ("forget", "retain")
    # With GradNorm on, the forget answers come from its pass (``_answers_and_gradnorms``).
    fused = gradnorm and task == "forget"
    items = [(r["question"], ([] if fused else [r["answer"]])
              + ([r["paraphrased_answer"]] if paraphrased else []) + list(r["perturbed_answer"])) for r in rows]
    # Min-K%++ needs the statistics of the forget answer only (the MIAs score it alone).
    scored = score_items(model, enc, items, batch_size=batch_size, with_stats=(task == "forget" and not fused),
                         stats_answers=1)
    if fused:
        answers, norms = _answers_and_gradnorms(model, enc, rows, batch_size, parity)
        scored = [[a] + item for a, item in zip(answers, scored)]
    rouge = tofu.rouge_l_recall(generations, [r["answer"] for r in rows])
    cost.add_tokens(sum(len(s.labels) for item in scored for s in item))
    records = []
    for r, item, gen, rl in zip(rows, scored, generations, rouge):
        ans = item[0]
        ref = item[1] if paraphrased else ans
        pert = item[2 if paraphrased else 1:]
        rec = {
            "task": task, "index": r["_index"], "_order": (TASKS.index(task), r["_index"]),
            "question": r["question"], "answer": r["answer"], "generation": gen,
            "rougeL_recall": rl, "probability": math.exp(-ans.avg_nll),
            "avg_nll": ans.avg_nll,
            "avg_nll_paraphrased": ref.avg_nll if paraphrased else None,
            "avg_nll_perturbed": [p.avg_nll for p in pert],
            "truth_ratio": float(tofu.truth_ratio([ref.avg_nll], [[p.avg_nll for p in pert]])[0]),
            **token_metrics(ans, parity),
        }
        if task == "forget":
            rec.update(mia_scores(ans, r["answer"], enc.tokenizer, parity))
        records.append(rec)
    if fused:
        for rec, g in zip(records, norms):
            rec["mia_gradnorm"] = g
    return records


def _holdout_records(model, enc: Encoder, rows: list[dict], batch_size: int, cost,
                     gradnorm: bool = False, parity=False) -> list[dict]:
    # The same scoring path as the forget answers they are compared with.
    if gradnorm:
        scored, norms = _answers_and_gradnorms(model, enc, rows, batch_size, parity)
    else:
        scored = [item[0] for item in score_items(model, enc, [(r["question"], [r["answer"]]) for r in rows],
                                                  batch_size, with_stats=True)]
    cost.add_tokens(sum(len(s.labels) for s in scored))
    records = [{"task": "holdout", "index": r["_index"], "_order": (len(TASKS), r["_index"]),
                "question": r["question"], "answer": r["answer"], "avg_nll": s.avg_nll,
                **mia_scores(s, r["answer"], enc.tokenizer, parity)} for r, s in zip(rows, scored)]
    if gradnorm:
        for rec, g in zip(records, norms):
            rec["mia_gradnorm"] = g
    return records


def _generate_pooled(model, enc: Encoder, shares: dict[str, list[dict]], batch_size: int,
                     max_new_tokens: int, progress=None) -> dict[str, list[str]]:
    """Greedy answers of every generating task's rows, generated in one pass, by task."""
    tasks = [t for t, rows in shares.items() if t != "holdout" and rows]
    questions = [r["question"] for t in tasks for r in shares[t]]
    answers = iter(generate_greedy(model, enc, questions, batch_size, max_new_tokens, progress=progress))
    return {t: [next(answers) for _ in shares[t]] for t in tasks}


def summarise(records: list[dict], retain_truth_ratios=None, retain_mia_auc: float | None = None,
              retain_losses: dict | None = None) -> dict:
    """Every aggregate of the suite, computed from per-item records.

    ``retain_losses`` ((task, index) -> the retain model's LOSS score of the same forget and
    holdout items) enables the Reference attack, ``L_model − L_retain`` (docs/metrics.md §3).
    """
    by_task = {t: [r for r in records if r["task"] == t] for t in TASKS + ("holdout",)}
    summary: dict = {}
    for task in TASKS:
        rs = by_task[task]
        if not rs:
            continue
        avg = [r["avg_nll"] for r in rs]
        if task in ("real_authors", "world_facts"):
            prob = tofu.normalised_probability(avg, [r["avg_nll_perturbed"] for r in rs])
        else:
            prob = tofu.mean_probability(avg)
        summary[task] = {
            "probability": prob,
            "rougeL_recall": float(np.mean([r["rougeL_recall"] for r in rs])),
            "truth_ratio": tofu.truth_ratio_score([r["truth_ratio"] for r in rs], task),
            "exact_memorisation": float(np.mean([r["exact_memorisation"] for r in rs])),
            "extraction_strength": float(np.mean([r["extraction_strength"] for r in rs])),
            "n_items": len(rs),
        }
    if all(t in summary for t in tofu.UTILITY_TASKS):
        summary["model_utility"] = tofu.model_utility({t: summary[t] for t in tofu.UTILITY_TASKS})
    forget_tr = [r["truth_ratio"] for r in by_task["forget"]]
    if retain_truth_ratios is not None and forget_tr:
        fq = tofu.forget_quality(forget_tr, retain_truth_ratios)
        summary["forget_quality"] = fq
        summary["log10_forget_quality"] = math.log10(max(fq, 1e-300))
    if by_task["holdout"] and by_task["forget"]:
        summary["mia"] = {a: mia.mia_auc([r[f"mia_{a}"] for r in by_task["forget"]],
                                         [r[f"mia_{a}"] for r in by_task["holdout"]])
                          for a in mia.MIA_ATTACKS}
        if all("mia_gradnorm" in r for r in by_task["forget"] + by_task["holdout"]):
            summary["mia"]["gradnorm"] = mia.mia_auc([r["mia_gradnorm"] for r in by_task["forget"]],
                                                     [r["mia_gradnorm"] for r in by_task["holdout"]])
        if retain_losses:
            def ref(task):
                rs = by_task[task]
                return mia.reference_scores([r["mia_loss"] for r in rs],
                                            [retain_losses[(task, r["index"])] for r in rs])
            summary["mia"]["reference"] = mia.mia_auc(ref("forget"), ref("holdout"))
        if retain_mia_auc is not None:
            # Undefined (None) when the retain model's AUC is 1; never fail the whole eval.
            summary["privleak"] = (None if retain_mia_auc >= 1.0
                                   else mia.privleak(summary["mia"]["min_k"], retain_mia_auc))
    return summary


def evaluate_tofu(model, encoder: Encoder, bench, split: str, *, retain_truth_ratios=None,
                  retain_mia_auc: float | None = None, retain_losses: dict | None = None,
                  batch_size: int = 32, max_new_tokens: int = 200, max_items: int | None = None,
                  gradnorm: bool = False, parity=False, part: str | None = None) -> tuple[dict, list[dict]]:
    """Run the whole suite of ``bench`` (a TOFU benchmark) for a forget ``split``; returns
    (summary, per-item records in dataset order).

    ``max_items=300`` reproduces the 2024 TOFU code's cut of each split to its first rows.
    ``parity="open-unlearning"`` scores the token-level metrics by open-unlearning's
    conventions (``drops_eos`` above); the default is this harness's.
    ``part`` ("validation" or "test") scores only that part of the items (``bench.in_part``),
    e.g. the validation items an evaluation during unlearning looks at; no summary is computed
    then (returned: parity and cost only): the caller summarises the part with the reference
    restricted to the same part (``summarise_records``), the one summary of it that is right.

    The questions of every task are generated together, in batches of ``batch_size`` sorted by
    length (rather than one task at a time: fewer, fuller batches; on a small model per-step
    overhead, not arithmetic, is most of generation). A left-padded row's greedy answer does
    not depend on its batch (tests/test_generate.py checks them against one prompt at a time).
    """
    with sharded_eval(model) as shard, CostTracker() as cost:
        configs = dict(bench.eval_configs(split))
        configs["holdout"] = bench.holdout_config(split)
        shares = {}
        for task, config in configs.items():
            rows = [dict(r, _index=i) for i, r in enumerate(bench.config(config))]
            rows = rows[:max_items] if max_items else rows
            shares[task] = shard.take([r for r in rows if bench.in_part({"index": r["_index"]}, part)])
        # Two stages, each with its own count: the questions answered, then the items scored.
        questions = sum(len(rows) for task, rows in shares.items() if task != "holdout")
        with Progress(f"{bench.name} {split} generation", questions) as progress:
            pooled = _generate_pooled(model, encoder, shares, batch_size, max_new_tokens, progress.update)
        with Progress(f"{bench.name} {split} scoring", sum(map(len, shares.values()))) as progress:
            for task, mine in shares.items():
                if not mine:
                    continue
                if task == "holdout":
                    shard.records += _holdout_records(model, encoder, mine, batch_size, cost, gradnorm, parity)
                else:
                    shard.records += _task_records(model, encoder, task, mine, pooled[task], batch_size, cost,
                                                   gradnorm, parity)
                progress.update(len(mine))
    records = shard.records
    if part:
        return {"parity": parity, "part": part, "cost": cost.as_dict()}, records
    # Only items present in the reference count (a reference evaluated on fewer items).
    keys = {(r["task"], r["index"]) for r in records if r["task"] in ("forget", "holdout")}
    losses = retain_losses if retain_losses and keys <= set(retain_losses) else None
    summary = summarise(records, retain_truth_ratios, retain_mia_auc, losses)
    summary["parity"] = parity
    summary["cost"] = cost.as_dict()
    return summary, records
