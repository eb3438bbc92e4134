"""The one base class every unlearning method shares.

It owns everything a fair comparison needs to hold fixed: the model and (only when a
method asks for it) a frozen reference model, AdamW with linear warm-up/decay, gradient
clipping, logging of every loss term, the forget-driven epoch with a retain iterator that
cycles and is shuffled independently on each rank, sharding, the NaN guard, and saving
with ``save_pretrained``. A method overrides ``loss`` (and WAGLE the gradient-mask hook).
"""

from __future__ import annotations

from unlearnbench.errors import UserError

import math

import lightning as L
import torch
from transformers import get_linear_schedule_with_warmup

from unlearnbench.methods import settings as S
from unlearnbench.parallel import barrier


class NonFiniteLossError(FloatingPointError):
    pass


class ParityError(UserError):
    """A ``parity`` value the method does not offer (the CLI prints it as one line, exit 2)."""


class UnlearningMethod(L.LightningModule):
    """Base class: subclasses set ``name``, ``needs``, ``needs_reference`` and ``loss``."""

    name: str = "base"
    # Data a method declares: "retain", "idk" (refusals), "random_normal" (LLMU),
    # "template" (FLAT). The data module draws what is declared for every batch.
    needs: tuple[str, ...] = ()
    needs_reference: bool = False
    # Methods that use the reference only through S_ref(y|x) (NPO, NPO-RT, IdkDPO) can score
    # it once before training and drop the reference model (``reference: cached``).
    cacheable_reference: bool = False
    # LoRA trains adapters around frozen weights; a method whose update is defined on chosen
    # full weights (RMU's layers, WAGLE's mask) sets this False and refuses ``lora``.
    supports_lora: bool = True
    # Data shapes the method can train on: "qa" (question/answer rows, the answer scored)
    # and/or "text" (raw text chunks, every token scored). A grid cell whose benchmark
    # has another shape is reported "not applicable".
    shapes: tuple[str, ...] = ("qa",)
    # Values of the ``parity`` option: "paper" (the published definition) always; a method
    # whose public code computes another loss or gradient on the same batch also offers
    # "reference" (that code, quirks included; docs/methods.md says which quirks).
    parities: tuple[str, ...] = ("paper",)
    # Settings of the method's own (a dataclass of ``methods.settings.setting`` fields, declared
    # in the method's file) and the defaults it changes of the shared ones (loop, loss weights).
    Settings: type | None = None
    shared_defaults: dict = {}

    @classmethod
    def trainable_share(cls, shape: dict, params: dict) -> float:
        """The fraction of a model's parameters this method trains (memory planning)."""
        return 1.0

    @classmethod
    def supports(cls, shape: str, params: dict | None = None) -> bool:
        """Whether this method (with these hyper-parameters) can train on data of ``shape``."""
        return shape in cls.shapes

    def __init__(self, model_path: str | None = None, *, model=None, dtype=None, ref_dtype=None, **params):
        """``params``: a flat mapping of settings (a grid's ``params:``), split by field name
        into ``self.loop`` (``LoopSettings``; also ``self.lr``, ``self.epochs``, ...), the
        loss weights ``self.gamma_forget``/``self.lambda_retain``, the run options and the
        method's own ``self.settings``. Checked before any model is loaded."""
        super().__init__()
        (loop, weights, options, own), rest = S.split(type(self), params)
        if rest:
            raise S.unknown(self.name, next(iter(rest)), S.known_params(type(self)))
        parity, lora, reference = options.parity, options.lora, options.reference
        if parity not in self.parities:
            raise ParityError(parity_message(self.name, parity, self.parities))
        self.parity = parity
        if lora is not None and not self.supports_lora:
            raise ValueError(f"method {self.name!r} does not train with LoRA: its update is defined on "
                             "chosen full weights; drop `lora` (or use another method)")
        self.loop, self.settings = loop, own
        # The loop reads its settings as attributes. A fixed step budget (``steps``, LLMU's
        # recipe) replaces `epochs`: the forget loader cycles until `steps` optimiser steps
        # are done, and the schedule decays over them.
        self.lr, self.weight_decay, self.warmup_epochs = loop.lr, loop.weight_decay, loop.warmup_epochs
        self.epochs, self.steps, self.batch_size = loop.epochs, loop.steps, loop.batch_size
        self.grad_clip, self.seed = loop.grad_clip, loop.seed
        self.reference_mode = reference if self.cacheable_reference else "resident"
        self._ref_table = None
        self.gamma_forget, self.lambda_retain = weights.gamma_forget, weights.lambda_retain
        self.model_path = model_path
        # Precision rule (docs/methods.md): trainable weights and AdamW state in fp32, whatever the
        # accelerator; bf16 is the *compute* dtype of bf16-mixed training. Pure-bf16 AdamW
        # rounds most updates at lr 1e-5 to nothing. Only a frozen reference may be bf16.
        self.lora = lora
        base_dtype = dtype or (reference_dtype() if lora else torch.float32)  # LoRA: the base is frozen
        self.model = model if model is not None else self._load(model_path, base_dtype)
        if options.gradient_checkpointing:  # recompute activations in the backward pass: memory for time
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            self.model.config.use_cache = False
        if lora is not None:
            from unlearnbench.methods.adapters import apply_lora

            self.model = apply_lora(self.model, lora)
        self.ref_model = None
        if self.needs_reference and lora is None:  # with LoRA the reference is the base itself
            ref_dtype = ref_dtype or reference_dtype()
            self.ref_model = (self._load(model_path, ref_dtype) if model is None
                              else _frozen_copy(model).to(ref_dtype))
            self.ref_model.eval().requires_grad_(False)
        self.history: list[dict] = []
        self.tokens_seen = 0  # non-padding tokens through forward passes (cost, §7)
        self._retain_iter = None
        self._retain_cycle = 0

    @staticmethod
    def _load(path, dtype):
        from unlearnbench.models.specs import load_model

        if path is None:
            raise ValueError("an UnlearningMethod needs model_path or model")
        return load_model(str(path), dtype=dtype)

    # -- what methods override ---------------------------------------------
    def loss(self, batch: dict) -> dict[str, torch.Tensor]:
        """Return {"loss": total, <term>: value, ...}; terms are logged."""
        raise NotImplementedError

    def mask_gradients(self) -> None:
        """Hook between clipping and the optimiser step (WAGLE masks here)."""

    def param_groups(self) -> list[dict]:
        """AdamW groups: no weight decay on biases and norms (the usual convention)."""
        decay, no_decay = [], []
        for n, p in self.model.named_parameters():
            if p.requires_grad:
                (no_decay if p.ndim < 2 else decay).append(p)
        return [{"params": decay, "weight_decay": self.weight_decay},
                {"params": no_decay, "weight_decay": 0.0}]

    # -- shared helpers for losses ------------------------------------------
    def forward_logits(self, model, sub: dict) -> torch.Tensor:
        return model(input_ids=sub["input_ids"], attention_mask=sub["attention_mask"]).logits

    @torch.no_grad()
    def ref_logits(self, sub: dict) -> torch.Tensor:
        self.tokens_seen += int(sub["attention_mask"].sum())  # reference passes cost too
        if self.lora is not None:
            with self.model.disable_adapter():  # the frozen base: the model before unlearning
                return self.forward_logits(self.model, sub)
        return self.forward_logits(self.ref_model, sub)

    def retain_batch(self) -> dict:
        """Next retain batch; the iterator cycles and is seeded per rank and per cycle."""
        dm = self.trainer.datamodule
        while True:
            if self._retain_iter is None:
                seed = self.seed + 1_000_003 * self.global_rank + 7919 * self._retain_cycle
                self._retain_iter = iter(dm.retain_loader(seed))
                self._retain_cycle += 1
            try:
                batch = next(self._retain_iter)
                break
            except StopIteration:
                self._retain_iter = None
        # Which retain rows this rank drew, batch by batch: cheap, and the only way to
        # check from outside that ranks do not all replay the same retain samples.
        if not hasattr(self, "retain_indices"):
            self.retain_indices = []
        self.retain_indices.append(batch["index"].tolist())
        self.tokens_seen += _count_tokens(batch)
        return {k: (v.to(self.device) if torch.is_tensor(v) else v) for k, v in batch.items()}

    def summed_nll_with_ref(self, sub: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed NLL S_θ(y|x) and S_ref(y|x) per sequence (NPO, DPO use log π = -S); S_ref from
        the table scored before training when the reference is cached."""
        from unlearnbench.methods.losses import sequence_nll
        from unlearnbench.methods.reference import lookup

        s, _ = sequence_nll(self.forward_logits(self.model, sub), sub["labels"])
        if self._ref_table is not None:
            return s, lookup(self._ref_table, sub).to(s.dtype)
        s_ref, _ = sequence_nll(self.ref_logits(sub), sub["labels"])
        return s, s_ref

    def retain_nll(self) -> torch.Tensor:
        """ℓ(y_r|x_r) on the next retain batch: the usual retain term."""
        from unlearnbench.methods.losses import mean_nll

        r = self.retain_batch()
        return mean_nll(self.forward_logits(self.model, r), r["labels"])

    @staticmethod
    def sub(batch: dict, key: str | None = None) -> dict:
        """The padded sub-batch for ``key`` (None = the forget answer itself)."""
        if key is None:
            return {k: batch[k] for k in ("input_ids", "attention_mask", "labels", "index") if k in batch}
        return batch[key]

    # -- the shared loop -----------------------------------------------------
    def on_fit_start(self) -> None:
        # from_pretrained returns eval mode and Lightning keeps modes as it finds them.
        self.model.train()
        if self.ref_model is not None:
            self.ref_model.eval()
        if self.reference_mode == "cached" and (self.ref_model is not None
                                                or (self.lora is not None and self.needs_reference)):
            self.cache_reference()

    def cache_reference(self) -> None:
        """Score the reference's S_ref table once, then drop the reference model."""
        import gc

        from unlearnbench.methods.reference import reference_table

        from contextlib import nullcontext

        dm = self.trainer.datamodule
        model, ctx = ((self.model, self.model.disable_adapter()) if self.lora is not None
                      else (self.ref_model, nullcontext()))
        with ctx:
            self._ref_table, tokens = reference_table(model, dm, self.needs, dm.batch_size, self.device)
        self.tokens_seen += tokens  # reference passes cost too, once here
        self.ref_model = None  # a child module: assigning None unregisters and frees it
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def training_step(self, batch, batch_idx):
        terms = self.loss(batch)
        total = terms["loss"]
        if not torch.isfinite(total).all():
            shown = {k: float(v.detach()) for k, v in terms.items()}
            raise NonFiniteLossError(
                f"method {self.name!r}: non-finite loss at step {self.global_step} "
                f"(epoch {self.current_epoch}, batch {batch_idx}): {shown}. Training stopped "
                "and no model was saved; lower the learning rate or check the inputs."
            )
        row = {"step": self.global_step, **{k: float(v.detach()) for k, v in terms.items()}}
        self.history.append(row)
        for k, v in terms.items():
            self.log(f"train/{k}", v.detach(), prog_bar=(k == "loss"), sync_dist=False)
        self.tokens_seen += _count_tokens(batch)
        return total

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        if self.grad_clip and self.grad_clip > 0:
            from lightning.pytorch.strategies import FSDPStrategy

            if self._trainer is not None and isinstance(self.trainer.strategy, FSDPStrategy):
                # Lightning's FSDPPrecision refuses norm clipping: a per-shard
                # clip_grad_norm_ would be wrong, the root FSDP module's is right.
                self.trainer.strategy.model.clip_grad_norm_(self.grad_clip)
            else:
                # DDP: gradients are already all-reduced. FSDP2: torch's clip_grad_norm_
                # reduces the norm of the DTensor shards over the mesh.
                self.clip_gradients(optimizer, gradient_clip_val=self.grad_clip,
                                    gradient_clip_algorithm="norm")
        self.mask_gradients()

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.param_groups(), lr=self.lr)
        total = int(self.trainer.estimated_stepping_batches)
        if self.steps is None:
            steps_per_epoch = max(1, math.ceil(total / self.epochs))
        else:  # warm-up epochs count real epochs of the forget data, the budget aside
            dm, trainer = self.trainer.datamodule, self.trainer
            batches = math.ceil(math.ceil(len(dm.forget_set) / trainer.world_size) / dm.batch_size)
            steps_per_epoch = max(1, math.ceil(batches / trainer.accumulate_grad_batches))
        warmup = int(round(self.warmup_epochs * steps_per_epoch))
        # Hugging Face's schedule itself (warm-up from lr 0 at step 0, then linear decay to 0), so
        # runs compare with TOFU and open-unlearning, which train through the HF Trainer.
        sched = get_linear_schedule_with_warmup(opt, num_warmup_steps=warmup, num_training_steps=total)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def configure_model(self):
        """FSDP2: shard each decoder layer, then the root (ModelParallelStrategy)."""
        mesh = getattr(self, "device_mesh", None)
        if mesh is None:
            return
        if self.lora is not None:
            raise ValueError(f"method {self.name!r}: LoRA runs with strategy single or ddp (adapters are "
                             "small enough to replicate); use ddp, or full fine-tuning under fsdp")
        from torch.distributed.fsdp import FSDPModule, fully_shard

        for model in (self.model, self.ref_model):
            if model is None or isinstance(model, FSDPModule):  # a second fit: already sharded
                continue
            for layer in model.model.layers:
                fully_shard(layer, mesh=mesh["data_parallel"])
            fully_shard(model, mesh=mesh["data_parallel"])

    def full_state_dict(self) -> dict:
        """The model's full (unsharded) state dict, on CPU, on rank 0 (other ranks: {}).

        A collective under FSDP: every rank must call it.
        """
        from lightning.pytorch.strategies import FSDPStrategy
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
        if self._trainer is None or not isinstance(self.trainer.strategy, FSDPStrategy):
            # single, DDP, FSDP2 (self.model holds its own DTensor shards)
            return get_model_state_dict(self.model, options=opts)
        # FSDP1 wraps this LightningModule itself: the root owns the embedding shards.
        state = get_model_state_dict(self.trainer.strategy.model, options=opts)
        return {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}

    def save_unlearned(self, path) -> None:
        """``save_pretrained`` of the unlearned model (+ tokenizer) from rank 0.

        Every rank returns only once the files are written (a barrier when distributed).
        """
        from unlearnbench.models.specs import load_tokenizer

        if self.lora is not None:  # every rank holds the whole (small) model under single/ddp
            if self.global_rank == 0:
                from unlearnbench.methods.adapters import merged

                merged(self.model).save_pretrained(path, safe_serialization=True)
                load_tokenizer(str(self.model_path)).save_pretrained(path)
        else:
            state = self.full_state_dict()
            if self.global_rank == 0:
                self.model.save_pretrained(path, state_dict=state, safe_serialization=True)
                load_tokenizer(str(self.model_path)).save_pretrained(path)
        barrier()


