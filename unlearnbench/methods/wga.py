"""WGA: weighted gradient ascent, each forget token weighted by its probability to the β."""

from __future__ import annotations

from dataclasses import dataclass

from unlearnbench.methods import losses_ou
from unlearnbench.methods.base import UnlearningMethod
from unlearnbench.methods.settings import setting


@dataclass
class WGASettings:
    beta: float = setting(1.0, "β, exponent of the detached token weight p_θ(y_t)^β", range=">= 0")


class WGA(UnlearningMethod):
    """WGA: minimise γ·(−mean_t p_θ(y_t)^β·ℓ_t(y_f|x_f)) + λ·ℓ(y_r|x_r) (Wang et al. 2025, ICLR).

    Weighted gradient ascent (:func:`losses_ou.wga_loss`): the weight ``p^β`` is detached.
    Defaults from open-unlearning @d3d7cf9 (``configs/trainer/WGA.yaml``): β = 1, γ = 1,
    λ = 1, lr 1e-5, 5 epochs. No reference model (open-unlearning builds one and never uses it).
    """

    name = "wga"
    shapes = ("qa", "text")
    needs = ("retain",)
    Settings = WGASettings

    def loss(self, batch):
        f = self.sub(batch)
        forget = losses_ou.wga_loss(self.forward_logits(self.model, f), f["labels"], self.settings.beta)
        retain = self.retain_nll()
        total = self.gamma_forget * forget + self.lambda_retain * retain
        return {"loss": total, "forget": forget, "retain": retain}
