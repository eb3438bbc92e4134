"""AltPO: DPO that prefers a plausible alternate answer over the forget answer, plus retain NLL."""

from __future__ import annotations

from dataclasses import dataclass

from unlearnbench.methods import losses
from unlearnbench.methods.base import UnlearningMethod
from unlearnbench.methods.settings import setting


@dataclass
class AltPOSettings:
    beta: float = setting(0.1, "β, inverse temperature of the DPO log-ratio margin", range="> 0")


class AltPO(UnlearningMethod):
    """AltPO: minimise γ·(−(2/β)·logσ(β[Δ(y_alt) − Δ(y_f)])) + λ·ℓ(y_r|x_r), Δ = log(π_θ/π_ref) (Mekala et al. 2024).

    Alternate preference optimisation: DPO (:func:`losses.dpo_loss`, summed answer log-probs)
    whose preferred answer is an alternate, plausible but wrong answer to the forget question
    (``batch["alternate"]``, one drawn per row per batch from the row's alternates) and whose
    rejected answer is the forget answer. As open-unlearning @d3d7cf9 runs it
    (``community/methods/AltPO/run.sh``: its DPO trainer on a ``QAwithAlternateDataset``):
    β = 0.1, γ = 1, λ = 1, 2 epochs, lr 1e-5 (searched over 1e-5..5e-5). Alternates: the
    stand-in generates five per question; for real TOFU pass ``alternate_file`` (the JSON lines
    open-unlearning's ``generate.py`` writes). The reference is cacheable (only S_ref is used).
    """

    name = "altpo"
    needs = ("alternate", "retain")
    needs_reference = True
    cacheable_reference = True
    Settings = AltPOSettings
    shared_defaults = {"epochs": 2}

    def _logp(self, sub):
        s, s_ref = self.summed_nll_with_ref(sub)
        return -s, -s_ref

    def loss(self, batch):
        win, win_ref = self._logp(self.sub(batch, "alternate"))
        lose, lose_ref = self._logp(self.sub(batch))
        forget = losses.dpo_loss(win, win_ref, lose, lose_ref, beta=self.settings.beta)
        retain = self.retain_nll()
        total = self.gamma_forget * forget + self.lambda_retain * retain
        return {"loss": total, "forget": forget, "retain": retain}
