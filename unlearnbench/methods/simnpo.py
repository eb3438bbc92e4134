"""SimNPO: reference-free, length-normalised NPO plus the retain NLL."""

from __future__ import annotations

from dataclasses import dataclass

from unlearnbench.methods import losses
from unlearnbench.methods.base import UnlearningMethod
from unlearnbench.methods.settings import setting


@dataclass
class SimNPOSettings:
    beta: float = setting(4.5, "β, scale of the length-normalised log-likelihood", range="> 0")
    delta: float = setting(0.0, "δ, the margin subtracted after the scaling by β (theirs × β: see the docstring)")


class SimNPO(UnlearningMethod):
    """SimNPO: minimise γ·(−(2/β)·logσ(−β·(−S_θ(y_f)/|y_f|) − δ)) + λ·ℓ(y_r|x_r) (Fan et al. 2024).

    No reference model: the forget answer's mean token log-prob replaces NPO's log-ratio.
    Defaults per docs/methods.md: β = 4.5, δ = 0, γ = 0.125, λ = 1.

    Where δ sits. This follows the paper and docs/methods.md: the margin δ is subtracted after
    the scaling by β, ``logσ(β·S/|y| − δ)``. The authors' TOFU code (OPTML-Group/
    Unlearn-Simple, ``TOFU/dataloader.py``, ``simnpo_grad_diff``, margin called ``gamma``)
    and open-unlearning (``trainer/unlearn/simnpo.py``, margin called ``delta``) both
    compute ``−(2/β)·logσ(β·(S/|y| − δ_code))``, i.e. a margin of ``β·δ_code``. So their
    ``δ_code`` is our ``δ / β``: to reproduce one of their runs pass ``delta = β·δ_code``.
    With the shipped default δ = 0 the two losses are identical. Their other names: our γ
    is the authors' ``npo_coeff`` and open-unlearning's ``gamma`` (0.125 in both); our λ is
    ``grad_diff_coeff`` / ``alpha`` (1); the retain term is the same token-mean NLL.
    """

    name = "simnpo"
    shapes = ("qa", "text")
    needs = ("retain",)
    Settings = SimNPOSettings
    shared_defaults = {"gamma_forget": 0.125}

    def loss(self, batch):
        f = self.sub(batch)
        s, n = losses.sequence_nll(self.forward_logits(self.model, f), f["labels"])
        forget = losses.simnpo_loss(s, n, beta=self.settings.beta, delta=self.settings.delta)
        retain = self.retain_nll()
        total = self.gamma_forget * forget + self.lambda_retain * retain
        return {"loss": total, "forget": forget, "retain": retain}
