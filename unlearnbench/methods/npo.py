"""Negative preference optimisation on the forget set alone."""

from __future__ import annotations

from dataclasses import dataclass

from unlearnbench.methods import losses
from unlearnbench.methods.base import UnlearningMethod
from unlearnbench.methods.settings import setting


@dataclass
class NPOSettings:
    beta: float = setting(0.1, "β, inverse temperature of the log-ratio log(π_θ/π_ref)", range="> 0")


class NPO(UnlearningMethod):
    """NPO: minimise γ·(−(2/β)·logσ(−β·log(π_θ(y_f|x_f)/π_ref(y_f|x_f)))) (Zhang et al. 2024).

    Summed log-probs over the forget answer's tokens (``log π = −S``); β = 0.1. At θ = ref
    the loss is ``(2/β)·log 2``; it is bounded below by 0, unlike gradient ascent.
    """

    name = "npo"
    shapes = ("qa", "text")
    needs = ()
    needs_reference = True
    cacheable_reference = True
    # "wagle": WAGLE's own NPO (OPTML-Group/WAGLE @31275e8, src/unlearn/GA.py, NPO_FT), one
    # log-ratio per batch from token-mean NLLs (losses.npo_token_mean_loss).
    parities = ("paper", "wagle")
    Settings = NPOSettings

    def loss(self, batch):
        f = self.sub(batch)
        s, s_ref = self.summed_nll_with_ref(f)
        if self.parity == "wagle":
            n = (f["labels"][:, 1:] != losses.IGNORE_INDEX).sum().clamp(min=1)
            forget = losses.npo_token_mean_loss(s.sum() / n, s_ref.sum() / n, beta=self.settings.beta)
        else:
            forget = losses.npo_loss(s, s_ref, beta=self.settings.beta)
        return {"loss": self.gamma_forget * forget, "forget": forget}
