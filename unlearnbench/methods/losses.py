"""Unlearning objectives as pure functions of tensors (torch only).

The formulas and defaults follow docs/methods.md to the letter.

Conventions
-----------
* ``logits`` is ``[B, T, V]`` from a causal LM run on ``input_ids`` ``[B, T]``.
* ``labels`` is ``[B, T]`` with ``-100`` (``IGNORE_INDEX``) on unscored positions
  (prompt, padding).
* As in Hugging Face, the logits at position ``t`` predict ``labels[t + 1]``: every
  function shifts (``logits[:, :-1]``, ``labels[:, 1:]``).
* Log-softmax is computed in float32 for stability, whatever the logits' dtype.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "IGNORE_INDEX",
    "FLAT_DIVERGENCES",
    "sequence_nll",
    "mean_nll",
    "mean_token_probability",
    "kl_ref_to_model",
    "ga_loss",
    "npo_loss",
    "simnpo_loss",
    "dpo_loss",
    "flat_loss",
    "rmu_control_vector",
    "rmu_loss",
    "llmu_loss",
    "llmu_reference_loss",
    "flat_reference_probability",
    "kl_every_position",
    "npo_token_mean_loss",
    "rmu_answer_mse",
]

IGNORE_INDEX = -100
FLAT_DIVERGENCES = ("kl", "js", "pearson", "tv")

_LOG2 = math.log(2.0)


# --------------------------------------------------------------------------- helpers


def _shift(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Shift for next-token prediction; return (float32 log-probs, safe labels, mask).

    log-probs ``[B, T-1, V]``, labels ``[B, T-1]`` with ignored positions replaced by 0
    (so that ``gather`` is valid), mask ``[B, T-1]`` bool of scored positions.
    """
    if logits.dim() != 3 or labels.dim() != 2 or logits.shape[:2] != labels.shape:
        raise ValueError(
            f"expected logits [B, T, V] and labels [B, T]; got {tuple(logits.shape)} "
            f"and {tuple(labels.shape)}"
        )
    logp = logits[:, :-1].float().log_softmax(dim=-1)
    tgt = labels[:, 1:]
    mask = tgt != IGNORE_INDEX
    safe = tgt.masked_fill(~mask, 0)
    return logp, safe, mask


