"""IdkPO: teach the model to refuse on forget prompts while keeping the retain set."""

from __future__ import annotations

from unlearnbench.methods import losses
from unlearnbench.methods.base import UnlearningMethod


class IdkPO(UnlearningMethod):
    """IdkPO: minimise γ·ℓ(y_idk|x_f) + λ·ℓ(y_r|x_r) with y_idk a random refusal (TOFU, Maini et al. 2024).

    The refusal answers are the harness's own list (``data/refusals.py``), one drawn
    uniformly per forget prompt and attached by the DataModule as ``batch["idk"]``.
    """

    name = "idk"
    needs = ("idk", "retain")

    def __init__(self, model_path: str | None = None, **kw):
        super().__init__(model_path, **kw)

    def loss(self, batch):
        idk = self.sub(batch, "idk")
        forget = losses.mean_nll(self.forward_logits(self.model, idk), idk["labels"])
        retain = self.retain_nll()
        total = self.gamma_forget * forget + self.lambda_retain * retain
        return {"loss": total, "forget": forget, "retain": retain}
