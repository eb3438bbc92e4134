"""Plain causal-LM training with the Lightning Trainer (base pre-training, TOFU fine-tuning).

The TOFU recipe: AdamW, weight decay, linear warm-up over the first epoch then linear
decay, loss on the answer tokens only.
"""

from __future__ import annotations

import json

import lightning as L
import torch
from torch.utils.data import DataLoader
from transformers import get_linear_schedule_with_warmup

from unlearnbench.data.collate import Encoder, pad_right
from unlearnbench.models.progress import EpochProgress


def load_texts(path) -> list[str]:
    with open(path) as f:
        return [json.loads(line)["text"] for line in f]


class CausalLMFit(L.LightningModule):
    def __init__(self, model, lr: float, weight_decay: float, warmup: int, total: int):
        super().__init__()
        self.model = model
        self.lr, self.weight_decay, self.warmup, self.total = lr, weight_decay, warmup, total

    def training_step(self, batch, batch_idx):
        out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                         labels=batch["labels"])
        self.log("loss", out.loss, prog_bar=True)
        return out.loss

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        # The methods' schedule (methods.base): Hugging Face's linear warm-up from 0 and decay.
        sched = get_linear_schedule_with_warmup(opt, num_warmup_steps=self.warmup, num_training_steps=self.total)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def fit_causal_lm(model, tokenizer, *, epochs: int, lr: float, tiny, seed: int,
                  texts: list[str] | None = None, qa: list[dict] | None = None,
                  template: str = "phi", desc: str = "", warmup_steps: int | None = None,
                  progress: str = "[train]") -> None:
    """Train ``model`` in place on plain ``texts``, question/answer rows ``qa``, or both
    (warm-up over the first epoch unless ``warmup_steps`` says otherwise)."""
    enc = Encoder(tokenizer, template, max_len=tiny.max_len)
    examples = [enc.encode_text(t) for t in texts or []]
    examples += enc.encode_many([(r["question"], r["answer"]) for r in qa or []])
    L.seed_everything(seed, workers=True, verbose=False)
    g = torch.Generator().manual_seed(seed)
    loader = DataLoader(examples, batch_size=tiny.batch_size, shuffle=True, generator=g,
                        collate_fn=lambda b: pad_right(b, enc.pad_id))
    model.train()  # from_pretrained returns eval mode
    steps_per_epoch = len(loader)
    warmup = steps_per_epoch if warmup_steps is None else warmup_steps
    module = CausalLMFit(model, lr, tiny.weight_decay, warmup=warmup,
                         total=steps_per_epoch * epochs)
    # fp32 weights and AdamW state; bf16 compute on GPU (the precision rule of docs/methods.md).
    precision = "bf16-mixed" if torch.cuda.is_available() else "32-true"
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu" if not torch.cuda.is_available() else "auto",
                        devices=1, logger=False, enable_checkpointing=False, deterministic=True,
                        enable_model_summary=False, gradient_clip_val=1.0, precision=precision,
                        enable_progress_bar=True, callbacks=[EpochProgress(progress, desc or "training")])
    print(f"[unlearnbench] training {desc}: {len(examples)} examples x {epochs} epochs", flush=True)
    trainer.fit(module, loader)
