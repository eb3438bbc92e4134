"""The MUSE evaluation suite (docs/metrics.md §4): VerbMem, KnowMem on D_f and D_r, MIA and PrivLeak.

Prompts are raw text and the model's tokenizer adds BOS itself (Llama): no chat template.
Each rank evaluates ``rows[rank::world]`` of every task; the per-item records are gathered
and every aggregate is computed from the full list, so 2 processes give the numbers of 1.

``parity=True`` reproduces muse_bench's own choices where they differ from the defaults
(docs/research-muse.md lists them): a constant retrain AUC, one example at a time, fp32,
a VerbMem ground truth cut to 128 tokens *counting BOS* (muse_bench tokenises it with
special tokens before cutting), and MIA texts scored whole: muse_bench calls
``tokenizer.encode(text)`` with no truncation, so parity scores BOS + every token up to
the model's context (``max_position_embeddings``). Not reproduced: a text longer than the
context, which muse_bench would still feed whole (Llama's rotary positions run past it);
parity cuts it to the context and counts it in ``summary["mia_truncated"]``.

The default caps MIA texts at BOS + ``mia_max_tokens`` = 2048 tokens, on purpose: it is
open-unlearning's cap (``MUSE_MIA.yaml``, ``max_length: 2048``), whose open reproduction
gives the published rows the leaderboard shows beside ours; methods unlearn 2048-token
chunks (muse_bench's unlearning scripts set ``MAX_LEN=2048``, open-unlearning's MUSE data
``max_length: 2048``, and so does this harness); and it bounds the memory of batched
scoring. MUSE-News texts are near that length, so the cap can move PrivLeak there:
``summary["mia_truncated"]`` counts the texts it cut. Also not reproduced in either mode:
Min-K% keeps ``max(1, floor(0.4 n))`` tokens where muse_bench keeps ``int(0.4 n)`` (they
differ only for texts under 3 tokens).
"""

from __future__ import annotations


import numpy as np
import torch

from unlearnbench.data.collate import IGNORE
from unlearnbench.data.muse import HUB, load_split
from unlearnbench.data.parts import in_part
from unlearnbench.eval.generate import generate_text
from unlearnbench.eval.progress import Progress
from unlearnbench.eval.scoring import score_pairs
from unlearnbench.metrics import mia
from unlearnbench.metrics import muse as metrics
from unlearnbench.metrics.cost import CostTracker
from unlearnbench.parallel import sharded_eval

TASKS = ("verbmem_f", "knowmem_f", "knowmem_r", "privleak_forget", "privleak_holdout",
         "privleak_retain")
NO_RETRAIN_NOTE = ("PrivLeak not computed: it needs the retrain model's Min-K% AUC on privleak "
                   "forget vs holdout. Evaluate the retrain model and pass its summary['mia']"
                   "['min_k'] as retrain_auc, or use parity=True for muse_bench's constant.")


def _pad_id(tok) -> int:
    return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id


def _decode(tok, ids) -> str:
    # muse_bench also passes clean_up_tokenization_spaces=True; transformers 5 ignores it
    # for BPE tokenizers (Llama's included) and warns, so it is left out.
    return tok.decode(ids, skip_special_tokens=True)


def _generate(model, tok, prompts: list[list[int]], max_new_tokens: int, batch_size: int,
              stops: tuple[str, ...] = (), progress=None) -> list[str]:
    """Greedy continuations of token-id prompts (``eval.generate``; not stripped)."""
    return generate_text(model, tok, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size,
                         pad_id=_pad_id(tok), stops=stops, progress=progress)


class _Pretokenized:
    """Lets ``eval.scoring.score_pairs`` score sequences that are already token ids."""

    def __init__(self, seqs: list[tuple[list[int], list[int]]], pad_id: int):
        self.seqs, self.pad_id = seqs, pad_id

    def encode_many(self, pairs: list[tuple[int, None]]) -> list[tuple[list[int], list[int]]]:
        return [self.seqs[i] for i, _ in pairs]


def context_tokens(model, lead: int = 1) -> int | None:
    """How many text tokens after BOS fit the model's context (None: no limit recorded)."""
    cfg = model.config
    ctx = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)
    return ctx - lead if ctx else None


