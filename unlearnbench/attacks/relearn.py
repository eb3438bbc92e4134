"""Relearning attack (Hu et al. 2024; Deeb & Roger 2024): a few steps of plain fine-tuning of the
unlearned model on a slice of the forget data, then the benchmark's evaluation on *all* of it,
so that recovery on the items not relearned shows knowledge coming back rather than being
taught again.

Defaults (documented in docs/robustness.md): every 4th forget row (``fraction`` 0.25, a
deterministic slice), one epoch, no warm-up, batch 8, and the learning rate of the model's
fine-tuning recipe (the tiny family's ``finetune_lr``; 1e-5 for real models, TOFU's).
"""

from __future__ import annotations

from types import SimpleNamespace

from unlearnbench.attacks.base import Attack


def _family_finetune_lr(spec, bench) -> float:
    """The learning rate the stand-in's tiny target was fine-tuned with (its recipe may override it)."""
    recipe = bench.recipe()
    return float((recipe.tiny or {}).get("finetune_lr", spec.tiny.finetune_lr)) if recipe else spec.tiny.finetune_lr


class Relearn(Attack):
    """Relearning: plain fine-tuning on a slice of the forget data, then re-evaluation."""

    name = "relearn"
    defaults = {"fraction": 0.25, "epochs": 1, "lr": None, "batch_size": 8}

    def slice(self, rows: list) -> list:
        """Every k-th row, k = round(1 / fraction): deterministic and spread over the whole set."""
        fraction = float(self.params["fraction"])
        if not 0 < fraction <= 1:
            raise ValueError(f"attack 'relearn': fraction must be in (0, 1], got {fraction}")
        return rows[:: max(1, round(1 / fraction))]

    def apply(self, model, *, tokenizer, encoder, bench, split, spec, seed, source=None):
        from unlearnbench.models.finetune import fit_causal_lm

        rows = self.slice(bench.forget_rows(split))
        lr = self.params["lr"] or (_family_finetune_lr(spec, bench) if spec.is_tiny else 1e-5)
        qa = rows if bench.shape == "qa" else None
        texts = [r["text"] for r in rows] if bench.shape == "text" else None
        fit_causal_lm(model, tokenizer, epochs=int(self.params["epochs"]), lr=float(lr),
                      tiny=SimpleNamespace(max_len=encoder.max_len, batch_size=int(self.params["batch_size"]),
                                           weight_decay=0.0),
                      seed=seed, texts=texts, qa=qa, template=encoder.template, warmup_steps=0,
                      desc=f"relearn {len(rows)} forget rows")
        model.eval()
        return model
