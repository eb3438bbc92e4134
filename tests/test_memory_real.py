"""The memory plan at real size: Llama-2-7B, Llama-3.1-8B and Llama-2-13B built on the meta
device from their hub configs (no weights allocated), each strategy's bytes against a count
by hand."""

from __future__ import annotations

import pytest

from unlearnbench.models.real_configs import hf_config
from unlearnbench.registry import methods
from unlearnbench.runner.memory import DEFAULT_LORA, GIB, MemoryPlanError, estimate, plan, shape_from_config

# (vocab, hidden, MLP, layers, heads, kv heads), from each model's config.json; and the
# parameter count the model cards state (Llama-2 paper / Meta's model cards).
SIZES = {
    "llama2-7b": ((32000, 4096, 11008, 32, 32, 32), 6_738_415_616),
    "llama3.1-8b": ((128256, 4096, 14336, 32, 32, 8), 8_030_261_248),
    "llama2-13b": ((32000, 5120, 13824, 40, 40, 40), 13_015_864_320),
}
B, S = 4, 512  # micro-batch and sequence length of the plan


def _by_hand(v, h, i, n, heads, kv):
    """Llama parameters and LoRA's sum of (in + out) over the adapted linears, counted by hand."""
    kv_out = h // heads * kv  # grouped-query k and v projections
    attn = 2 * h * h + 2 * h * kv_out
    params = n * (attn + 3 * h * i + 2 * h) + 2 * v * h + h  # untied embeddings and head, final norm
    in_out = n * (2 * (h + h) + 2 * (h + kv_out) + 3 * (h + i))
    return params, in_out


@pytest.fixture(scope="module", params=list(SIZES))
def real(request):
    dims, card = SIZES[request.param]
    return request.param, shape_from_config(hf_config(request.param)), dims, card


def test_meta_shape_is_the_card_count(real):
    _name, shape, dims, card = real
    params, in_out = _by_hand(*dims)
    assert shape["params"] == params == card
    assert shape["linear_in_out"] == in_out
    assert (shape["vocab"], shape["hidden"], shape["layers"]) == (dims[0], dims[1], dims[3])


def test_bytes_per_strategy_by_hand(real):
    _name, shape, (v, h, _i, n, _heads, _kv), _card = real
    p, a = shape["params"], DEFAULT_LORA["r"] * shape["linear_in_out"]
    act = 34 * B * S * h * n + 8 * B * S * v
    single = estimate(shape, micro_batch=B, seq_len=S)
    assert (single.weights, single.optimizer, single.reference, single.activations) == (4 * p, 12 * p, 0, act)
    for world in (2, 8):
        fsdp = estimate(shape, world=world, sharded=True, micro_batch=B, seq_len=S)
        assert fsdp.weights == pytest.approx(4 * p / world) and fsdp.optimizer == pytest.approx(12 * p / world)
        resident = estimate(shape, world=world, sharded=True, resident_reference=True, micro_batch=B, seq_len=S)
        assert resident.reference == pytest.approx(2 * p / world)  # bf16 reference, sharded
        assert resident.total - fsdp.total == pytest.approx(2 * p / world)
    lora = estimate(shape, lora=DEFAULT_LORA, checkpointing=True, micro_batch=B, seq_len=S)
    assert (lora.weights, lora.optimizer, lora.reference) == (2 * p + 4 * a, 12 * a, 0)
    assert lora.activations == 2 * B * S * h * n + 8 * B * S * v


