"""Membership-inference scores, AUC and PrivLeak (docs/metrics.md §3).

Every score is oriented so that LOWER means more member-like.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import torch

MIA_ATTACKS = ("loss", "zlib", "min_k", "min_k_plus_plus")
# Attacks that need more than the model's token log-probs: a second model's losses
# (reference) or gradients (gradnorm). The evaluator computes them separately.
EXTRA_ATTACKS = ("reference", "gradnorm")
GRADNORM_P = (1, 2, float("inf"))


def _logprobs(token_logprobs, name: str = "token_logprobs") -> np.ndarray:
    if isinstance(token_logprobs, torch.Tensor):
        token_logprobs = token_logprobs.detach().float().cpu().numpy()
    arr = np.asarray(token_logprobs, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty: no scored tokens")
    return arr


def _lowest_k_mean(values: np.ndarray, k: float) -> float:
    if not 0.0 < k <= 1.0:
        raise ValueError(f"k must be in (0, 1], got {k}")
    m = max(1, math.floor(k * values.size))
    return float(np.mean(np.sort(values)[:m]))


def loss_score(token_logprobs) -> float:
    """LOSS attack score L = -mean of the scored tokens' log-probs."""
    return float(-np.mean(_logprobs(token_logprobs)))


def zlib_score(token_logprobs, text: str) -> float:
    """Zlib attack score: L divided by the zlib-compressed length of the text in bytes."""
    return loss_score(token_logprobs) / len(zlib.compress(text.encode("utf-8")))


def min_k_score(token_logprobs, k: float = 0.4) -> float:
    """Min-K% score: -mean of the lowest max(1, floor(k*n)) token log-probs."""
    return -_lowest_k_mean(_logprobs(token_logprobs), k)


