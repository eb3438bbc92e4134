"""LLMU: ascent on harmful answers + descent on random normal answers + KL on normal data
(Yao, Xu, Liu, "Large Language Model Unlearning").

``L = γ·(−ε1·ℓ(y_f|x_f) + ε2·mean_k ℓ(y_rand,k|x_f)) + λ·ε3·KL(π_ref ‖ π_θ)``, with
ε = (0.5, 1, 1) and K = 5 random answers from normal data (the retain split here, data
param ``k_random``) attached to each harmful prompt. The mismatch term scores the random
answer's tokens only; the KL is forward KL from the frozen model on normal data over all
non-padding positions. γ = λ = 1 by default, which gives the paper's loss exactly.

Optional early stop (``stop_threshold``): training stops once the *ascended* forget loss
``ℓ(y_f|x_f)`` (a positive NLL that grows during ascent, averaged over ranks) exceeds the
threshold. The public code compares the negated loss, which never passes a positive
threshold; this compares the ascended loss as the paper describes.

``parity="reference"`` computes the three terms as the public code does
(kevinyaobytedance/llm_unlearn @647f309, ``losses.llmu_reference_loss``) and turns gradient
clipping off unless ``grad_clip`` is given, as that code never clips.

Paper settings (``PAPER_DEFAULTS``): lr 2e-6, batch 2, no warm-up, no gradient clipping,
linear decay over a fixed budget of 1000 steps (the shared loop's ``steps`` option: the forget data cycles until
the budget is spent). The shipped grids give real models exactly these (``real_params``)
and the tiny model a scaled budget (``tiny_params``, documented in the grid).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from unlearnbench.methods import losses
from unlearnbench.methods.base import UnlearningMethod
from unlearnbench.methods.settings import setting

PAPER_DEFAULTS = {"lr": 2e-6, "batch_size": 2, "warmup_epochs": 0.0, "steps": 1000, "grad_clip": 0.0}


@dataclass
class LLMUSettings:
    eps1: float = setting(0.5, "ε1, weight of the ascent on the harmful (forget) answers")
    eps2: float = setting(1.0, "ε2, weight of the descent on random normal answers to the forget prompts")
    eps3: float = setting(1.0, "ε3, weight of the KL to the frozen model on normal data")
    stop_threshold: float | None = setting(None, "stop once the ascended forget NLL (rank mean) exceeds this; "
                                                 "unset: never", range="> 0")


class LLMU(UnlearningMethod):
    """LLMU: −ε1·ℓ(y_f|x_f) + ε2·mean_k ℓ(y_rand,k|x_f) + ε3·KL(π_ref‖π_θ) on normal data (Yao, Xu, Liu)."""

    name = "llmu"
    needs = ("random_normal", "retain")
    needs_reference = True
    parities = ("paper", "reference")
    Settings = LLMUSettings
    # Unset: 0 (no clipping) under parity "reference", as the public code; else the loop's 1.0.
    shared_defaults = {"grad_clip": None}

    def __init__(self, model_path: str | None = None, **params):
        """``grad_clip`` unset: 0 (no clipping) under parity "reference", as the public code; else 1.0."""
        if params.get("grad_clip") is None:
            params["grad_clip"] = 0.0 if params.get("parity") == "reference" else 1.0
        super().__init__(model_path, **params)
        self.eps = (self.settings.eps1, self.settings.eps2, self.settings.eps3)

    def loss(self, batch):
        f, rand = self.sub(batch), self.sub(batch, "random")
        normal = self.retain_batch()
        f_logits = self.forward_logits(self.model, f)
        am = normal["attention_mask"].bool()
        normal_mask = am[:, :-1] & am[:, 1:]  # positions t where t and t+1 are real tokens
        if self.parity == "reference":
            terms = losses.llmu_reference_loss(
                f_logits, f["labels"], self.forward_logits(self.model, rand), rand["input_ids"],
                rand["attention_mask"], self.forward_logits(self.model, normal), self.ref_logits(normal),
                eps=self.eps)
        else:
            terms = losses.llmu_loss(
                f_logits, f["labels"],
                self.forward_logits(self.model, rand), rand["labels"],
                self.forward_logits(self.model, normal), self.ref_logits(normal), normal_mask,
                eps=self.eps,
            )
        with torch.no_grad():
            forget_nll = losses.mean_nll(f_logits.detach(), f["labels"])
        total = self.gamma_forget * (terms["forget"] + terms["mismatch"]) + self.lambda_retain * terms["kl"]
        self._maybe_stop(forget_nll)
        return {**terms, "loss": total, "forget_nll": forget_nll}

    def _maybe_stop(self, forget_nll: torch.Tensor) -> None:
        if self.settings.stop_threshold is None:
            return
        # The same decision on every rank: compare the rank-mean ascended loss.
        nll = self.trainer.strategy.reduce(forget_nll.detach().clone(), reduce_op="mean")
        if float(nll) > self.settings.stop_threshold:
            self.trainer.should_stop = True
