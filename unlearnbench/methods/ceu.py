"""CE-U: cross-entropy unlearning from the forget data alone."""

from __future__ import annotations

from dataclasses import dataclass

from unlearnbench.methods import losses_ou
from unlearnbench.methods.base import UnlearningMethod
from unlearnbench.methods.settings import setting


@dataclass
class CEUSettings:
    ignore_first_n_answer_tokens: int = setting(1, "leading answer tokens of each row left unscored", range=">= 0")


class CEU(UnlearningMethod):
    """CE-U: minimise γ·mean_t CE(π_θ, softmax(z_θ.detach() with z_{y_t} = −∞)) on the forget set (Yang et al. 2025).

    Cross-entropy unlearning (:func:`losses_ou.ceu_loss`): the target at each forget token is
    the model's own current distribution with the true token removed, so the gradient only
    lowers the true token. Forget data only, no retain term, no reference. The first
    ``ignore_first_n_answer_tokens`` = 1 answer token of each row is not scored (open-unlearning
    @d3d7cf9, ``configs/trainer/CEU.yaml``; the paper's footnote); lr 1e-5.
    """

    name = "ceu"
    shapes = ("qa", "text")
    needs = ()
    Settings = CEUSettings

    def loss(self, batch):
        f = self.sub(batch)
        forget = losses_ou.ceu_loss(self.forward_logits(self.model, f), f["labels"],
                                   self.settings.ignore_first_n_answer_tokens)
        return {"loss": self.gamma_forget * forget, "forget": forget}
