"""The precision rule (methods.md): on GPU, bf16-mixed training with fp32 trainable weights
and AdamW state; only a frozen reference may be bf16.

No GPU is needed to check it: the GPU path is the dtype the harness loads each model in plus
Lightning's ``bf16-mixed`` precision, and Lightning runs bf16-mixed (autocast) on CPU too.
"""

from __future__ import annotations

import os

import pytest
import torch


def _fraction_moved(before: dict, model) -> float:
    moved = total = 0
    for name, p in model.named_parameters():
        moved += int((p.detach().float() != before[name]).sum())
        total += p.numel()
    return moved / total


def _train(method, untrained, precision: str, steps: int = 3) -> None:
    import lightning as L

    from unlearnbench.benchmarks.tofu import TofuSynthBenchmark
    from unlearnbench.data.collate import Encoder
    from unlearnbench.models.specs import load_tokenizer

    enc = Encoder(load_tokenizer(untrained["model"]), untrained["spec"].template)
    dm = TofuSynthBenchmark().datamodule("forget10", enc, batch_size=16, seed=0, needs=method.needs)
    L.seed_everything(0, verbose=False)
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", devices=1, precision=precision, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(method, datamodule=dm)


def test_on_gpu_trainable_weights_are_fp32_and_only_the_reference_is_bf16(untrained, monkeypatch):
    from unlearnbench.runner.train import build_method

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # what a GPU run loads
    method = build_method("npo", untrained["model"], 0, {"lr": 1e-5})
    assert {p.dtype for p in method.model.parameters()} == {torch.float32}
    assert {p.dtype for p in method.ref_model.parameters()} == {torch.bfloat16}
    assert not any(p.requires_grad for p in method.ref_model.parameters())


def test_bf16_mixed_updates_survive_at_lr_1e_5(untrained, monkeypatch):
    """One of the spec's numbers, measured on the tiny model: at lr 1e-5, bf16-mixed with fp32
    weights moves (nearly) every weight, while AdamW on bf16 weights rounds most updates away
    (a randomly initialised tiny model: the claim is about number formats, not what it learnt)."""
    from unlearnbench.runner.train import build_method

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    mixed = build_method("ga", untrained["model"], 0, {"lr": 1e-5, "warmup_epochs": 0})
    before = {n: p.detach().float().clone() for n, p in mixed.model.named_parameters()}
    monkeypatch.undo()  # Lightning must see a CPU machine to run on it
    _train(mixed, untrained, "bf16-mixed")
    assert {p.dtype for p in mixed.model.parameters()} == {torch.float32}
    moved_mixed = _fraction_moved(before, mixed.model)

    pure = build_method("ga", untrained["model"], 0, {"lr": 1e-5, "warmup_epochs": 0, "dtype": torch.bfloat16})
    before = {n: p.detach().float().clone() for n, p in pure.model.named_parameters()}
    _train(pure, untrained, "bf16-true")
    moved_pure = _fraction_moved(before, pure.model)
    assert moved_mixed > 0.9, moved_mixed
    assert moved_pure < 0.5 * moved_mixed, (moved_pure, moved_mixed)


class _FirstStep:
    """Lightning callback recording what the harness's own training loop did on its first step:
    the trainable weights before and after, the AdamW state's dtypes, the gradients' dtypes and
    the dtype the model computed its logits in (bf16 when autocast is on)."""

    def __new__(cls):
        import lightning as L

        class Recorder(L.Callback):
            def on_train_start(self, trainer, module):
                self.before = {n: p.detach().clone() for n, p in module.model.named_parameters()
                               if p.requires_grad}
                self.logits = []
                module.model.lm_head.register_forward_hook(lambda m, i, o: self.logits.append(o.dtype))

            def on_before_optimizer_step(self, trainer, module, optimizer):
                self.grads = {n: p.grad.detach().clone() for n, p in module.model.named_parameters()
                              if p.requires_grad}

            def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
                if not hasattr(self, "after"):
                    self.after = {n: p.detach().clone() for n, p in module.model.named_parameters()
                                  if p.requires_grad}
                    self.state = [t.dtype for s in trainer.optimizers[0].state.values() for k, t in s.items()
                                  if k != "step"]

        return Recorder()


def test_bf16_mixed_through_the_harness_keeps_fp32_master_weights_and_adamw_state(untrained, tmp_path):
    """``unlearn`` (the training path every grid cell calls) under ``bf16-mixed`` on CPU: the
    logits are computed in bf16 (autocast is on), while the trainable weights, their gradients
    and AdamW's two moments stay float32, so the first step moves each weight by lr (AdamW's
    first update is lr * g / (|g| + eps) = lr * sign(g) with no decay and no warm-up). bf16
    weights could not hold that: near 0.02 their spacing is 2**-13 ~ 1.2e-4, twelve times lr."""
    from unlearnbench.benchmarks.base import get_benchmark
    from unlearnbench.runner.train import unlearn

    lr = 1e-5
    rec = _FirstStep()
    unlearn("ga", untrained["spec"], get_benchmark("tofu-synth"), split="forget10", out_dir=tmp_path, seed=0,
            start=untrained["model"],
            params={"lr": lr, "warmup_epochs": 0, "weight_decay": 0.0, "grad_clip": 0.0},
            precision="bf16-mixed", max_steps=1, callbacks=[rec])
    assert torch.bfloat16 in rec.logits, rec.logits  # autocast really ran in bf16 on this CPU
    assert {p.dtype for p in rec.after.values()} == {torch.float32}
    assert {g.dtype for g in rec.grads.values()} == {torch.float32}
    assert rec.state and set(rec.state) == {torch.float32}, rec.state
    _check_first_adamw_step(rec, lr)


