"""Negative preference optimisation on the forget set alone."""

from __future__ import annotations

from unlearnbench.methods import losses
from unlearnbench.methods.base import UnlearningMethod


class NPO(UnlearningMethod):
    """NPO: minimise γ·(−(2/β)·logσ(−β·log(π_θ(y_f|x_f)/π_ref(y_f|x_f)))) (Zhang et al. 2024).

    Summed log-probs over the forget answer's tokens (``log π = −S``); β = 0.1. At θ = ref
    the loss is ``(2/β)·log 2``; it is bounded below by 0, unlike gradient ascent.
    """

    name = "npo"
    param_ranges = {"beta": "> 0"}  # checked when a grid is read (methods.params)
    shapes = ("qa", "text")
    needs = ()
    needs_reference = True
    cacheable_reference = True
    # "wagle": WAGLE's own NPO (OPTML-Group/WAGLE @31275e8, src/unlearn/GA.py, NPO_FT), one
    # log-ratio per batch from token-mean NLLs (losses.npo_token_mean_loss).
    parities = ("paper", "wagle")

    def __init__(self, model_path: str | None = None, *, beta: float = 0.1, **kw):
        if not beta > 0:
            raise ValueError(f"method {self.name!r}: beta must be > 0, got {beta}")
        super().__init__(model_path, **kw)
        self.beta = float(beta)

    def loss(self, batch):
        f = self.sub(batch)
        s, s_ref = self.summed_nll_with_ref(f)
        if self.parity == "wagle":
            n = (f["labels"][:, 1:] != losses.IGNORE_INDEX).sum().clamp(min=1)
            forget = losses.npo_token_mean_loss(s.sum() / n, s_ref.sum() / n, beta=self.beta)
        else:
            forget = losses.npo_loss(s, s_ref, beta=self.beta)
        return {"loss": self.gamma_forget * forget, "forget": forget}