def _text_ids(tok, text: str, max_tokens: int | None) -> tuple[list[int], list[int], bool]:
    """(input_ids, labels, truncated): BOS + at most ``max_tokens`` text tokens; every token
    after the first is scored and no EOS is added (muse_bench and open-unlearning agree)."""
    ids = tok(text, add_special_tokens=True)["input_ids"]
    lead = 1 if ids and ids[0] == tok.bos_token_id else 0
    truncated = max_tokens is not None and len(ids) > lead + max_tokens
    if truncated:
        ids = ids[: lead + max_tokens]
    return ids, [IGNORE] + ids[1:], truncated


def _mia_records(model, tok, task: str, rows: list[dict], batch_size: int, max_tokens, cost) -> list[dict]:
    seqs, flags = [], []
    for r in rows:
        ids, labels, truncated = _text_ids(tok, r["text"], max_tokens)
        seqs.append((ids, labels))
        flags.append(truncated)
    scored = score_pairs(model, _Pretokenized(seqs, _pad_id(tok)), [(i, None) for i in range(len(seqs))],
                         batch_size=batch_size, with_stats=True)
    cost.add_tokens(sum(len(ids) for ids, _ in seqs))
    out = []
    for r, (ids, _), s, truncated in zip(rows, seqs, scored, flags):
        # Zlib divides by the compressed size of the text that was scored.
        text = _decode(tok, ids) if truncated else r["text"]
        out.append({
            "task": task, "index": r["_index"], "_order": (TASKS.index(task), r["_index"]),
            "n_tokens": s.n_tokens, "truncated": truncated,
            "mia_loss": mia.loss_score(s.token_logprobs),
            "mia_zlib": mia.zlib_score(s.token_logprobs, text),
            "mia_min_k": mia.min_k_score(s.token_logprobs, k=0.4),
            "mia_min_k_plus_plus": mia.min_k_plus_plus_score(s.token_logprobs, s.mu, s.sigma, k=0.4),
        })
    return out


def _verbmem_records(model, tok, rows, n_tokens: int, batch_size: int, parity: bool, cost,
                     progress=None) -> list[dict]:
    prompts = [tok(r["prompt"], add_special_tokens=True)["input_ids"] for r in rows]
    # muse_bench cuts the gt's ids *with* BOS to 128, i.e. keeps 127 text tokens.
    refs = [_decode(tok, tok(r["gt"], add_special_tokens=parity)["input_ids"][:n_tokens]) for r in rows]
    gens = _generate(model, tok, prompts, n_tokens, batch_size, progress=progress)
    cost.add_tokens(sum(map(len, prompts)) + n_tokens * len(rows))
    scores = metrics.verbmem_score(gens, refs)
    return [{"task": "verbmem_f", "index": r["_index"], "_order": (0, r["_index"]),
             "prompt": r["prompt"], "generation": g, "reference": ref, "score": s}
            for r, g, ref, s in zip(rows, gens, refs, scores)]


def _knowmem_records(model, tok, task: str, rows, icl, n_tokens: int, batch_size: int, cost,
                     progress=None) -> list[dict]:
    pairs = [(q["question"], q["answer"]) for q in icl]
    prompts = [tok(metrics.knowmem_prompt(pairs, r["question"]), add_special_tokens=True)["input_ids"]
               for r in rows]
    raw = _generate(model, tok, prompts, n_tokens, batch_size, stops=metrics.STOP_STRINGS, progress=progress)
    cost.add_tokens(sum(map(len, prompts)))
    answers = [metrics.cut_answer(g) for g in raw]
    scores = metrics.knowmem_score(answers, [r["answer"] for r in rows])
    return [{"task": task, "index": r["_index"], "_order": (TASKS.index(task), r["_index"]),
             "question": r["question"], "raw_generation": g, "generation": a,
             "reference": r["answer"], "score": s}
            for r, g, a, s in zip(rows, raw, answers, scores)]