def _check_first_adamw_step(rec, lr: float) -> None:
    """AdamW's first step (bias-corrected m = g, v = g**2, eps 1e-8, no decay) moves each weight
    by exactly lr * |g| / (|g| + eps): lr itself wherever |g| >> 1e-8. Allowed off: the fp32
    rounding of w + update (one ulp of w, 2**-23 * |w|: 1.2e-7 near the norms' 1.0) and 0.1 %.
    ``rec`` holds every weight before and after the step and its gradient."""
    delta = torch.cat([(rec.after[n] - rec.before[n]).abs().flatten() for n in rec.before])
    grad = torch.cat([rec.grads[n].abs().flatten() for n in rec.before])
    weight = torch.cat([rec.before[n].abs().flatten() for n in rec.before])
    want = lr * grad / (grad + 1e-8)
    off = (delta - want).abs() - 2.0 ** -23 * 2 * weight
    assert float(off.max()) <= 1e-3 * lr, float(off.max())
    live = grad > 1e-6  # (a large vocabulary's unused embedding rows have no gradient)
    assert int(live.sum()) > 1000, int(live.sum())
    assert abs(float(delta[live].median()) - lr) < 0.01 * lr, float(delta[live].median())


# The real architecture classes (shrunk, random) with their real npm tokenizers, one per family:
# model name -> tokenizer asset. Mistral shares Llama's class and Qwen2.5 Qwen3's tokenizer family.
REAL_FAMILIES = {"llama2-7b": "llama2", "llama3.1-8b": "llama3_1", "qwen2.5-1.5b": "qwen2_5",
                 "qwen3-1.7b": "qwen3", "gemma3-1b": "gemma3", "phi-1.5": "gpt2"}
# Three architecture classes by default (Llama, Qwen3, Phi; seconds each). The other three
# (Llama-3.1's rope scaling, Qwen2, Gemma 3's 262k vocabulary: a minute each on a shared 2-core
# machine) run with UNLEARNBENCH_BF16_ALL_FAMILIES=1.
_BF16_FAMILIES = (list(REAL_FAMILIES) if os.environ.get("UNLEARNBENCH_BF16_ALL_FAMILIES")
                  else ["llama2-7b", "qwen3-1.7b", "phi-1.5"])


@pytest.mark.parametrize("name", _BF16_FAMILIES)
def test_bf16_mixed_first_step_on_each_real_architecture(name, tmp_path):
    """The same check as above on each family's real architecture class and real tokenizer,
    as a local model directory a user would pass (``--model DIR``): TOFU's real class on the
    stand-in's files, one AdamW step of 4 rows at lr 1e-5 under ``bf16-mixed``."""
    import json

    from transformers import AutoModelForCausalLM

    from unlearnbench.benchmarks.base import get_benchmark
    from unlearnbench.benchmarks.tofu import TofuSynthBenchmark
    from unlearnbench.models import assets
    from unlearnbench.models.real_configs import shrunk
    from unlearnbench.models.specs import ModelSpec
    from unlearnbench.runner.train import unlearn

    try:
        assets.fetch(REAL_FAMILIES[name])
    except assets.AssetError as e:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"tokenizer asset {REAL_FAMILIES[name]!r} unavailable: {e}")
    model_dir, data = tmp_path / "model", TofuSynthBenchmark().path
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(shrunk(name)).save_pretrained(model_dir)
    assets.load(REAL_FAMILIES[name]).save_pretrained(model_dir)
    (model_dir / "unlearnbench.json").write_text(json.dumps(
        {"template": ModelSpec.from_name(name).template, "data": {"tofu": data}}))
    lr, rec = 1e-5, _FirstStep()
    unlearn("ga", ModelSpec.from_name(str(model_dir)), get_benchmark("tofu", data), split="forget10",
            out_dir=tmp_path / "out", seed=0, precision="bf16-mixed", max_steps=1, callbacks=[rec],
            params={"lr": lr, "warmup_epochs": 0, "weight_decay": 0.0, "grad_clip": 0.0, "batch_size": 4})
    assert torch.bfloat16 in rec.logits, rec.logits
    assert {p.dtype for p in rec.after.values()} == {torch.float32}
    assert rec.state and set(rec.state) == {torch.float32}, rec.state
    _check_first_adamw_step(rec, lr)
