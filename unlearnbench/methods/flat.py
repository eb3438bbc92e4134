"""FLAT: minimise −g*(P_e) + f*(g*(P_f)) on forget data only, an f-divergence loss adjustment (Wang et al.).

For each forget prompt ``x_f`` the batch carries the forget answer ``y_f`` and a template
answer ``y_e`` (``batch["template"]``: a refusal by default, a random normal answer with
the data param ``template="normal"``). ``P(x, y) = (1/|y|) Σ_t p_θ(y_t | x, y_<t)`` is the
mean token probability normalised by the answer's own scored length ``|y|`` (the paper's
definition; the public code divides by the padded batch length). No retain data and no
reference model. Divergences: ``kl`` (default, loss ``−P_e + exp(P_f − 1)``), ``js``,
``pearson``, ``tv`` (see ``losses.flat_loss``).

Paper settings (``PAPER_DEFAULTS``): lr 1e-5, 5 epochs, weight decay 0.01, one epoch of
warm-up — the harness's shared defaults.
"""

from __future__ import annotations

from unlearnbench.methods import losses
from unlearnbench.methods.base import UnlearningMethod

PAPER_DEFAULTS = {"lr": 1e-5, "epochs": 5, "weight_decay": 0.01, "warmup_epochs": 1.0}


class FLAT(UnlearningMethod):
    """FLAT: −g*(P_e) + f*(g*(P_f)) with mean token probabilities, forget data only (Wang et al.)."""

    name = "flat"
    param_choices = {"divergence": losses.FLAT_DIVERGENCES}  # checked when a grid is read
    needs = ("template",)
    needs_reference = False

    def __init__(self, model_path: str | None = None, *, divergence: str = "kl", **kwargs):
        if divergence not in losses.FLAT_DIVERGENCES:
            raise ValueError(f"method 'flat': unknown divergence {divergence!r}; choose one of "
                             f"{', '.join(losses.FLAT_DIVERGENCES)}")
        super().__init__(model_path, **kwargs)
        self.divergence = divergence

    def loss(self, batch):
        f, e = self.sub(batch), self.sub(batch, "template")
        p_forget = losses.mean_token_probability(self.forward_logits(self.model, f), f["labels"])
        p_template = losses.mean_token_probability(self.forward_logits(self.model, e), e["labels"])
        forget = losses.flat_loss(p_template, p_forget, self.divergence)
        return {"loss": self.gamma_forget * forget, "forget": forget,
                "p_template": p_template.mean(), "p_forget": p_forget.mean()}
