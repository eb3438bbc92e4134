"""How much accelerator memory a cell needs, estimated before it loads anything, and the
one-GPU placement of 7–8B models.

Per device, for ``P`` parameters and ``W`` data-parallel ranks (FSDP shards what it can):

* full fine-tuning: fp32 weights (4 B) + fp32 gradients (4 B) + AdamW moments (8 B) = 16 B
  per trainable parameter (sharded over W under FSDP), plus frozen weights at 4 B;
* LoRA: the frozen base in bf16 (2 B/param) plus 16 B per adapter parameter;
* a resident frozen reference: 2 B/param in bf16 (none when cached, or under LoRA, where the
  reference is the base with adapters off);
* activations of one micro-batch ``b`` of ``s`` tokens: about ``34·b·s·h`` bytes per layer in
  bf16 (Korthikanti et al. 2022; ``2·b·s·h`` with gradient checkpointing), plus fp32 logits
  and their log-softmax, ``8·b·s·V``.

The default placement for a real model (a grid or cell that sets no ``lora``): full fine-tuning when the
estimate fits the GPU (FSDP2 over all visible GPUs in the shipped grids); on a single GPU
where it does not (a 7B model needs ~100 GiB for weights and AdamW alone), LoRA (r 16 on
every linear layer) with gradient checkpointing, recorded in the result and shown as
``[lora]`` in the leaderboard; a method that cannot train with LoRA (RMU, WAGLE) is then
refused with the numbers and the options.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

GIB = 2**30
DEFAULT_LORA = {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear"}
HEADROOM = 0.92  # of the card: the CUDA context, fragmentation and the evaluator's batches


@dataclass
class MemoryEstimate:
    """Bytes per device, by part (converted to GiB by ``as_gib``)."""

    weights: float
    optimizer: float
    reference: float
    activations: float

    @property
    def total(self) -> float:
        return self.weights + self.optimizer + self.reference + self.activations

    def as_gib(self) -> dict:
        return {k: round(v / GIB, 2) for k, v in {**asdict(self), "total": self.total}.items()}


def model_shape(path: str) -> dict:
    """Parameters, hidden size, layers and vocabulary of a checkpoint, from its config alone
    (the model is built on the meta device: no weights are read)."""
    from transformers import AutoConfig

    return shape_from_config(AutoConfig.from_pretrained(path))


def shape_from_config(config) -> dict:
    """``model_shape`` of a ``transformers`` config (e.g. ``models.real_configs.hf_config``)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    n_params = sum(p.numel() for p in model.parameters())
    head = model.get_output_embeddings()
    # LoRA adds r·(in + out) parameters to every linear layer it adapts (all but the head).
    in_out = sum(m.in_features + m.out_features for m in model.modules()
                 if isinstance(m, torch.nn.Linear) and m is not head)
    return {"params": n_params, "linear_in_out": in_out, "hidden": config.hidden_size,
            "layers": config.num_hidden_layers, "vocab": config.vocab_size,
            "intermediate": getattr(config, "intermediate_size", None) or getattr(config, "ffn_dim", None)}


def estimate(shape: dict, *, world: int = 1, sharded: bool = False, lora: dict | None = None,
             resident_reference: bool = False, trainable_fraction: float = 1.0, micro_batch: int = 8,
             seq_len: int = 512, checkpointing: bool = False) -> MemoryEstimate:
    """Peak memory per device of one training step (see the module docstring)."""
    p = shape["params"]
    shard = world if sharded else 1
    if lora:
        adapters = int(lora.get("r", DEFAULT_LORA["r"])) * shape["linear_in_out"]
        weights, optimizer = 2 * p + 4 * adapters, 12 * adapters
    else:
        trainable = p * trainable_fraction
        weights = (4 * trainable) / shard + 4 * (p - trainable)
        optimizer = 12 * trainable / shard  # fp32 gradients + two AdamW moments
    reference = 2 * p / shard if resident_reference else 0.0
    per_layer = (2 if checkpointing else 34) * micro_batch * seq_len * shape["hidden"]
    activations = per_layer * shape["layers"] + 8 * micro_batch * seq_len * shape["vocab"]
    return MemoryEstimate(weights, optimizer, reference, activations)


class MemoryPlanError(ValueError):
    """A cell cannot fit the accelerator; the message gives the estimate and the options."""


def plan(method_cls, params: dict, shape: dict, *, device_bytes: float, world: int, sharded: bool,
         seq_len: int = 512) -> dict:
    """The placement of a cell on ``world`` devices of ``device_bytes`` each: its parameters
    (LoRA and checkpointing added when full fine-tuning cannot fit) and the estimate."""
    micro = int(params.get("micro_batch_size") or max(1, int(params.get("batch_size", 32)) // world))
    resident = method_cls.needs_reference and not (method_cls.cacheable_reference
                                                   and params.get("reference", "cached") == "cached")
    common = dict(world=world, sharded=sharded, micro_batch=micro, seq_len=seq_len)
    full = estimate(shape, lora=params.get("lora"), resident_reference=resident and not params.get("lora"),
                    checkpointing=bool(params.get("gradient_checkpointing")),
                    trainable_fraction=method_cls.trainable_share(shape, params), **common)
    budget = HEADROOM * device_bytes
    if full.total <= budget:
        return {"params": params, "estimate_gib": full.as_gib(), "lora_fallback": False}
    if params.get("lora") is None and method_cls.supports_lora:
        lora = estimate(shape, lora=DEFAULT_LORA, checkpointing=True, **common)
        if lora.total <= budget:
            return {"params": {**params, "lora": dict(DEFAULT_LORA), "gradient_checkpointing": True},
                    "estimate_gib": lora.as_gib(), "full_estimate_gib": full.as_gib(), "lora_fallback": True}
    raise MemoryPlanError(
        f"method {method_cls.name!r} needs about {full.total / GIB:.0f} GiB per device "
        f"({', '.join(f'{k} {v}' for k, v in full.as_gib().items() if k != 'total')} GiB) but a device has "
        f"{device_bytes / GIB:.0f} GiB; options: more GPUs with strategy fsdp, micro_batch_size "
        f"(now {micro}), gradient_checkpointing: true"
        + (", lora: {r: 16}" if method_cls.supports_lora else f" ({method_cls.name} cannot train with LoRA)"))
