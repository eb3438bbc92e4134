"""Batched teacher-forced scoring (greedy generation: ``eval.generate``).

``score_pairs`` scores (question, answer) pairs, sorted by length so batches carry little
padding. ``score_items`` scores every answer of an item (answer, paraphrase, perturbed ones)
behind one copy of the item's prompt: the answers are packed into one sequence, each one
attending to the prompt and to itself only, so the prompt is computed once per item instead
of once per answer (TOFU's 7 answers per item: about 1.8x fewer tokens on the stand-in).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from unlearnbench.data.collate import IGNORE, Encoder, pad_right


@dataclass
class Scored:
    """Per-sequence scores over the scored (answer + EOS) tokens."""

    nll_sum: float
    n_tokens: int
    token_logprobs: list[float]
    preds: list[int]  # teacher-forced argmax at each scored position
    labels: list[int]
    mu: list[float]  # Min-K%++ statistics of the full next-token distribution
    sigma: list[float]

    @property
    def avg_nll(self) -> float:
        return self.nll_sum / max(1, self.n_tokens)


def _device(model) -> torch.device:
    return next(model.parameters()).device


def score_logits(logits: torch.Tensor, targets: torch.Tensor, lengths: list[int], flags: list[bool]) -> list[Scored]:
    """``Scored`` of consecutive sequences from the rows of ``logits`` that predict ``targets``
    (one vocabulary row per scored token, ``lengths[k]`` rows for sequence k, in order), with
    the Min-K%++ statistics of the sequences flagged in ``flags``."""
    logits = logits.float()
    logp = torch.log_softmax(logits, dim=-1)
    tok_lp = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    preds = logits.argmax(-1).tolist()
    targets = targets.tolist()
    mu: list[float] = []
    sigma: list[float] = []
    if any(flags):
        # Only the rows of the flagged sequences: the statistics are per row, and computing
        # them over the whole vocabulary is a third of the scoring's cost on the tiny model.
        rows = logp if all(flags) else logp[torch.repeat_interleave(
            torch.tensor(flags, device=logp.device), torch.tensor(lengths, device=logp.device))]
        # Min-K%++ statistics; a masked vocabulary entry (logit -inf) has p = 0 and adds
        # 0, not 0·(-inf) = NaN (as metrics.mia.min_k_plus_plus_stats).
        p = rows.exp()
        p_logp = torch.where(p > 0, p * rows, torch.zeros_like(p))
        mu_t = p_logp.sum(-1)
        sigma_t = ((p_logp * rows).nan_to_num(0.0).sum(-1) - mu_t * mu_t).clamp(min=1e-6).sqrt()
        mu, sigma = mu_t.tolist(), sigma_t.tolist()
    # Each sequence's sum is taken in float32 over its own tokens (a per-sequence tensor sum).
    sums = [float(-seg.sum()) for seg in tok_lp.split(lengths)]
    tok_lp = tok_lp.tolist()
    out, end, at = [], 0, 0  # at: the next statistics row
    for n, nll_sum, flag in zip(lengths, sums, flags):
        end += n
        out.append(Scored(nll_sum=nll_sum, n_tokens=n, token_logprobs=tok_lp[end - n: end],
                          preds=preds[end - n: end], labels=targets[end - n: end],
                          mu=mu[at: at + n] if flag else [], sigma=sigma[at: at + n] if flag else []))
        at += n if flag else 0
    return out


@torch.no_grad()
def score_pairs(model, encoder: Encoder, pairs: list[tuple[str, str]], batch_size: int = 32,
                with_stats: bool = False) -> list[Scored]:
    """Score each (question, answer) pair; returns one ``Scored`` per pair, in order."""
    encoded = encoder.encode_many(pairs)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
    out: list[Scored | None] = [None] * len(encoded)
    device = _device(model)
    for start in range(0, len(order), batch_size):
        idx = order[start: start + batch_size]
        batch = pad_right([encoded[i] for i in idx], encoder.pad_id)
        logits = model(input_ids=batch["input_ids"].to(device),
                       attention_mask=batch["attention_mask"].to(device)).logits
        labels = batch["labels"][:, 1:].to(device)
        mask = labels != -100
        # Only the scored (answer) positions, a vocabulary row each: the prompt's
        # distributions are never used, and every statistic is per row.
        lengths = mask.sum(1).tolist()
        scored = score_logits(logits[:, :-1][mask], labels[mask], lengths, [with_stats] * len(lengths))
        for i, sc in zip(idx, scored):
            out[i] = sc
    return out


# Architectures whose Hugging Face implementation takes a custom 4-D attention mask and
# explicit position ids, so that packed answers score as they do alone
# (tests/test_scoring_packed.py checks each against score_pairs). Others, and other attention
# implementations (flash attention takes no 4-D mask; eager adds the mask as a float, whose
# dtype would have to follow mixed precision), score pair by pair.
PACKABLE = ("llama", "mistral", "phi", "qwen2")


def packable(model) -> bool:
    config = getattr(model, "config", None)
    return (getattr(config, "model_type", None) in PACKABLE
            and getattr(config, "_attn_implementation", None) == "sdpa")


def _pack(prefix: list[int], answers: list[list[int]]) -> dict:
    """One item as one sequence. The prompt is segment 0 and answer k segment k + 1; positions
    restart after the prompt for every answer, so each answer sits where it would alone.
    An answer's last token is left out: it predicts nothing that is scored and no other token
    sees it (about 1 token in 15 on the TOFU stand-in).
    ``src``/``tgt``: for every scored token, the position whose logits predict it and the
    token; ``lengths``: scored tokens per answer (as ``score_pairs`` counts them)."""
    p = len(prefix)
    ids, pos, seg, src, tgt, lengths = list(prefix), list(range(p)), [0] * p, [], [], []
    for k, ans in enumerate(answers):
        start = len(ids)
        inputs = ans[:-1]
        ids += inputs
        pos += range(p, p + len(inputs))
        seg += [k + 1] * len(inputs)
        # Token t is predicted at the answer's previous token, the first one at the prompt's
        # last position; with no prompt the first token is not scored (nothing precedes it).
        first = 0 if p else 1
        src += [(start + t - 1) if t else p - 1 for t in range(first, len(ans))]
        tgt += ans[first:]
        lengths.append(max(0, len(ans) - first))
    return {"ids": ids, "pos": pos, "seg": seg, "src": src, "tgt": tgt, "lengths": lengths,
            "longest": p + max((len(a) for a in answers), default=0)}


@torch.no_grad()
def score_items(model, encoder: Encoder, items: list[tuple[str, list[str]]], batch_size: int = 32,
                with_stats: bool = False, stats_answers: int | None = None) -> list[list[Scored]]:
    """Score every answer of each (question, answers) item: ``score_pairs`` of the item's
    pairs, computed with the prompt once per item (see the module docstring). ``with_stats``:
    the Min-K%++ statistics of each item's first ``stats_answers`` answers (all by default)."""
    pairs = [(q, a) for q, answers in items for a in answers]
    spans, k = [], 0
    for _, answers in items:
        spans.append((k, len(answers)))
        k += len(answers)
    wanted = [with_stats and (stats_answers is None or j < stats_answers) for _, n in spans for j in range(n)]
    if not packable(model):
        flat = score_pairs(model, encoder, pairs, batch_size, with_stats)
        if with_stats:  # the same records as the packed path: statistics where they were asked for
            for sc, want in zip(flat, wanted):
                if not want:
                    sc.mu, sc.sigma = [], []
        return [flat[s: s + n] for s, n in spans]
    encoded = encoder.encode_many(pairs)
    packed = []
    for s, n in spans:
        seqs = encoded[s: s + n]
        if not seqs:  # an item without answers: nothing to score, no tokens
            packed.append(_pack([], []))
            continue
        # The prompt is every unscored leading token; encode keeps it identical across answers.
        p = [next((t for t, lab in enumerate(labels) if lab != IGNORE), len(labels)) for _, labels in seqs]
        prefix = seqs[0][0][: p[0]]
        if any(ids[: q] != prefix for (ids, _), q in zip(seqs, p)):
            raise ValueError("score_items: the answers of an item do not share the prompt's tokens")
        packed.append(_pack(prefix, [ids[q:] for (ids, _), q in zip(seqs, p)]))
    # Whole items per batch, shortest first, while the padded batch holds no more tokens than
    # batch_size unpacked sequences of its longest (prompt + answer) would: the memory that
    # batch_size means in score_pairs.
    order = sorted(range(len(items)), key=lambda i: len(packed[i]["ids"]))
    batches, current, longest = [], [], 0
    for i in order:
        single = packed[i]["longest"]
        if current and (len(current) + 1) * len(packed[i]["ids"]) > batch_size * max(longest, single):
            batches.append(current)
            current, longest = [], 0
        current.append(i)
        longest = max(longest, single)
    if current:
        batches.append(current)
    device = _device(model)
    out: list[list[Scored]] = [[] for _ in items]
    for idx in batches:
        width = max(1, max(len(packed[i]["ids"]) for i in idx))  # 0: no prompt, one-token answers
        ids = torch.full((len(idx), width), encoder.pad_id, dtype=torch.long)
        pos = torch.zeros((len(idx), width), dtype=torch.long)
        seg = torch.full((len(idx), width), -1, dtype=torch.long)  # -1: padding
        rows, cols, targets, lengths, stats = [], [], [], [], []
        for b, i in enumerate(idx):
            item = packed[i]
            n = len(item["ids"])
            ids[b, :n], pos[b, :n], seg[b, :n] = (torch.tensor(item[key]) for key in ("ids", "pos", "seg"))
            rows += [b] * len(item["src"])
            cols += item["src"]
            targets += item["tgt"]
            lengths += item["lengths"]
            stats += wanted[spans[i][0]: spans[i][0] + spans[i][1]]
        # Query i sees key j <= i of the prompt or of its own answer; padding sees only itself
        # (a row with no visible key would be NaN). A boolean mask (True: attend) is what SDPA
        # takes in any compute dtype.
        causal = torch.ones(width, width, dtype=torch.bool).tril()
        visible = causal & ((seg[:, :, None] == seg[:, None, :]) | (seg[:, None, :] == 0)) & (seg[:, :, None] >= 0)
        visible |= torch.eye(width, dtype=torch.bool)
        logits = model(input_ids=ids.to(device), attention_mask=visible[:, None].to(device),
                       position_ids=pos.to(device)).logits
        scored = iter(score_logits(logits[torch.tensor(rows, dtype=torch.long, device=device),
                                          torch.tensor(cols, dtype=torch.long, device=device)],
                                   torch.tensor(targets, dtype=torch.long, device=device), lengths, stats))
        for i in idx:
            out[i] = [next(scored) for _ in range(spans[i][1])]
    return out