def min_k_plus_plus_stats(
    logits: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Min-K%++ inputs: per-position label log-prob, and mean and std of log p under p."""
    if logits.ndim != 2 or labels.ndim != 1 or logits.shape[0] != labels.shape[0]:
        raise ValueError(
            f"expected logits [T, V] and labels [T], got {tuple(logits.shape)} "
            f"and {tuple(labels.shape)}"
        )
    logp = torch.log_softmax(logits.float(), dim=-1)
    p = logp.exp()
    # Masked vocabulary entries (-inf logits) have p = 0 and must add 0, not nan.
    p_logp = torch.where(p > 0, p * logp, torch.zeros_like(p))
    p_logp2 = torch.where(p > 0, p_logp * logp, torch.zeros_like(p))
    mu = p_logp.sum(dim=-1)
    var = (p_logp2.sum(dim=-1) - mu**2).clamp_min(1e-6)
    token_logprobs = logp.gather(-1, labels.long().unsqueeze(-1)).squeeze(-1)
    return token_logprobs, mu, var.sqrt()


def min_k_plus_plus_score(token_logprobs, mu, sigma, k: float = 0.4) -> float:
    """Min-K%++ score: -mean of the lowest max(1, floor(k*n)) z_t = (l_t - mu_t) / sigma_t."""
    lp = _logprobs(token_logprobs)
    mu_a = _logprobs(mu, "mu")
    sigma_a = _logprobs(sigma, "sigma")
    if not lp.shape == mu_a.shape == sigma_a.shape:
        raise ValueError(
            f"token_logprobs, mu and sigma differ in length: {lp.size}, {mu_a.size}, {sigma_a.size}"
        )
    return -_lowest_k_mean((lp - mu_a) / sigma_a, k)


def reference_score(loss_model: float, loss_reference: float) -> float:
    """Reference attack score: L_model - L_reference."""
    return float(loss_model) - float(loss_reference)


def reference_scores(model_losses, reference_losses) -> list[float]:
    """Reference attack per text: ``L_model − L_reference`` (docs/metrics.md §3), lower = more member-like.

    Both inputs are per-text LOSS scores (:func:`loss_score` of the same texts' scored
    tokens) in the same order, from the model under test and from the reference model
    (the retain model by default). Subtracting the reference's loss removes how easy a
    text is in general, leaving what the model learnt from it.
    """
    m = np.asarray(model_losses, dtype=np.float64).ravel()
    r = np.asarray(reference_losses, dtype=np.float64).ravel()
    if m.shape != r.shape:
        raise ValueError(f"reference_scores: {m.size} model losses but {r.size} reference losses; "
                         "score the same texts with both models")
    if not (np.isfinite(m).all() and np.isfinite(r).all()):
        raise ValueError("reference_scores: a loss is not finite; check the scored tokens of each text")
    return (m - r).tolist()


def gradnorm_scores(model, batches, p: float = 2, max_tokens: int = 1024, on_logits=None) -> list[float]:
    """GradNorm attack per text: mean over parameter tensors of ``‖∇_θ L‖_p``; lower = more member-like.

    ``L`` is the text's token-mean NLL over its scored tokens (``labels != -100``, the
    answer plus its closing EOS, as everywhere in docs/metrics.md). For each text the gradient
    is taken w.r.t. every parameter tensor of ``model`` (tied weights once), whatever its
    ``requires_grad`` flag (restored afterwards); the score is the arithmetic mean over
    tensors of each tensor's p-norm, ``p`` in {1, 2, inf}. This is open-unlearning's
    ``GradNormAttack`` (``evals/metrics/mia/gradnorm.py``, p = 2 by default), with two
    differences: it scores the EOS-closing token too (open-unlearning drops it), and the
    model stays in eval mode (no dropout in a score). ``.grad`` is left untouched.

    Orientation: a text the model was trained on sits near a minimum of its loss, so its
    gradient is small; the raw norm is therefore already "lower = member", as in
    open-unlearning, which feeds it to the AUC unchanged.

    ``batches``: dicts with ``input_ids``, ``attention_mask``, ``labels`` ``[B, T]`` (any
    padding side; rows are independent). Returns one float per row, in order.

    ``on_logits(i, logits)``, if given, receives each row's logits from the same forward
    (``[n_i - 1, vocab]``, detached: row i's real tokens, position t predicting token t + 1;
    ``i`` counts rows over all of ``batches``, batch after batch), so a caller can take its
    teacher-forced scores of the same texts without a second forward (``eval.tofu`` does for
    the forget and holdout answers). The tensor is a view into the chunk's logits: copy what
    is kept beyond the call. If the batched pass falls back to the per-row loop, every row is
    sent again; the last call counts.

    How (docs/performance.md): with p = 2, per-text norms come from ONE forward and backward
    per chunk of rows (``metrics.ghost_norms``: each row cut to its real tokens, rows sorted
    by length and right-padded, the rows' losses summed, and each parameter tensor's per-row
    squared norm computed exactly from the layer's inputs and output gradients, never forming
    a gradient). A chunk holds at most ``max_tokens`` = rows x padded length tokens (at least
    one row): its memory is the autograd graph of that many tokens (a 7B Llama in bf16:
    ~6 MB per token, ~7 GB at the default 1024, beside its 14 GB of weights) plus
    per-layer ``rows x T x T`` fp32 Gram matrices and the LM head's ``rows x T x vocab``
    logit gradients (with ``on_logits``, the chunk's logits too, freed before the next chunk);
    lower ``max_tokens`` on a smaller GPU (1024 was also the fastest on the
    tiny model on CPU: 4096 took 15% longer). Where the model holds a parameter
    the identities do not cover exactly (``ghost_norms.plan`` says which), and for p = 1 or
    inf, each row gets its own forward and backward instead (one text's activations plus one
    parameter-sized gradient: 14 GB for a 7B model in bf16). Both give the one-text-at-a-time
    scores (within 1e-5 relative, tests/test_metrics_mia.py). Under DDP/FSDP evaluation every
    rank loads the whole checkpoint and scores its own rows (``rows[rank::world]``); a row's
    score does not depend on the rank or on the other rows, so sharded evaluation returns
    the same scores. Parameters sharded as DTensors (a model still wrapped by FSDP2) are
    refused: each forward would be a collective that ranks with different row counts cannot
    match.
    """
    from unlearnbench.metrics import ghost_norms

    if p not in GRADNORM_P:
        raise ValueError(f"gradnorm_scores: p must be one of 1, 2, inf; got {p!r}")
    params = list(model.parameters())
    if any(type(q).__name__ == "DTensor" for q in params):
        raise ValueError("gradnorm_scores: the model's parameters are sharded (FSDP); score an unsharded "
                         "copy (load the checkpoint on each rank, as eval.references does)")
    planned = ghost_norms.plan(model) if p == 2 else "p is not 2"
    flags, was_training = [q.requires_grad for q in params], model.training
    device = params[0].device
    try:
        model.eval()
        for q in params:
            q.requires_grad_(True)
        with torch.enable_grad():
            rows = [r for batch in batches for r in _cut_rows(batch)]
            if not isinstance(planned, str):
                try:
                    # All rows at once, sorted by length and chunked by max_tokens: less
                    # padding and fewer passes than the caller's batches.
                    return _ghost_scores(model, planned, params, rows, max_tokens, device, on_logits)
                except ghost_norms.Unsupported:
                    pass  # exact per-row passes instead
            scores = []
            for i, (ids, target) in enumerate(rows):
                score, logits = _row_score(model, params, ids, target, p, device)
                scores.append(score)
                if on_logits is not None:
                    on_logits(i, logits)
    finally:
        for q, flag in zip(params, flags):
            q.requires_grad_(flag)
        model.train(was_training)
    return scores


def _cut_rows(batch) -> list[tuple]:
    """Each row's real tokens and labels (padding removed), checked to score a token."""
    ids, am, labels = (batch[k] for k in ("input_ids", "attention_mask", "labels"))
    out = []
    for row in range(ids.shape[0]):
        keep = am[row].bool()
        if int((labels[row][keep][1:] != -100).sum()) == 0:
            raise ValueError(f"gradnorm_scores: row {row} of a batch has no scored token "
                             "(all labels are -100); give each text at least one label")
        out.append((ids[row][keep], labels[row][keep]))
    return out


def _row_score(model, params, ids, labels, p, device) -> tuple[float, torch.Tensor]:
    """One text's forward and backward: the mean over parameter tensors of ``‖grad‖_p``, and
    the forward's logits (detached)."""
    target = labels[1:].to(device)
    raw = model(input_ids=ids[None].to(device)).logits[0, :-1]
    logits = raw.float()
    loss = torch.nn.functional.cross_entropy(logits, target, ignore_index=-100,
                                             reduction="sum") / int((target != -100).sum())
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return float(torch.stack([g.float().norm(p) for g in grads if g is not None]).mean()), raw.detach()


def _ghost_scores(model, planned, params, rows, max_tokens: int, device, on_logits=None) -> list[float]:
    """p = 2 scores of ``rows`` from batched ghost-norm passes, chunked by ``max_tokens``."""
    from unlearnbench.metrics import ghost_norms

    order = sorted(range(len(rows)), key=lambda i: -len(rows[i][0]))
    out = [0.0] * len(rows)
    start = 0
    while start < len(order):
        T = len(rows[order[start]][0])  # the longest row of the chunk (sorted)
        stop = start + max(1, min(len(order) - start, max_tokens // max(T, 1)))
        chunk = order[start:stop]
        ids = torch.zeros(len(chunk), T, dtype=torch.long)
        labels = torch.full((len(chunk), T), -100, dtype=torch.long)
        lengths = torch.tensor([len(rows[i][0]) for i in chunk])
        for j, i in enumerate(chunk):
            ids[j, :lengths[j]], labels[j, :lengths[j]] = rows[i]
        # Logits only when asked for: a chunk's [rows, T, vocab] is the largest transient here.
        result = ghost_norms.squared_norms(model, planned, params, ids.to(device), labels.to(device),
                                           return_logits=on_logits is not None)
        sq, logits = result if on_logits is not None else (result, None)
        norms = sq.clamp_min(0).sqrt().mean(1)
        if not bool(torch.isfinite(norms).all()):
            raise ghost_norms.Unsupported("a ghost norm is not finite")
        for j, i in enumerate(chunk):
            out[i] = float(norms[j])
            if on_logits is not None:
                on_logits(i, logits[j, : int(lengths[j]) - 1])
        del logits  # not held through the next chunk's forward and backward
        start = stop
    return out


def mia_auc(forget_scores, holdout_scores) -> float:
    """MIA ROC AUC with forget labelled 0 and holdout 1 (near 1 = forget still looks memorised)."""
    from sklearn.metrics import roc_auc_score

    forget = np.asarray(forget_scores, dtype=np.float64).ravel()
    holdout = np.asarray(holdout_scores, dtype=np.float64).ravel()
    if forget.size == 0 or holdout.size == 0:
        raise ValueError(
            f"mia_auc needs both sets non-empty (forget {forget.size}, holdout {holdout.size})"
        )
    y = np.concatenate([np.zeros(forget.size), np.ones(holdout.size)])
    return float(roc_auc_score(y, np.concatenate([forget, holdout])))


def privleak(auc_model: float, auc_retain: float | None) -> float:
    """MUSE PrivLeak in percent: ((1 - s) - (1 - r)) / (1 - r) * 100 for AUCs s (model), r (retain)."""
    if auc_retain is None:
        raise ValueError(
            "privleak needs the retain model's AUC; the retain model is required "
            "(report PrivLeak as unavailable rather than assuming 0.5)"
        )
    s, r = float(auc_model), float(auc_retain)
    if r == 1.0:
        raise ValueError("privleak is undefined when the retain model's AUC is 1 (1 - r = 0)")
    return ((1.0 - s) - (1.0 - r)) / (1.0 - r) * 100.0
