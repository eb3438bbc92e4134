"""UNDIAL: self-distillation towards the reference's logits with the forget token lowered."""

from __future__ import annotations

from dataclasses import dataclass

from unlearnbench.methods import losses, losses_ou
from unlearnbench.methods.base import UnlearningMethod
from unlearnbench.methods.settings import setting


@dataclass
class UNDIALSettings:
    beta: float = setting(10.0, "β, how far the true token's reference logit is lowered in the target", range=">= 0")
    positions: str = setting("answer", "answer: score the forget answer's tokens; all: every padded position "
                                       "(open-unlearning)", choices=losses_ou.UNDIAL_POSITIONS)


class UNDIAL(UnlearningMethod):
    """UNDIAL: minimise γ·CE(π_θ, softmax(z_ref − β·onehot(y_f))) + λ·ℓ(y_r|x_r) (Dong et al. 2024, NAACL 2025).

    Self-distillation with adjusted logits: at each forget token the frozen reference's
    next-token logits, with the true token's logit lowered by β, are the soft target
    (:func:`losses_ou.undial_loss`). Defaults from open-unlearning @d3d7cf9
    (``configs/trainer/UNDIAL.yaml``): β = 10, γ = 1, λ = 0 (the paper uses no retain set),
    lr 1e-4 (its run: 10 epochs; here the shared 5). ``positions="all"`` reproduces
    open-unlearning's mean over every padded position (docs/methods.md); the default scores
    the forget answer only. Needs the reference's full logits, so the reference stays
    resident (it cannot be cached as a table of sequence scores).
    """

    name = "undial"
    shapes = ("qa", "text")
    needs = ("retain",)
    needs_reference = True
    Settings = UNDIALSettings
    shared_defaults = {"lr": 1e-4, "lambda_retain": 0.0}

    def loss(self, batch):
        f = self.sub(batch)
        logits = self.forward_logits(self.model, f)
        forget = losses_ou.undial_loss(logits, self.ref_logits(f), f["labels"], self.settings.beta,
                                      self.settings.positions)
        terms = {"forget": forget}
        total = self.gamma_forget * forget
        if self.lambda_retain > 0:  # λ = 0 (the default): no retain batch is drawn at all
            r = self.retain_batch()
            terms["retain"] = losses.mean_nll(self.forward_logits(self.model, r), r["labels"])
            total = total + self.lambda_retain * terms["retain"]
        return {"loss": total, **terms}