def _token_logp(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Per-position log p_θ(y_t | ·) [B, T-1] (0 where unscored) and the scored mask."""
    logp, safe, mask = _shift(logits, labels)
    tok = logp.gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    return tok.masked_fill(~mask, 0.0), mask


# --------------------------------------------------------------------------- building blocks


def sequence_nll(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Per-sequence summed NLL ``S(y|x)`` and scored-token count ``|y|`` (TOFU / NPO notation).

    Returns ``(S, n)``: ``S`` float32 ``[B]`` = ``−Σ_t log p_θ(y_t | x, y_<t)`` over scored
    positions; ``n`` int64 ``[B]`` = number of scored tokens (shifted labels != -100).
    """
    tok, mask = _token_logp(logits, labels)
    return -tok.sum(dim=-1), mask.sum(dim=-1)


def mean_nll(logits: Tensor, labels: Tensor) -> Tensor:
    """Token-mean NLL ``ℓ(y|x)`` over all scored tokens of the batch (HF ``outputs.loss``).

    Scalar ``Σ_batch NLL / number of scored batch tokens`` — the Hugging Face causal-LM
    loss convention used by TOFU. A batch with no scored token gives 0 (HF gives NaN).
    """
    tok, mask = _token_logp(logits, labels)
    return -tok.sum() / mask.sum().clamp(min=1)


def mean_token_probability(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean token probability ``P = (1/|y|) Σ_t p_θ(y_t | x, y_<t)`` per sequence (FLAT, Wang et al.).

    Returns ``[B]``. Probabilities, not log-probabilities, normalised by the number of
    scored tokens ``|y|`` of each sequence (not the padded length). A sequence with no
    scored token gives 0.
    """
    tok, mask = _token_logp(logits, labels)
    prob = tok.exp() * mask
    return prob.sum(dim=-1) / mask.sum(dim=-1).clamp(min=1)


def kl_ref_to_model(
    ref_logits: Tensor, logits: Tensor, labels: Tensor | None = None, mask: Tensor | None = None
) -> Tensor:
    """Forward ``KL(π_ref ‖ π_θ)`` per next-token distribution, averaged over scored positions (TOFU ``ga_kl``).

    Per shifted position ``t``: ``Σ_v π_ref(v) (log π_ref(v) − log π_θ(v))``; the scalar
    result is the mean over positions where ``labels[:, 1:] != -100`` or, when a bool
    ``mask`` ``[B, T-1]`` is given, over the positions it selects instead (LLMU uses all
    non-padding positions). ``ref_logits`` is treated as a constant (no gradient).
    """
    if ref_logits.shape != logits.shape:
        raise ValueError(
            f"ref_logits {tuple(ref_logits.shape)} and logits {tuple(logits.shape)} differ"
        )
    if mask is None:
        if labels is None:
            raise ValueError("kl_ref_to_model needs labels or mask")
        mask = labels[:, 1:] != IGNORE_INDEX
    else:
        mask = mask.bool()
        if mask.shape != logits.shape[:1] + (logits.shape[1] - 1,):
            raise ValueError(
                f"mask must be [B, T-1] = {(logits.shape[0], logits.shape[1] - 1)}; "
                f"got {tuple(mask.shape)}"
            )
    logp = logits[:, :-1].float().log_softmax(dim=-1)
    ref_logp = ref_logits[:, :-1].detach().float().log_softmax(dim=-1)
    kl = F.kl_div(logp, ref_logp, reduction="none", log_target=True).sum(dim=-1)
    return (kl * mask).sum() / mask.sum().clamp(min=1)


# --------------------------------------------------------------------------- method losses


def ga_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Gradient-ascent forget loss ``−ℓ(y_f|x_f)`` (Yao et al. 2023; TOFU ``ga``)."""
    return -mean_nll(logits, labels)


def npo_loss(nll_sum: Tensor, ref_nll_sum: Tensor, beta: float = 0.1) -> Tensor:
    """NPO loss, batch mean of ``−(2/β)·logσ(−β·(−S_θ + S_ref))`` (Zhang et al. 2024).

    ``r = log π_θ(y) − log π_ref(y) = −S_θ + S_ref`` with summed NLLs ``S``; at θ = ref
    the loss is ``(2/β)·log 2``. ``ref_nll_sum`` is treated as a constant.
    """
    r = -nll_sum + ref_nll_sum.detach()
    return (-(2.0 / beta) * F.logsigmoid(-beta * r)).mean()


def simnpo_loss(
    nll_sum: Tensor, n_tokens: Tensor, beta: float = 4.5, delta: float = 0.0
) -> Tensor:
    """SimNPO loss, batch mean of ``−(2/β)·logσ(−β·(−S/|y|) − δ)`` (Fan et al. 2024).

    Reference-free and length-normalised: ``−S/|y|`` is the mean token log-prob of the
    forget answer, so the argument of ``logσ`` is ``β·S/|y| − δ``.
    """
    n = n_tokens.to(nll_sum.dtype).clamp(min=1)
    arg = -beta * (-nll_sum / n) - delta
    return (-(2.0 / beta) * F.logsigmoid(arg)).mean()


def dpo_loss(
    win_logp: Tensor,
    win_ref_logp: Tensor,
    lose_logp: Tensor,
    lose_ref_logp: Tensor,
    beta: float = 0.1,
) -> Tensor:
    """IdkDPO loss, batch mean of ``−(2/β)·logσ(β[(w − w_ref) − (l − l_ref)])`` (Rafailov et al.; TOFU).

    Summed log-probs; win = refusal ``y_idk``, lose = forget answer ``y_f``. At θ = ref the
    loss is ``(2/β)·log 2``. Reference log-probs are treated as constants.
    """
    margin = (win_logp - win_ref_logp.detach()) - (lose_logp - lose_ref_logp.detach())
    return (-(2.0 / beta) * F.logsigmoid(beta * margin)).mean()


def _flat_conjugates(divergence: str):
    if divergence == "kl":
        return (lambda v: v), (lambda u: torch.exp(u - 1.0))
    if divergence == "js":
        return (lambda v: _LOG2 - F.softplus(-v)), (lambda u: -torch.log(2.0 - torch.exp(u)))
    if divergence == "pearson":
        return (lambda v: v), (lambda u: u * u / 4.0 + u)
    if divergence == "tv":
        return (lambda v: torch.tanh(v) / 2.0), (lambda u: u)
    raise ValueError(
        f"unknown FLAT divergence {divergence!r}; choose one of {', '.join(FLAT_DIVERGENCES)}"
    )


def flat_loss(p_template: Tensor, p_forget: Tensor, divergence: str = "kl") -> Tensor:
    """FLAT loss, batch mean of ``−g*(P_e) + f*(g*(P_f))`` (Wang et al., f-divergence loss adjustment).

    ``p_template`` = ``P(x_f, y_e)`` and ``p_forget`` = ``P(x_f, y_f)``, mean token
    probabilities ``[B]`` from :func:`mean_token_probability`. ``divergence`` is one of
    ``FLAT_DIVERGENCES``: kl (g*(v)=v, f*(u)=exp(u−1)); js (g*(v)=log2−log(1+e^−v),
    f*(u)=−log(2−e^u)); pearson (g*(v)=v, f*(u)=u²/4+u); tv (g*(v)=tanh(v)/2, f*(u)=u).
    """
    g, f_star = _flat_conjugates(divergence)
    return (-g(p_template) + f_star(g(p_forget))).mean()


def rmu_control_vector(
    dim: int, coeff: float, generator: torch.Generator | None = None
) -> Tensor:
    """RMU control vector ``c·u/‖u‖`` with ``u ~ U[0,1)^d`` (Li et al. 2024, WMDP).

    ``u`` is drawn with ``torch.rand(dim, generator=generator)`` (float32, CPU), so a seeded
    generator fixes it for the run.
    """
    u = torch.rand(dim, generator=generator)
    return coeff * u / u.norm()


def _masked_mse(a: Tensor, b: Tensor, mask: Tensor | None) -> Tensor:
    """Mean of ``(a − b)²`` over all elements, or over the positions ``mask`` [B, T] keeps."""
    sq = (a.float() - b.float()).pow(2)
    if mask is None:
        return sq.mean()
    m = mask.to(sq.dtype)
    if m.shape != sq.shape[:-1]:
        raise ValueError(f"mask must be [B, T] = {tuple(sq.shape[:-1])}; got {tuple(m.shape)}")
    denom = (m.sum() * sq.shape[-1]).clamp(min=1)
    return (sq * m.unsqueeze(-1)).sum() / denom


def rmu_loss(
    h_forget: Tensor,
    control: Tensor,
    h_retain: Tensor,
    h_retain_ref: Tensor,
    alpha: float,
    forget_mask: Tensor | None = None,
    retain_mask: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """RMU terms ``(MSE(h_ℓ(x_f), c·u/‖u‖), α·MSE(h_ℓ(x_r), h_ℓ^ref(x_r)))`` (Li et al. 2024, WMDP).

    Hidden states are ``[B, T, D]``; ``control`` ``[D]`` is broadcast over positions. The
    MSE is the mean over positions and hidden units; with masks ``[B, T]`` only masked-in
    positions count (padding excluded). ``h_retain_ref`` is treated as a constant.
    """
    control = control.to(device=h_forget.device)
    target = control.float().expand_as(h_forget)
    forget = _masked_mse(h_forget, target, forget_mask)
    retain = alpha * _masked_mse(h_retain, h_retain_ref.detach(), retain_mask)
    return forget, retain


def llmu_loss(
    forget_logits: Tensor,
    forget_labels: Tensor,
    mismatch_logits: Tensor,
    mismatch_labels: Tensor,
    normal_logits: Tensor,
    normal_ref_logits: Tensor,
    normal_mask: Tensor,
    eps: tuple[float, float, float] = (0.5, 1.0, 1.0),
) -> dict[str, Tensor]:
    """LLMU loss terms: ascent on harmful answers, descent on random answers, KL on normal data (Yao, Xu, Liu).

    Returns ``{"forget": −ε1·ℓ(y_f|x_f), "mismatch": ε2·mean_k ℓ(y_rand,k|x_f),
    "kl": ε3·KL(π_ref ‖ π_θ), "loss": sum of the three}``.

    * ``forget``: :func:`mean_nll` over the harmful answer tokens.
    * ``mismatch``: the caller batches the K random normal answers as K rows per harmful
      prompt, with labels scoring only the random answer's tokens; the term is the mean
      over rows of each row's token-mean NLL (rows with no scored token are skipped).
    * ``kl``: :func:`kl_ref_to_model` with ``mask=normal_mask`` ([B, T-1] bool: all
      non-padding positions of the normal data).
    """
    e1, e2, e3 = eps
    forget = -e1 * mean_nll(forget_logits, forget_labels)
    s, n = sequence_nll(mismatch_logits, mismatch_labels)
    has = n > 0
    row_mean = torch.where(has, s / n.clamp(min=1).to(s.dtype), torch.zeros_like(s))
    mismatch = e2 * row_mean.sum() / has.sum().clamp(min=1)
    kl = e3 * kl_ref_to_model(normal_ref_logits, normal_logits, mask=normal_mask)
    return {"forget": forget, "mismatch": mismatch, "kl": kl, "loss": forget + mismatch + kl}


def _weighted_row_mean(logits: Tensor, targets: Tensor, weight: Tensor, denom: Tensor) -> Tensor:
    """Per row ``Σ_t weight[t]·NLL(targets[t+1] | logits[t]) / denom`` ([B]); ``weight`` [B, T-1]."""
    logp = logits[:, :-1].float().log_softmax(dim=-1)
    nll = -logp.gather(-1, targets[:, 1:].unsqueeze(-1)).squeeze(-1)
    return (nll * weight).sum(dim=-1) / denom.clamp(min=1)


def llmu_reference_loss(
    forget_logits: Tensor,
    forget_labels: Tensor,
    mismatch_logits: Tensor,
    mismatch_ids: Tensor,
    mismatch_mask: Tensor,
    normal_logits: Tensor,
    normal_ref_logits: Tensor,
    eps: tuple[float, float, float] = (0.5, 1.0, 1.0),
) -> dict[str, Tensor]:
    """LLMU's terms as its public code computes them (kevinyaobytedance/llm_unlearn @647f309, ``utils.py``).

    * ``forget`` (``get_answer_loss("ga")``): per row, the summed NLL of the scored answer
      tokens divided by ``|y| + 1`` (the weights count the position before the answer too,
      and the last one predicts nothing), then the batch mean; times ``−ε1``.
    * ``mismatch`` (``get_rand_ans_loss``): its start index is ``len()`` of a tokenizer
      output, i.e. the number of keys (2), so every real token from the 4th on is scored,
      question included, over ``L − 2`` (``L`` real tokens per row); mean over rows, ``ε2``.
      ``mismatch_ids`` are the rows' input ids, ``mismatch_mask`` their attention mask.
    * ``kl`` (``compute_kl``): the cross-entropy ``−Σ_v p_ref·log(p_θ + 1e-12)`` at every
      position of the normal batch, padding and the last position included, averaged over
      ``B·T``; times ``ε3``. It is a KL up to the reference's entropy (no gradient).
    """
    e1, e2, e3 = eps
    s, n = sequence_nll(forget_logits, forget_labels)
    forget = -e1 * (s / (n.to(s.dtype) + 1)).mean()
    mm = mismatch_mask.bool()
    rank = mm.long().cumsum(dim=-1) - 1  # index among the row's real tokens (right or left padding)
    weight = ((rank[:, :-1] >= 2) & mm[:, :-1] & mm[:, 1:]).float()
    denom = ((rank >= 2) & mm).sum(dim=-1).float()
    mismatch = e2 * _weighted_row_mean(mismatch_logits, mismatch_ids, weight, denom).mean()
    p_ref = normal_ref_logits.detach().float().softmax(dim=-1)
    q = normal_logits.float().softmax(dim=-1)
    kl = e3 * -(p_ref * torch.log(q + 1e-12)).sum(-1).mean()
    return {"forget": forget, "mismatch": mismatch, "kl": kl, "loss": forget + mismatch + kl}


def flat_reference_probability(logits: Tensor, labels: Tensor, length: int = 500) -> Tensor:
    """FLAT's public code's ``P`` (UCSC-REAL/FLAT @bf2ef07, ``dataloader.py``, loss ``cl``): one
    scalar per batch, ``Σ p_θ(y_t|·)`` over every scored token of the batch divided by
    ``B·(length − 1)``, ``length`` being the padded length of its rows (``max_length = 500``
    in ``unlearn.py``), whatever the answers' own lengths."""
    tok, mask = _token_logp(logits, labels)
    return (tok.exp() * mask).sum() / (labels.shape[0] * (length - 1))


def kl_every_position(ref_logits: Tensor, logits: Tensor) -> Tensor:
    """TOFU's KL (locuslab/tofu ``dataloader.py``, loss ``KL``): ``kl_div(..., "batchmean")`` of the
    flattened ``[B·T, V]`` log-probs, i.e. ``Σ KL(π_ref‖π_θ)`` over every position (prompt,
    padding and the last one included) divided by ``B·T``. ``ref_logits`` is a constant."""
    logp = logits.float().log_softmax(dim=-1).reshape(-1, logits.shape[-1])
    ref_logp = ref_logits.detach().float().log_softmax(dim=-1).reshape(-1, logits.shape[-1])
    return F.kl_div(logp, ref_logp, reduction="batchmean", log_target=True)


def npo_token_mean_loss(mean_nll_value: Tensor, ref_mean_nll: Tensor, beta: float = 0.1) -> Tensor:
    """WAGLE's NPO (OPTML-Group/WAGLE @31275e8, ``src/unlearn/GA.py``, ``NPO_FT``): one log-ratio
    per batch from token-mean NLLs, ``−(2/β)·logσ(β·(ℓ_θ − ℓ_ref))``, instead of NPO's per
    sequence summed log-probabilities. ``ref_mean_nll`` is a constant."""
    return -(2.0 / beta) * F.logsigmoid(beta * (mean_nll_value - ref_mean_nll.detach()))


def rmu_answer_mse(h: Tensor, target: Tensor, labels: Tensor) -> Tensor:
    """open-unlearning's RMU activation loss (``src/trainer/unlearn/rmu.py``,
    ``compute_activation_loss``), quirk included. Per row ``b`` it sums, over the positions
    whose label is scored (``labels != -100``, unshifted), the squared error averaged over
    hidden units, ``s_b``, and counts those positions, ``n_b``; it then divides ``s`` of shape
    ``[B]`` by ``n`` of shape ``[B, 1]``, which broadcasts to ``[B, B]``, and takes the mean:
    ``mean_b(s_b) · mean_b(1/n_b)``, not ``mean_b(s_b/n_b)`` (equal when ``B = 1``)."""
    mask = (labels != IGNORE_INDEX).to(torch.float32)
    sq = (h.float() - target.float()).pow(2).mean(dim=-1)
    per_row = (sq * mask).sum(dim=-1)
    # the broadcast itself (not mean·mean), so that float32 rounding matches theirs too
    return (per_row / mask.sum(dim=-1, keepdim=True).clamp(min=1)).mean()  # theirs: inf/NaN for a row with no answer
