"""Evaluator of DETOX (WAGLE's toxicity task): toxicity of greedy generations on three prompt
sets, and the normal-prompt utility of the LLMU scenarios.

Tasks: ``forget`` (the forgotten prompts, in WAGLE's question layout), ``pku`` (unseen
PKU-SafeRLHF test prompts), ``rtp`` (RealToxicityPrompts) and ``normal`` (TruthfulQA's test
part). Each prompt string is given to the model as it is (a ``raw`` encoder: BOS + the text),
because WAGLE feeds its prompts untemplated; the benchmark writes the strings. Only the
generated text is judged. Items are sharded ``rows[rank::world]`` and gathered, and every
aggregate comes from the gathered records (``summarise_detox``), so a part of the items can be
summarised alone (a sweep's validation items).
"""

from __future__ import annotations

import math

import numpy as np

from unlearnbench.data.collate import Encoder
from unlearnbench.eval.generate import generate_greedy
from unlearnbench.eval.scoring import score_pairs
from unlearnbench.eval.toxicity import TOXIC_THRESHOLD, toxicity_summary
from unlearnbench.metrics import generation as gm
from unlearnbench.metrics.cost import CostTracker
from unlearnbench.parallel import sharded_eval

DETOX_TASKS = ("forget", "pku", "rtp", "normal")


def summarise_detox(records: list[dict]) -> dict:
    """Per task: mean toxicity score and toxic rate (toxicity tasks), diversity; on normal
    prompts similarity to the original model's output and fluency; flat headline keys."""
    summary: dict = {}
    for task in DETOX_TASKS:
        rs = [r for r in records if r["task"] == task]
        if not rs:
            continue
        out = {"diversity": float(np.mean([r["diversity"] for r in rs])), "n_items": len(rs)}
        if task != "normal":
            out.update(toxicity_summary([r["toxicity"] for r in rs]))
            summary[f"toxicity_{task}"], summary[f"toxic_rate_{task}"] = out["toxicity"], out["toxic_rate"]
        if all("fluency_nll" in r for r in rs):
            out["fluency"] = gm.perplexity([r["fluency_nll"] for r in rs], [r["fluency_tokens"] for r in rs])
        if all("similarity" in r for r in rs):
            out["similarity"] = float(np.mean([r["similarity"] for r in rs]))
        summary[task] = out
    if "similarity" in summary.get("normal", {}):
        summary["normal_similarity"] = summary["normal"]["similarity"]
    return summary


def evaluate_detox(model, encoder: Encoder, prompts: dict[str, list[str]], judge, *, original=None,
                   batch_size: int = 32, max_new_tokens: int = 64, max_items: int | None = None,
                   normal_encoder: Encoder | None = None) -> tuple[dict, list[dict]]:
    """Generate greedily on every task's prompt strings and judge the toxicity tasks.

    ``prompts``: task -> prompt strings, fed as they are (``encoder`` should be a ``raw`` one).
    ``normal`` prompts are questions laid out by ``normal_encoder`` (the benchmark's template);
    with ``original`` their outputs are compared to the original model's and scored for fluency.
    """
    with sharded_eval(model) as shard, CostTracker() as cost:
        for order, task in enumerate(t for t in DETOX_TASKS if t in prompts):
            items = prompts[task][:max_items] if max_items else prompts[task]
            mine = shard.take(range(len(items)))
            if not mine:
                continue
            texts = [items[i] for i in mine]
            enc = normal_encoder if task == "normal" and normal_encoder is not None else encoder
            gens = generate_greedy(model, enc, texts, batch_size, max_new_tokens)
            recs = []
            for i, p, g in zip(mine, texts, gens):
                ids = enc.tokenizer(g, add_special_tokens=False)["input_ids"]
                cost.add_tokens(len(ids))
                recs.append({"task": task, "index": i, "_order": (order, i), "prompt": p, "generation": g,
                             "diversity": gm.token_diversity(ids)})
            if task != "normal":
                for rec, s in zip(recs, judge.score(texts, gens)):
                    rec.update(toxicity=float(s), toxic=bool(s > TOXIC_THRESHOLD))
            elif original is not None:
                scored = score_pairs(original, enc, list(zip(texts, gens)), batch_size=batch_size)
                orig = generate_greedy(original, enc, texts, batch_size, max_new_tokens)
                for rec, s, o, sim in zip(recs, scored, orig, gm.output_similarity(gens, orig)):
                    rec.update(fluency_nll=s.nll_sum, fluency_tokens=s.n_tokens, perplexity=math.exp(s.avg_nll),
                               original_generation=o, similarity=sim)
            shard.records += recs
    records = shard.records
    summary = summarise_detox(records)
    summary["cost"] = cost.as_dict()
    return summary, records
