"""The memory plan of a real-model cell: estimates on hand-countable shapes, the one-GPU default."""

from __future__ import annotations

import pytest

from unlearnbench.registry import methods
from unlearnbench.runner.memory import GIB, MemoryPlanError, estimate, model_shape, plan


@pytest.fixture(scope="module")
def llama7b_shape(tmp_path_factory):
    """Llama-2-7b's architecture from its config alone (built on the meta device, no weights)."""
    from transformers import LlamaConfig

    path = tmp_path_factory.mktemp("llama7b")
    LlamaConfig(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                num_attention_heads=32, num_key_value_heads=32).save_pretrained(path)
    return model_shape(str(path))


def test_shape_counts_match_the_architecture(llama7b_shape):
    h, i, v, n = 4096, 11008, 32000, 32
    per_layer = 4 * h * h + 3 * h * i + 2 * h  # attention, MLP, two norms
    assert llama7b_shape["params"] == n * per_layer + 2 * v * h + h  # + embeddings, head, final norm
    assert llama7b_shape["linear_in_out"] == n * (4 * 2 * h + 3 * (h + i))


def test_estimate_by_hand(llama7b_shape):
    p = llama7b_shape["params"]
    full = estimate(llama7b_shape, micro_batch=1, seq_len=8)
    assert full.weights == 4 * p and full.optimizer == 12 * p and full.reference == 0
    assert full.activations == 34 * 1 * 8 * 4096 * 32 + 8 * 1 * 8 * 32000
    sharded = estimate(llama7b_shape, world=4, sharded=True, resident_reference=True, micro_batch=1, seq_len=8)
    assert sharded.weights == pytest.approx(p) and sharded.optimizer == pytest.approx(3 * p)
    assert sharded.reference == pytest.approx(p / 2)  # bf16, sharded over 4
    lora = estimate(llama7b_shape, lora={"r": 16}, micro_batch=1, seq_len=8, checkpointing=True)
    adapters = 16 * llama7b_shape["linear_in_out"]
    assert lora.weights == 2 * p + 4 * adapters and lora.optimizer == 12 * adapters


def test_one_80gb_gpu_falls_back_to_lora_and_refuses_what_cannot_fit(llama7b_shape):
    one_gpu = dict(device_bytes=80 * GIB, world=1, sharded=False)
    npo = plan(methods.get("npo"), {"batch_size": 32, "micro_batch_size": 4}, llama7b_shape, **one_gpu)
    assert npo["lora_fallback"] and npo["params"]["lora"]["r"] == 16 and npo["params"]["gradient_checkpointing"]
    assert npo["full_estimate_gib"]["total"] > 100 > 80 > npo["estimate_gib"]["total"]
    # Eight GPUs under FSDP: full fine-tuning fits, nothing changes.
    fsdp = plan(methods.get("npo"), {"batch_size": 32}, llama7b_shape, device_bytes=80 * GIB, world=8, sharded=True)
    assert not fsdp["lora_fallback"] and "lora" not in fsdp["params"]
    # RMU trains three down projections: full training fits one GPU (frozen weights + bf16 reference).
    rmu = plan(methods.get("rmu"), {"batch_size": 4}, llama7b_shape, **one_gpu)
    assert not rmu["lora_fallback"] and rmu["estimate_gib"]["optimizer"] < 2
    # WAGLE masks full weights (no LoRA) and keeps AdamW state for all of them: refused, with
    # the numbers and the options.
    with pytest.raises(MemoryPlanError, match=r"'wagle' needs about \d+ GiB .* more GPUs with strategy fsdp"):
        plan(methods.get("wagle"), {"batch_size": 32, "inner": "npo"}, llama7b_shape, **one_gpu)