def summarise(records: list[dict], retrain_auc: float | None = None) -> dict:
    """Every aggregate of the suite from per-item records (retrain_auc in mia_auc's orientation)."""
    by = {t: [r for r in records if r["task"] == t] for t in TASKS}
    summary: dict = {}
    for task in ("verbmem_f", "knowmem_f", "knowmem_r"):
        if by[task]:
            summary[task] = float(np.mean([r["score"] for r in by[task]]))
    if by["privleak_forget"] and by["privleak_holdout"]:
        summary["mia"] = {a: mia.mia_auc([r[f"mia_{a}"] for r in by["privleak_forget"]],
                                         [r[f"mia_{a}"] for r in by["privleak_holdout"]])
                          for a in mia.MIA_ATTACKS}
        if retrain_auc is None:
            summary["privleak_note"] = NO_RETRAIN_NOTE
        elif retrain_auc >= 1.0:
            summary["privleak"] = None
            summary["privleak_note"] = "PrivLeak undefined: the retrain AUC is 1 (1 - AUC = 0)"
        else:
            summary["privleak"] = mia.privleak(summary["mia"]["min_k"], retrain_auc)
        summary["retrain_auc"] = retrain_auc
    summary["mia_truncated"] = sum(bool(r.get("truncated")) for t in TASKS if t.startswith("privleak")
                                   for r in by[t])
    summary["n_items"] = {t: len(by[t]) for t in TASKS}
    return summary


def evaluate_muse(model, tokenizer, path, *, retrain_auc: float | None = None, parity: bool = False,
                  benchmark: str = "muse-news", batch_size: int = 16, verbmem_tokens: int = 128,
                  knowmem_tokens: int = 32, mia_max_tokens: int | None = 2048,
                  max_items: int | None = None, part: str | None = None) -> tuple[dict, list[dict]]:
    """Run the MUSE suite on ``path`` (hub name or local dir); returns (summary, records).

    ``part`` ("validation" or "test") scores only that part of the items (by each item's
    index, ``data.parts.in_part``; the in-context examples are not items and stay whole), e.g.
    the validation items an evaluation during unlearning looks at.

    ``retrain_auc`` is the retrain model's ``summary["mia"]["min_k"]`` (forget labelled 0,
    holdout 1); without it PrivLeak is left out and ``summary["privleak_note"]`` says why.
    """
    if parity:
        if retrain_auc is not None:
            raise ValueError("parity=True uses muse_bench's constant retrain AUC; "
                             "do not pass retrain_auc as well")
        retrain_auc = metrics.parity_retrain_auc(benchmark)
        bad = sorted({str(p.dtype) for p in model.parameters() if p.dtype != torch.float32})
        if bad:
            raise ValueError(f"parity=True evaluates in fp32 like muse_bench, but the model has "
                             f"{bad} weights; load it with torch_dtype=torch.float32")
        # muse_bench scores every text whole; the model's context is the only limit kept.
        batch_size, mia_max_tokens = 1, context_tokens(model)
    if str(path) in HUB.values() and HUB.get(benchmark) != str(path):
        raise ValueError(f"benchmark={benchmark!r} does not match path {path}; "
                         f"pass benchmark='{[k for k, v in HUB.items() if v == str(path)][0]}'")
    def rows(subset: str, split: str, cut: bool = True) -> list[dict]:
        data = [dict(r, _index=i) for i, r in enumerate(load_split(path, subset, split))]
        if not cut:
            return data
        data = data[:max_items] if max_items else data
        return [r for r in data if in_part({"index": r["_index"]}, part)]

    with sharded_eval(model) as shard, CostTracker() as cost:
        mine = shard.take
        verb = mine(rows("verbmem", "forget"))
        know = {task: (rows("knowmem", f"{name}_qa_icl", cut=False), mine(rows("knowmem", f"{name}_qa")))
                for task, name in (("knowmem_f", "forget"), ("knowmem_r", "retain"))}
        priv = {split: mine(rows("privleak", split)) for split in ("forget", "holdout", "retain")}
        total = len(verb) + sum(len(q) for _, q in know.values()) + sum(map(len, priv.values()))
        with Progress(benchmark, total) as progress:
            shard.records += _verbmem_records(model, tokenizer, verb, verbmem_tokens, batch_size, parity, cost,
                                              progress.update)
            for task, (icl, qa) in know.items():
                shard.records += _knowmem_records(model, tokenizer, task, qa, icl, knowmem_tokens, batch_size,
                                                  cost, progress.update)
            for split, share in priv.items():
                shard.records += _mia_records(model, tokenizer, f"privleak_{split}", share, batch_size,
                                              mia_max_tokens, cost)
                progress.update(len(share))
    records = shard.records
    summary = summarise(records, retrain_auc)
    summary["parity"] = parity
    summary["settings"] = {"verbmem_tokens": verbmem_tokens, "knowmem_tokens": knowmem_tokens,
                           "mia_max_tokens": mia_max_tokens, "batch_size": batch_size,
                           "max_items": max_items, "benchmark": benchmark}
    summary["cost"] = cost.as_dict()
    return summary, records
