"""Losses of the methods brought in from open-unlearning, as pure functions of tensors.

UNDIAL, SatImp, WGA, CE-U and PDU (AltPO reuses :func:`losses.dpo_loss`). Conventions are
those of :mod:`unlearnbench.methods.losses` (logits ``[B, T, V]``, labels ``[B, T]`` with
``-100`` on unscored positions, float32 log-softmax) unless a docstring says otherwise. Each
function equals open-unlearning's (locuslab/open-unlearning @d3d7cf9,
``src/trainer/utils.py``, ``src/trainer/unlearn/{ceu,pdu}.py``) on the same batch; the
parity numbers are in ``tests/test_parity_ou_methods.py``. Where open-unlearning departs
from the method's paper, an option gives the paper's version (docs/methods.md).
"""

from __future__ import annotations

import torch
from torch import Tensor

from unlearnbench.methods.losses import IGNORE_INDEX

__all__ = ["UNDIAL_POSITIONS", "undial_loss", "satimp_loss", "wga_loss", "ceu_loss", "pdu_forget_loss"]

UNDIAL_POSITIONS = ("answer", "all")


def _token_nll(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Per shifted position NLL ``[B, T-1]`` (0 where unscored) and the scored mask."""
    logp = logits[:, :-1].float().log_softmax(dim=-1)
    tgt = labels[:, 1:]
    mask = tgt != IGNORE_INDEX
    nll = -logp.gather(-1, tgt.masked_fill(~mask, 0).unsqueeze(-1)).squeeze(-1)
    return nll.masked_fill(~mask, 0.0), mask


def undial_loss(logits: Tensor, ref_logits: Tensor, labels: Tensor, beta: float = 10.0,
                positions: str = "answer") -> Tensor:
    """UNDIAL: cross-entropy of the model against softmax(ref logits − β·onehot(y_t)) (Dong et al. 2024).

    Per shifted position ``t``: ``−Σ_v q_t(v) log π_θ(v | ·)`` with ``q_t = softmax(z_ref,t −
    β·e_{y_t})``, the frozen reference's logits with the target token's logit lowered by β
    (``ref_logits`` is a constant). ``positions``:

    * ``"answer"`` (default): the mean over scored positions, like every other loss here.
    * ``"all"``: open-unlearning's reduction, the mean over *every* position of the padded
      batch, prompt and padding included. There the label is −100, which its indexing reads
      as vocabulary entry ``V − 100`` (Python's negative index), so that entry's logit is
      lowered instead; this option reproduces that too. The value then depends on how much
      padding a batch has.
    """
    if positions not in UNDIAL_POSITIONS:
        raise ValueError(f"UNDIAL positions must be one of {UNDIAL_POSITIONS}, got {positions!r}")
    if ref_logits.shape != logits.shape:
        raise ValueError(f"ref_logits {tuple(ref_logits.shape)} and logits {tuple(logits.shape)} differ")
    vocab = logits.shape[-1]
    tgt = labels[:, 1:]
    mask = tgt != IGNORE_INDEX
    index = torch.where(tgt < 0, tgt + vocab, tgt) if positions == "all" else tgt.masked_fill(~mask, 0)
    adjusted = ref_logits[:, :-1].detach().float().scatter_add(
        -1, index.unsqueeze(-1), torch.full(index.shape + (1,), -float(beta), device=logits.device))
    ce = -(adjusted.softmax(-1) * logits[:, :-1].float().log_softmax(-1)).sum(-1)
    if positions == "all":
        return ce.mean()
    return (ce * mask).sum() / mask.sum().clamp(min=1)


def _weighted_ascent(nll: Tensor, mask: Tensor, weight: Tensor) -> Tensor:
    """``−mean over scored tokens of weight·nll`` (the weight is a constant)."""
    return -(weight.detach() * nll * mask).sum() / mask.sum().clamp(min=1)


def wga_loss(logits: Tensor, labels: Tensor, beta: float = 1.0) -> Tensor:
    """WGA: −mean_t p_θ(y_t)^β · (−log p_θ(y_t)) over scored tokens (Wang et al. 2025).

    Gradient ascent with each token's NLL weighted by its (detached) probability to the
    power β, so tokens already forgotten stop pulling.
    """
    nll, mask = _token_nll(logits, labels)
    return _weighted_ascent(nll, mask, torch.exp(-nll) ** beta)


def satimp_loss(logits: Tensor, labels: Tensor, beta1: float = 5.0, beta2: float = 1.0) -> Tensor:
    """SatImp: −mean_t p^β1·(1−p)^β2·(−log p) over scored tokens, p = p_θ(y_t) detached (Yang et al. 2025).

    ``p^β1`` is the saturation weight, ``(1−p)^β2`` the importance weight.
    """
    nll, mask = _token_nll(logits, labels)
    p = torch.exp(-nll)
    return _weighted_ascent(nll, mask, p ** beta1 * (1 - p) ** beta2)


def ceu_loss(logits: Tensor, labels: Tensor, ignore_first_n_answer_tokens: int = 1) -> Tensor:
    """CE-U: cross-entropy of the model against its own detached distribution with the true token
    removed (Yang et al. 2025).

    Per shifted position: target ``q = softmax(z.detach() with z_{y_t} = −∞)``, loss
    ``−Σ_v q(v) log π_θ(v)``, the mean over scored positions. The first
    ``ignore_first_n_answer_tokens`` scored labels of each row are not scored (the paper's
    footnote, open-unlearning's default 1).
    """
    if ignore_first_n_answer_tokens < 0:
        raise ValueError(f"CE-U ignore_first_n_answer_tokens must be >= 0, got {ignore_first_n_answer_tokens}")
    valid = labels != IGNORE_INDEX
    dropped = (valid.cumsum(dim=-1) <= ignore_first_n_answer_tokens) & valid
    tgt = labels.masked_fill(dropped, IGNORE_INDEX)[:, 1:]
    mask = tgt != IGNORE_INDEX
    z = logits[:, :-1].float()
    target = z.detach().scatter(-1, tgt.masked_fill(~mask, 0).unsqueeze(-1), float("-inf")).softmax(-1)
    ce = -(target * z.log_softmax(-1)).sum(-1)
    return (ce.masked_fill(~mask, 0.0)).sum() / mask.sum().clamp(min=1)


def pdu_forget_loss(logits: Tensor, labels: Tensor, shifted: bool = False) -> Tensor:
    """PDU's logit-margin flattening: mean over positions of (max_v z_v − mean_v z_v)² (Entesari et al. 2025).

    Driven to 0, the next-token distribution becomes uniform. Raw logits, no softmax.
    Positions: open-unlearning (default, ``shifted=False``) averages over the positions whose
    *own* label is scored, i.e. the logits that predict the token after each answer token
    (the last prompt position, which predicts the first answer token, is left out and the
    position of EOS is in). ``shifted=True`` averages over the positions that predict the
    answer tokens (the paper's "outputs on the forget answer").
    """
    if shifted:
        z, mask = logits[:, :-1].float(), labels[:, 1:] != IGNORE_INDEX
    else:
        z, mask = logits.float(), labels != IGNORE_INDEX
    margin = (z.max(dim=-1).values - z.mean(dim=-1)) ** 2
    return (margin * mask).sum() / mask.sum().clamp(min=1)
