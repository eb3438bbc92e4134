"""PDU: primal-dual unlearning, logit flattening on the forget set under a retain-loss constraint."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from unlearnbench.methods import losses, losses_ou
from unlearnbench.methods.base import UnlearningMethod
from unlearnbench.methods.settings import setting
from unlearnbench.parallel import initialized


@dataclass
class PDUSettings:
    retain_loss_eps: float | None = setting(None, "ε, the bound on the retain loss; unset: retain_loss_ratio × "
                                                  "the model's retain NLL before unlearning", range=">= 0")
    retain_loss_ratio: float = setting(2.0, "ε as a multiple of the retain NLL before unlearning (when "
                                            "retain_loss_eps is unset)", range="> 0")
    dual_step_size: float = setting(1.0, "η, step of the dual variable μ ← max(0, μ + η·(ℓ_r − ε))", range=">= 0")
    dual_warmup_epochs: int = setting(5, "epochs before μ starts moving (μ starts at lambda_retain)", range=">= 0")
    shifted: bool = setting(False, "true: flatten the logits that predict the answer tokens (the paper); false: "
                                   "those at the scored positions (open-unlearning)")


class PDU(UnlearningMethod):
    """PDU: minimise γ·mean_t(max_v z − mean_v z)² + μ·(ℓ(y_r|x_r) − ε), μ ← max(0, μ + η·(ℓ_r − ε)) (Entesari 2025).

    Constrained unlearning solved primal-dual (:func:`losses_ou.pdu_forget_loss`): the forget
    term flattens the next-token logits on forget answers; the retain loss must stay under ε
    (``retain_loss_eps``); the dual variable μ starts at ``lambda_retain`` and, after
    ``dual_warmup_epochs`` epochs, moves by ``dual_step_size`` times the constraint's slack
    after every step. Defaults from open-unlearning @d3d7cf9 (``configs/trainer/PDU.yaml``):
    η = 1, 5 warm-up epochs, γ = λ = 1, lr 1e-5.

    ε is required there (``???``). Here ``retain_loss_eps`` may be given; when it is not,
    ε = ``retain_loss_ratio`` × the retain NLL of the model before unlearning, measured over
    the whole retain set at the first training step (the community README's advice: "look at
    the retain loss of the pretrained model and choose an appropriately larger value"),
    so one grid setting fits every model and split. The dual variable's update uses the
    retain loss averaged over ranks, so every rank keeps the same μ.
    """

    name = "pdu"
    shapes = ("qa", "text")
    needs = ("retain",)
    Settings = PDUSettings

    def __init__(self, model_path: str | None = None, **params):
        super().__init__(model_path, **params)
        # ε once known (given, or measured at the first step) and μ: training state, not settings
        self.retain_loss_eps = self.settings.retain_loss_eps
        self.dual = float(self.lambda_retain)  # μ, open-unlearning's ``preferences[1]``

    @torch.no_grad()
    def measure_retain_loss(self) -> float:
        """Token-mean retain NLL of the current model over the whole retain set (every rank
        reads all of it: under FSDP the forward passes are collective)."""
        was = self.model.training
        self.model.eval()
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        count = 0
        for b in self.trainer.datamodule.plain_loader("retain"):
            b = {k: b[k].to(self.device) for k in ("input_ids", "attention_mask", "labels")}
            s, n = losses.sequence_nll(self.forward_logits(self.model, b), b["labels"])
            total += s.sum().double()
            count += int(n.sum())
            self.tokens_seen += int(b["attention_mask"].sum())
        self.model.train(was)
        return float(total) / max(count, 1)

    def _mean_over_ranks(self, value: torch.Tensor) -> float:
        value = value.detach().float().clone()
        if initialized():
            torch.distributed.all_reduce(value)
            value /= torch.distributed.get_world_size()
        return float(value)

    def loss(self, batch):
        if self.retain_loss_eps is None:  # measured at the first step (also when WAGLE wraps PDU)
            self.retain_loss_eps = self.settings.retain_loss_ratio * self.measure_retain_loss()
        f = self.sub(batch)
        forget = losses_ou.pdu_forget_loss(self.forward_logits(self.model, f), f["labels"], self.settings.shifted)
        retain = self.retain_nll()
        slack = retain - self.retain_loss_eps
        dual = self.dual  # the step's loss uses μ before this step's update, as open-unlearning
        total = self.gamma_forget * forget + dual * slack
        # open-unlearning enables the update at the end of epoch `dual_warmup_epochs` (HF's
        # state.epoch counts finished epochs), so it starts in 0-based epoch dual_warmup_epochs.
        if self.current_epoch >= self.settings.dual_warmup_epochs:
            self.dual = max(0.0, dual + self.settings.dual_step_size * self._mean_over_ranks(slack))
        return {"loss": total, "forget": forget, "retain": retain,
                "dual": torch.tensor(dual), "eps": torch.tensor(self.retain_loss_eps)}
