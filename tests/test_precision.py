"""The precision rule (methods.md): on GPU, bf16-mixed training with fp32 trainable weights
and AdamW state; only a frozen reference may be bf16.

No GPU is needed to check it: the GPU path is the dtype the harness loads each model in plus
Lightning's ``bf16-mixed`` precision, and Lightning runs bf16-mixed (autocast) on CPU too.
"""

from __future__ import annotations

import torch


def _fraction_moved(before: dict, model) -> float:
    moved = total = 0
    for name, p in model.named_parameters():
        moved += int((p.detach().float() != before[name]).sum())
        total += p.numel()
    return moved / total


def _train(method, tiny_family, precision: str, steps: int = 3) -> None:
    import lightning as L

    from unlearnbench.benchmarks.tofu import TofuSynthBenchmark
    from unlearnbench.data.collate import Encoder
    from unlearnbench.models.loading import load_tokenizer

    enc = Encoder(load_tokenizer(tiny_family["target"]), tiny_family["spec"].template)
    dm = TofuSynthBenchmark().datamodule("forget10", enc, batch_size=16, seed=0, needs=method.needs)
    L.seed_everything(0, verbose=False)
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", devices=1, precision=precision, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(method, datamodule=dm)


def test_on_gpu_trainable_weights_are_fp32_and_only_the_reference_is_bf16(tiny_family, monkeypatch):
    from unlearnbench.runner.train import build_method

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # what a GPU run loads
    method = build_method("npo", tiny_family["target"], 0, {"lr": 1e-5})
    assert {p.dtype for p in method.model.parameters()} == {torch.float32}
    assert {p.dtype for p in method.ref_model.parameters()} == {torch.bfloat16}
    assert not any(p.requires_grad for p in method.ref_model.parameters())


def test_bf16_mixed_updates_survive_at_lr_1e_5(tiny_family, monkeypatch):
    """One of the spec's numbers, measured on the tiny model: at lr 1e-5, bf16-mixed with fp32
    weights moves (nearly) every weight, while AdamW on bf16 weights rounds most updates away."""
    from unlearnbench.runner.train import build_method

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    mixed = build_method("ga", tiny_family["target"], 0, {"lr": 1e-5, "warmup_epochs": 0})
    before = {n: p.detach().float().clone() for n, p in mixed.model.named_parameters()}
    monkeypatch.undo()  # Lightning must see a CPU machine to run on it
    _train(mixed, tiny_family, "bf16-mixed")
    assert {p.dtype for p in mixed.model.parameters()} == {torch.float32}
    moved_mixed = _fraction_moved(before, mixed.model)

    pure = build_method("ga", tiny_family["target"], 0, {"lr": 1e-5, "warmup_epochs": 0, "dtype": torch.bfloat16})
    before = {n: p.detach().float().clone() for n, p in pure.model.named_parameters()}
    _train(pure, tiny_family, "bf16-true")
    moved_pure = _fraction_moved(before, pure.model)
    assert moved_mixed > 0.9, moved_mixed
    assert moved_pure < 0.5 * moved_mixed, (moved_pure, moved_mixed)
