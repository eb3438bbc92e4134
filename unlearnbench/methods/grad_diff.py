"""Gradient difference: ascent on the forget set, descent on the retain set."""

from __future__ import annotations

from unlearnbench.methods import losses
from unlearnbench.methods.base import UnlearningMethod


class GradDiff(UnlearningMethod):
    """GradDiff: minimise γ·(−ℓ(y_f|x_f)) + λ·ℓ(y_r|x_r) (TOFU, Maini et al. 2024).

    ``gamma_forget`` (γ, default 1) weighs the ascent term and ``lambda_retain`` (λ,
    default 1) the token-mean NLL on a retain batch drawn from the cycling retain iterator.
    """

    name = "grad_diff"
    shapes = ("qa", "text")
    needs = ("retain",)

    def loss(self, batch):
        f = self.sub(batch)
        forget = losses.ga_loss(self.forward_logits(self.model, f), f["labels"])
        retain = self.retain_nll()
        total = self.gamma_forget * forget + self.lambda_retain * retain
        return {"loss": total, "forget": forget, "retain": retain}
