"""Copyright-completion evaluation (docs/metrics.md §6): greedy completions of book prefixes
scored by ROUGE-L recall and BLEU against the passage's rest, and perplexity on held-out
general text.

Prompts are used as they are (the item's instruction + prefix; no chat template), as in
the published protocol. Each rank takes ``rows[rank::world]`` of the items and of the
general texts; records are gathered and every aggregate is computed from all of them, so
a 2-process evaluation returns the same numbers as a 1-process one.
"""

from __future__ import annotations

import torch

from unlearnbench.eval.generate import generate_ids
from unlearnbench.eval.progress import Progress
from unlearnbench.metrics import copyright as cm
from unlearnbench.metrics.cost import CostTracker
from unlearnbench.parallel import sharded_eval


def _device(model) -> torch.device:
    return next(model.parameters()).device


def _pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def generate_raw(model, tokenizer, prompts: list[str], *, max_new_tokens: int,
                 batch_size: int = 32) -> list[str]:
    """Greedy completions of raw prompt strings (BOS added, left-padded, stop at EOS)."""
    return _generate(model, tokenizer, prompts, max_new_tokens, batch_size)[0]


def _generate(model, tokenizer, prompts, max_new_tokens, batch_size, progress=None) -> tuple[list[str], int]:
    """(completions, tokens processed: prompt tokens + generated tokens up to EOS)."""
    encoded = [tokenizer(p, add_special_tokens=True)["input_ids"] for p in prompts]
    new = generate_ids(model, encoded, pad_id=_pad_id(tokenizer), eos_id=tokenizer.eos_token_id,
                       max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress)
    n_tokens = sum(len(e) for e in encoded) + sum(len(n) for n in new)  # each cut after its EOS
    return [tokenizer.decode(n, skip_special_tokens=True).strip() for n in new], n_tokens


def perplexity_windows(ids: list[int], context_len: int, prefix_id: int) -> list[tuple[list[int], list[int]]]:
    """Disjoint windows ``(inputs, targets)`` covering every token of ``ids`` once.

    lm-evaluation-harness's rolling log-likelihood with context length 1: window k
    predicts ``ids[kL:(k+1)L]`` from ``[previous token] + ids[kL:(k+1)L - 1]``, the
    previous token of the first window being ``prefix_id`` (BOS). Inputs never exceed
    ``context_len`` tokens.
    """
    if context_len < 1:
        raise ValueError(f"context_len must be >= 1, got {context_len}")
    windows = []
    for start in range(0, len(ids), context_len):
        targets = ids[start: start + context_len]
        ctx = prefix_id if start == 0 else ids[start - 1]
        windows.append(([ctx] + targets[:-1], targets))
    return windows


@torch.no_grad()
def text_nll(model, tokenizer, texts: list[str], *, context_len: int,
             batch_size: int = 32) -> list[tuple[float, int]]:
    """Per text: (summed NLL of every token, number of tokens), over disjoint windows."""
    prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    windows, owner = [], []
    for t, text in enumerate(texts):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        for w in perplexity_windows(ids, context_len, prefix):
            windows.append(w)
            owner.append(t)
    sums = [0.0] * len(texts)
    counts = [0] * len(texts)
    order = sorted(range(len(windows)), key=lambda i: len(windows[i][0]))
    device, pad = _device(model), _pad_id(tokenizer)
    for start in range(0, len(order), batch_size):
        idx = order[start: start + batch_size]
        width = max(len(windows[i][0]) for i in idx)
        inputs = torch.full((len(idx), width), pad, dtype=torch.long)
        targets = torch.full((len(idx), width), -100, dtype=torch.long)
        attention = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            x, y = windows[i]
            inputs[row, : len(x)] = torch.tensor(x)
            targets[row, : len(y)] = torch.tensor(y)
            attention[row, : len(x)] = 1
        logits = model(input_ids=inputs.to(device), attention_mask=attention.to(device)).logits.float()
        targets = targets.to(device)
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, ignore_index=-100,
                                                reduction="none")
        for row, i in enumerate(idx):
            sums[owner[i]] += float(nll[row].sum())
            counts[owner[i]] += len(windows[i][1])
    return list(zip(sums, counts))


def summarise(records: list[dict]) -> dict:
    """Every aggregate, computed from the per-item and per-text records."""
    items = [r for r in records if r["task"] == "completion"]
    texts = [r for r in records if r["task"] == "general"]
    summary: dict = {"n_items": len(items), "n_general_texts": len(texts)}
    if items:
        summary["rougeL_recall"] = cm.mean([r["rougeL_recall"] for r in items], "rougeL_recall")
        summary["bleu"] = cm.mean([r["bleu"] for r in items], "bleu")
    if texts:
        nll = [r["nll_sum"] for r in texts]
        summary["perplexity"] = cm.perplexity(nll, [r["n_tokens"] for r in texts])
        summary["word_perplexity"] = cm.word_perplexity(nll, [r["text"] for r in texts])
        summary["n_general_tokens"] = sum(r["n_tokens"] for r in texts)
    return summary


def evaluate_copyright(model, tokenizer, items: list[dict], general_texts: list[str], *,
                       max_new_tokens: int, batch_size: int = 32,
                       context_len: int | None = None) -> tuple[dict, list[dict]]:
    """Completions of ``items`` (``question`` = prompt, ``answer`` = reference) and
    perplexity of ``general_texts``; returns (summary, records in input order).

    ``context_len`` (default: the model's ``max_position_embeddings``) is the window of
    the perplexity computation.
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    for i, it in enumerate(items):
        if not isinstance(it.get("question"), str) or not isinstance(it.get("answer"), str):
            raise ValueError(f"copyright item {i} needs string 'question' and 'answer' fields; "
                             f"got keys {sorted(it)}")
    context_len = int(context_len or model.config.max_position_embeddings)
    with sharded_eval(model) as shard, CostTracker() as cost:
        mine = shard.take(range(len(items)))
        progress = Progress("copyright completions", len(mine))
        if mine:
            prompts = [items[i]["question"] for i in mine]
            refs = [items[i]["answer"] for i in mine]
            gens, n_tok = _generate(model, tokenizer, prompts, max_new_tokens, batch_size, progress.update)
            cost.add_tokens(n_tok)
            rouge, bleu = cm.rouge_l_recall(gens, refs), cm.bleu(gens, refs)
            for i, gen, rl, bl in zip(mine, gens, rouge, bleu):
                it = items[i]
                shard.records.append({
                    "task": "completion", "index": i, "_order": (0, i),
                    "passage": it.get("passage"), "template": it.get("template"),
                    "question": it["question"], "answer": it["answer"], "generation": gen,
                    "rougeL_recall": rl, "bleu": bl,
                })
        progress.close()
        texts_mine = shard.take(range(len(general_texts)))
        if texts_mine:
            scored = text_nll(model, tokenizer, [general_texts[i] for i in texts_mine],
                              context_len=context_len, batch_size=batch_size)
            for i, (nll, n) in zip(texts_mine, scored):
                cost.add_tokens(n)
                shard.records.append({"task": "general", "index": i, "_order": (1, i),
                                      "text": general_texts[i], "nll_sum": nll, "n_tokens": n})
    records = shard.records
    summary = summarise(records)
    summary["cost"] = cost.as_dict()
    return summary, records
