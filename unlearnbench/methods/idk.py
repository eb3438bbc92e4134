"""IdkPO: teach the model to refuse on forget prompts while keeping the retain set."""

from __future__ import annotations

from unlearnbench.methods import losses
from unlearnbench.methods.base import UnlearningMethod


class IdkPO(UnlearningMethod):
    """IdkPO: minimise one token mean over refusal and retain rows, (γ·S_idk + λ·S_r)/(n_idk + n_r) (TOFU, Maini 2024).

    ``S`` are the summed NLLs of the scored tokens of the refusal rows (``y_idk`` on the
    forget prompts) and of the retain rows, ``n`` their token counts: TOFU's code
    (locuslab/tofu ``dataloader.py``, loss ``idk``) concatenates the two batches and takes the
    model's one token-mean loss, which is this with γ = λ = 1. ``parity="reference"`` is the
    same loss. ``parity="wagle"`` is the sum of two means, ``γ·ℓ(y_idk|x_f) + λ·ℓ(y_r|x_r)``,
    as WAGLE's PO (OPTML-Group/WAGLE ``src/unlearn/CL.py``, ``CL_FT``) and this harness
    before. The refusal answers are the harness's own list (``data/refusals.py``), one drawn
    uniformly per forget prompt and attached by the DataModule as ``batch["idk"]``.
    """

    name = "idk"
    needs = ("idk", "retain")
    parities = ("paper", "reference", "wagle")

    def loss(self, batch):
        idk, r = self.sub(batch, "idk"), self.retain_batch()
        s_idk, n_idk = losses.sequence_nll(self.forward_logits(self.model, idk), idk["labels"])
        s_r, n_r = losses.sequence_nll(self.forward_logits(self.model, r), r["labels"])
        n_idk, n_r = n_idk.sum(), n_r.sum()
        forget, retain = s_idk.sum() / n_idk.clamp(min=1), s_r.sum() / n_r.clamp(min=1)  # the two token means, logged
        if self.parity == "wagle":
            total = self.gamma_forget * forget + self.lambda_retain * retain
        else:
            total = (self.gamma_forget * s_idk.sum() + self.lambda_retain * s_r.sum()) / (n_idk + n_r).clamp(min=1)
        return {"loss": total, "forget": forget, "retain": retain}
