"""Gradient ascent."""

from __future__ import annotations

from unlearnbench.methods import losses
from unlearnbench.methods.base import UnlearningMethod


class GradientAscent(UnlearningMethod):
    """Gradient ascent: minimise -ℓ(y_f|x_f) on forget data (Yao et al. 2023)."""

    name = "ga"
    shapes = ("qa", "text")

    def loss(self, batch):
        f = self.sub(batch)
        forget = losses.ga_loss(self.forward_logits(self.model, f), f["labels"])
        return {"loss": self.gamma_forget * forget, "forget": forget}