def test_plan_on_80gib_cards(real):
    """What a grid does with each model: cached NPO reference vs GA+KL's resident one, one GPU
    (LoRA fallback), FSDP over 2 and over 8 (full fine-tuning when 16 B/param / W fits)."""
    name, shape, dims, _card = real
    card, budget = 80 * GIB, 0.92 * 80 * GIB
    p = shape["params"]
    params = {"batch_size": 32, "micro_batch_size": B}
    npo, ga_kl, rmu = methods.get("npo"), methods.get("ga_kl"), methods.get("rmu")
    one = plan(npo, params, shape, device_bytes=card, world=1, sharded=False)
    assert one["lora_fallback"] and one["params"]["lora"] == DEFAULT_LORA  # 16 B/param > 80 GiB
    assert one["estimate_gib"]["weights"] == round((2 * p + 4 * 16 * shape["linear_in_out"]) / GIB, 2)
    # RMU trains three layers' MLP down projections (3·h·i) and keeps a resident frozen copy.
    h, i = dims[1], dims[2]
    rmu_total = 4 * p + 12 * 3 * h * i + 2 * p + 34 * B * S * h * dims[3] + 8 * B * S * dims[0]
    if rmu_total > budget:
        with pytest.raises(MemoryPlanError, match="cannot train with LoRA"):
            plan(rmu, params, shape, device_bytes=card, world=1, sharded=False)
    else:
        got = plan(rmu, params, shape, device_bytes=card, world=1, sharded=False)
        assert not got["lora_fallback"] and got["estimate_gib"]["total"] == round(rmu_total / GIB, 2)
    assert (rmu_total > budget) is (name == "llama2-13b")
    for world in (2, 8):
        cached = plan(npo, params, shape, device_bytes=card, world=world, sharded=True)
        resident = plan(ga_kl, params, shape, device_bytes=card, world=world, sharded=True)
        full = estimate(shape, world=world, sharded=True, micro_batch=B, seq_len=S)
        assert cached["lora_fallback"] is (full.total > budget)
        assert cached.get("full_estimate_gib", cached["estimate_gib"])["reference"] == 0
        with_ref = full.total + 2 * p / world
        assert resident["lora_fallback"] is (with_ref > budget)
        assert resident.get("full_estimate_gib", resident["estimate_gib"])["reference"] == round(2 * p / world / GIB, 2)
    # At 8 GPUs every one of the three trains all weights; at 2 only the 7-8B ones do (13B: 16 B x 13e9 / 2 = 97 GiB).
    assert not plan(npo, params, shape, device_bytes=card, world=8, sharded=True)["lora_fallback"]
    two = plan(npo, params, shape, device_bytes=card, world=2, sharded=True)["lora_fallback"]
    assert two is (name == "llama2-13b")


def test_a_cell_that_cannot_fit_on_its_gpus_falls_back_to_lora_replicated(tmp_path, monkeypatch):
    """``runner.cell.place``, the plan as a grid cell applies it (it runs only where CUDA is, so
    here CUDA is faked): NPO on Llama-2-7B over two 24 GiB cards cannot fully fine-tune even
    sharded, so it trains LoRA with checkpointing and, LoRA adapters being small, under DDP
    instead of FSDP; on two 80 GiB cards the same cell keeps its parameters and its strategy."""
    from types import SimpleNamespace

    import torch

    from unlearnbench.report.schema import Kind
    from unlearnbench.runner.cell import place
    from unlearnbench.runner.jobs import Job

    hf_config("llama2-7b").save_pretrained(tmp_path / "llama2-7b")
    bench = SimpleNamespace(checkpoint=lambda spec, role, split, seed=0: str(tmp_path / "llama2-7b"))
    spec = SimpleNamespace(is_tiny=False)
    job = Job(Kind.CELL, {"cell_id": "npo__tofu", "kind": "cell", "method": "npo", "split": "forget10",
                          "strategy": "fsdp", "devices": -1, "num_nodes": 1,
                          "params": {"batch_size": 8, "eval_every": {"steps": 5}}})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    for gib, lora in ((24, True), (80, False)):
        card = SimpleNamespace(total_memory=gib * GIB)
        monkeypatch.setattr(torch.cuda, "get_device_properties", lambda _i, card=card: card)
        params, placement = place(job, {"batch_size": 8}, tmp_path, bench, spec)
        assert placement["lora_fallback"] is lora, gib
        if lora:
            assert params == {"batch_size": 8, "lora": DEFAULT_LORA, "gradient_checkpointing": True}
            assert placement["strategy"] == "ddp" and placement["estimate_gib"]["total"] <= 0.92 * gib
        else:
            assert params == {"batch_size": 8} and "strategy" not in placement
