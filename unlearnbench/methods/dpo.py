"""IdkDPO: DPO that prefers a refusal over the forget answer, plus retain NLL."""

from __future__ import annotations

from dataclasses import dataclass

from unlearnbench.methods import losses
from unlearnbench.methods.base import UnlearningMethod
from unlearnbench.methods.settings import setting


@dataclass
class IdkDPOSettings:
    beta: float = setting(0.1, "β, inverse temperature of the DPO log-ratio margin", range="> 0")


class IdkDPO(UnlearningMethod):
    """IdkDPO: minimise γ·(−(2/β)·logσ(β[Δ(y_idk) − Δ(y_f)])) + λ·ℓ(y_r|x_r), Δ = log(π_θ/π_ref) (Rafailov 2023; TOFU).

    Win = the refusal ``batch["idk"]``, lose = the forget answer; log-probs are summed
    over answer tokens (``log π = −S``). β = 0.1; at θ = ref the forget term is
    ``(2/β)·log 2``.
    """

    name = "dpo"
    needs = ("idk", "retain")
    needs_reference = True
    cacheable_reference = True
    Settings = IdkDPOSettings

    def _logp(self, sub):
        s, s_ref = self.summed_nll_with_ref(sub)
        return -s, -s_ref

    def loss(self, batch):
        win, win_ref = self._logp(self.sub(batch, "idk"))
        lose, lose_ref = self._logp(self.sub(batch))
        forget = losses.dpo_loss(win, win_ref, lose, lose_ref, beta=self.settings.beta)
        retain = self.retain_nll()
        total = self.gamma_forget * forget + self.lambda_retain * retain
        return {"loss": total, "forget": forget, "retain": retain}
