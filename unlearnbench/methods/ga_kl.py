"""Gradient ascent on the forget set with a KL anchor to the frozen model on retain data."""

from __future__ import annotations

from unlearnbench.methods import losses
from unlearnbench.methods.base import UnlearningMethod


class GAKL(UnlearningMethod):
    """GA+KL: minimise γ·(−ℓ(y_f|x_f)) + λ·KL(π_ref‖π_θ) on retain tokens (TOFU, Maini et al. 2024).

    The KL is per next-token distribution, averaged over the scored (answer) positions of
    the retain batch only — never over prompt or padding positions (docs/methods.md). It is
    exactly 0 at the first step, where θ = ref.

    How this differs from the public code. TOFU (locuslab/tofu ``dataloader.py``, loss
    ``KL``) and open-unlearning (``trainer/utils.py``, ``compute_kl_divergence``) flatten
    the logits to ``[B·T, V]`` and call ``kl_div(..., reduction="batchmean")``: the sum
    of the per-position KLs divided by ``B·T``, so prompt, padding and the last position
    (which predicts no label) all count, in the sum and in the denominator. Ours is the
    sum over answer positions divided by their number. The two are not proportional (the
    KL at prompt positions grows too once θ moves), but with short answers and long padded
    prompts theirs is typically several times smaller, which changes what a given λ means.
    The forget term (``−ℓ``, token mean over answer tokens) is the same in all three.
    ``parity="reference"`` uses TOFU's KL (``losses.kl_every_position``) on the batch as given.
    """

    name = "ga_kl"
    shapes = ("qa", "text")
    needs = ("retain",)
    needs_reference = True
    parities = ("paper", "reference")

    def loss(self, batch):
        f = self.sub(batch)
        forget = losses.ga_loss(self.forward_logits(self.model, f), f["labels"])
        r = self.retain_batch()
        if self.parity == "reference":
            kl = losses.kl_every_position(self.ref_logits(r), self.forward_logits(self.model, r))
        else:
            kl = losses.kl_ref_to_model(self.ref_logits(r), self.forward_logits(self.model, r),
                                        labels=r["labels"])
        total = self.gamma_forget * forget + self.lambda_retain * kl
        return {"loss": total, "forget": forget, "kl": kl}
