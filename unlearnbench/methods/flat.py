"""FLAT: minimise −g*(P_e) + f*(g*(P_f)) on forget data only, an f-divergence loss adjustment (Wang et al.).

For each forget prompt ``x_f`` the batch carries the forget answer ``y_f`` and a template
answer ``y_e`` (``batch["template"]``: a refusal by default, a random normal answer with
the data param ``template="normal"``; on raw text, a random general-text chunk per forget
chunk, where the benchmark offers general text: ``data.general``). ``P(x, y) = (1/|y|) Σ_t p_θ(y_t | x, y_<t)`` is the
mean token probability normalised by the answer's own scored length ``|y|`` (the paper's
definition; the public code divides by the padded batch length). No retain data and no
reference model. Divergences: ``kl`` (default, loss ``−P_e + exp(P_f − 1)``), ``js``,
``pearson``, ``tv`` (see ``losses.flat_loss``).

``parity="reference"`` computes ``P`` as the public code does (UCSC-REAL/FLAT @bf2ef07):
one scalar per batch, the sum of the scored tokens' probabilities over ``B·(T − 1)`` with
``T = reference_length`` (500, that code's padded length), then the same divergence.

Paper settings (``PAPER_DEFAULTS``): lr 1e-5, 5 epochs, weight decay 0.01, one epoch of
warm-up — the harness's shared defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

from unlearnbench.methods import losses
from unlearnbench.methods.base import UnlearningMethod
from unlearnbench.methods.settings import setting

PAPER_DEFAULTS = {"lr": 1e-5, "epochs": 5, "weight_decay": 0.01, "warmup_epochs": 1.0}


@dataclass
class FLATSettings:
    divergence: str = setting("kl", "the f-divergence: kl, js, pearson or tv (losses.flat_loss)",
                              choices=losses.FLAT_DIVERGENCES)
    reference_length: int = setting(500, "parity reference: the public code's padded length T (P divides by "
                                         "B·(T − 1))", range=">= 2")


class FLAT(UnlearningMethod):
    """FLAT: −g*(P_e) + f*(g*(P_f)) with mean token probabilities, forget data only (Wang et al.)."""

    name = "flat"
    # Raw text where the benchmark offers general text (its "template": data.general).
    shapes = ("qa", "text")
    needs = ("template",)
    needs_reference = False
    parities = ("paper", "reference")
    Settings = FLATSettings

    def loss(self, batch):
        f, e = self.sub(batch), self.sub(batch, "template")
        if self.parity == "reference":
            p_forget, p_template = (losses.flat_reference_probability(self.forward_logits(self.model, s), s["labels"],
                                                                      self.settings.reference_length)
                                  for s in (f, e))
        else:
            p_forget = losses.mean_token_probability(self.forward_logits(self.model, f), f["labels"])
            p_template = losses.mean_token_probability(self.forward_logits(self.model, e), e["labels"])
        forget = losses.flat_loss(p_template, p_forget, self.settings.divergence)
        return {"loss": self.gamma_forget * forget, "forget": forget,
                "p_template": p_template.mean(), "p_forget": p_forget.mean()}
