"""LoRA (``peft``) for any method that trains weights, and what it changes in the shared loop.

With ``lora: {r: 16, alpha: 32, dropout: 0.0, target_modules: all-linear}`` the pre-trained
weights are frozen (bf16 on GPU: they never receive an update, so the precision rule is
kept: the trainable adapters and their AdamW state are fp32) and only the low-rank
adapters train. The frozen reference a method needs is then the same network with its
adapters switched off (``disable_adapter``): no second copy of the model in memory. The
saved model is merged (``merge_and_unload``) into a plain checkpoint the evaluator loads
like any other.
"""

from __future__ import annotations

LORA_KEYS = {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear"}


def lora_config(options: dict):
    """A ``peft.LoraConfig`` from the method's ``lora`` option, checked."""
    try:
        from peft import LoraConfig
    except ImportError as exc:  # peft is a dependency; a bare environment may still lack it
        raise ValueError("lora needs the peft package: pip install peft") from exc
    if not isinstance(options, dict):
        raise ValueError(f"lora must be a mapping of {sorted(LORA_KEYS)}, got {options!r}")
    unknown = sorted(set(options) - set(LORA_KEYS))
    if unknown:
        raise ValueError(f"lora: unknown option(s) {unknown}; known: {sorted(LORA_KEYS)}")
    o = {**LORA_KEYS, **options}
    if not (isinstance(o["r"], int) and o["r"] >= 1):
        raise ValueError(f"lora: r (the rank) must be an integer >= 1, got {o['r']!r}")
    return LoraConfig(r=o["r"], lora_alpha=o["alpha"], lora_dropout=o["dropout"],
                      target_modules=o["target_modules"], task_type="CAUSAL_LM")


def apply_lora(model, options: dict):
    """Wrap ``model`` with trainable LoRA adapters (fp32) around its frozen weights."""
    from peft import get_peft_model

    return get_peft_model(model, lora_config(options), autocast_adapter_dtype=True)


def merged(model):
    """The model with its adapters merged into the weights (a plain ``PreTrainedModel``)."""
    return model.merge_and_unload()
