"""NPO on the forget set plus the retain NLL."""

from __future__ import annotations

from dataclasses import dataclass

from unlearnbench.methods import losses
from unlearnbench.methods.base import UnlearningMethod
from unlearnbench.methods.settings import setting


@dataclass
class NPORTSettings:
    beta: float = setting(0.1, "β, inverse temperature of the log-ratio log(π_θ/π_ref)", range="> 0")


class NPORT(UnlearningMethod):
    """NPO+RT: minimise γ·(−(2/β)·logσ(−β·log(π_θ(y_f)/π_ref(y_f)))) + λ·ℓ(y_r|x_r) (Zhang et al. 2024).

    The NPO term uses summed log-probs over the forget answer (β = 0.1) and equals
    ``(2/β)·log 2`` at θ = ref; the retain term is the token-mean NLL on a retain batch.
    """

    name = "npo_rt"
    shapes = ("qa", "text")
    needs = ("retain",)
    needs_reference = True
    cacheable_reference = True
    # "wagle": WAGLE's own NPO (OPTML-Group/WAGLE @31275e8, src/unlearn/GA.py, NPO_FT), one
    # log-ratio per batch from token-mean NLLs (losses.npo_token_mean_loss).
    parities = ("paper", "wagle")
    Settings = NPORTSettings

    def loss(self, batch):
        f = self.sub(batch)
        s, s_ref = self.summed_nll_with_ref(f)
        if self.parity == "wagle":
            n = (f["labels"][:, 1:] != losses.IGNORE_INDEX).sum().clamp(min=1)
            forget = losses.npo_token_mean_loss(s.sum() / n, s_ref.sum() / n, beta=self.settings.beta)
        else:
            forget = losses.npo_loss(s, s_ref, beta=self.settings.beta)
        retain = self.retain_nll()
        total = self.gamma_forget * forget + self.lambda_retain * retain
        return {"loss": total, "forget": forget, "retain": retain}
