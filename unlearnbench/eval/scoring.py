"""Batched teacher-forced scoring and greedy generation.

All the answers of all the items of a split (answer, paraphrase, perturbed ones) are
flattened into one list of sequences, sorted by length so batches carry little padding,
and scored in as few forward passes as the batch size allows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from unlearnbench.data.collate import Encoder, pad_left, pad_right


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


@torch.no_grad()
def score_pairs(model, encoder: Encoder, pairs: list[tuple[str, str]], batch_size: int = 32,
                with_stats: bool = False) -> list[Scored]:
    """Score each (question, answer) pair; returns one ``Scored`` per pair, in order."""
    encoded = [encoder.encode(q, a) for q, a in pairs]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
    out: list[Scored | None] = [None] * len(encoded)
    device = _device(model)
    for start in range(0, len(order), batch_size):
        idx = order[start: start + batch_size]
        batch = pad_right([encoded[i] for i in idx], encoder.pad_id)
        logits = model(input_ids=batch["input_ids"].to(device),
                       attention_mask=batch["attention_mask"].to(device)).logits
        logits = logits[:, :-1].float()
        labels = batch["labels"][:, 1:].to(device)
        logp = torch.log_softmax(logits, dim=-1)
        mask = labels != -100
        safe = labels.clamp(min=0)
        tok_lp = logp.gather(-1, safe.unsqueeze(-1)).squeeze(-1)
        preds = logits.argmax(-1)
        if with_stats:
            # Min-K%++ statistics; a masked vocabulary entry (logit -inf) has p = 0 and adds
            # 0, not 0·(-inf) = NaN (as metrics.mia.min_k_plus_plus_stats).
            p = logp.exp()
            p_logp = torch.where(p > 0, p * logp, torch.zeros_like(p))
            mu = p_logp.sum(-1)
            sigma = ((p_logp * logp).nan_to_num(0.0).sum(-1) - mu * mu).clamp(min=1e-6).sqrt()
        for row, i in enumerate(idx):
            m = mask[row]
            lps = tok_lp[row][m]
            out[i] = Scored(
                nll_sum=float(-lps.sum()), n_tokens=int(m.sum()),
                token_logprobs=lps.tolist(), preds=preds[row][m].tolist(),
                labels=labels[row][m].tolist(),
                mu=mu[row][m].tolist() if with_stats else [],
                sigma=sigma[row][m].tolist() if with_stats else [],
            )
    return out


@torch.no_grad()
def generate_greedy(model, encoder: Encoder, questions: list[str], batch_size: int = 32,
                    max_new_tokens: int = 200) -> list[str]:
    """Greedy completions of each question's prompt (left-padded, stop at EOS)."""
    prompts = [encoder.prompt_ids(q) for q in questions]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out: list[str | None] = [None] * len(prompts)
    device = _device(model)
    tok = encoder.tokenizer
    for start in range(0, len(order), batch_size):
        idx = order[start: start + batch_size]
        batch = pad_left([prompts[i] for i in idx], encoder.pad_id)
        width = batch["input_ids"].shape[1]
        gen = model.generate(input_ids=batch["input_ids"].to(device),
                             attention_mask=batch["attention_mask"].to(device),
                             do_sample=False, max_new_tokens=max_new_tokens,
                             pad_token_id=encoder.pad_id, eos_token_id=encoder.eos_id,
                             temperature=None, top_p=None, top_k=None)
        for row, i in enumerate(idx):
            out[i] = tok.decode(gen[row, width:], skip_special_tokens=True).strip()
    return out