def check_parity(cls, params: dict) -> None:
    """Refuse a ``parity`` value ``cls`` does not offer before any model is built."""
    if "parity" in (params or {}) and params["parity"] not in cls.parities:
        raise ParityError(parity_message(cls.name, params["parity"], cls.parities))


def parity_message(name: str, parity, parities: tuple[str, ...]) -> str:
    """One line for a ``parity`` value a method does not offer."""
    if parities == ("paper",):
        return (f"method {name!r} has no parity={parity!r}: its loss already equals its public code's on the "
                f"same batch (docs/methods.md); drop `parity`")
    return f"method {name!r}: unknown parity {parity!r}; choose one of {', '.join(parities)}"


def reference_dtype() -> torch.dtype:
    """A frozen reference model's dtype: bf16 on GPU (half the memory, bf16 compute anyway
    under bf16-mixed), fp32 on CPU where bf16 matmuls are slow and lossy."""
    return torch.bfloat16 if torch.cuda.is_available() else torch.float32


def _count_tokens(batch: dict) -> int:
    n = int(batch["attention_mask"].sum()) if "attention_mask" in batch else 0
    return n + sum(_count_tokens(v) for v in batch.values() if isinstance(v, dict))


def _frozen_copy(model):
    import copy

    return copy.deepcopy(model)
