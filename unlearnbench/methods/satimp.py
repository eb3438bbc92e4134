"""SatImp: gradient ascent with saturation and importance token weights."""

from __future__ import annotations

from dataclasses import dataclass

from unlearnbench.methods import losses_ou
from unlearnbench.methods.base import UnlearningMethod
from unlearnbench.methods.settings import setting


@dataclass
class SatImpSettings:
    beta1: float = setting(5.0, "β1, exponent of the saturation weight p^β1", range=">= 0")
    beta2: float = setting(1.0, "β2, exponent of the importance weight (1 − p)^β2", range=">= 0")


class SatImp(UnlearningMethod):
    """SatImp: minimise γ·(−mean_t p^β1·(1−p)^β2·ℓ_t(y_f|x_f)) + λ·ℓ(y_r|x_r), p = p_θ(y_t) (Yang et al. 2025, ICML).

    :func:`losses_ou.satimp_loss`; weights detached. β1 = 5, β2 = 1, lr 1e-5, 5 epochs
    (open-unlearning @d3d7cf9). The loss weights are γ = 0.1, λ = 1, from
    ``configs/trainer/SatImp.yaml``, which every open-unlearning run uses (Hydra's
    ``method_args`` override the class). Its class defaults and community README say γ = 1,
    λ = 0.1 instead (the README: chosen for the ES metric); pass ``gamma_forget=1
    lambda_retain=0.1`` for those. docs/methods.md, SatImp, has the reasoning.
    """

    name = "satimp"
    shapes = ("qa", "text")
    needs = ("retain",)
    Settings = SatImpSettings
    shared_defaults = {"gamma_forget": 0.1}

    def loss(self, batch):
        f = self.sub(batch)
        forget = losses_ou.satimp_loss(self.forward_logits(self.model, f), f["labels"],
                                         self.settings.beta1, self.settings.beta2)
        retain = self.retain_nll()
        total = self.gamma_forget * forget + self.lambda_retain * retain
        return {"loss": total, "forget": forget, "retain": retain}
