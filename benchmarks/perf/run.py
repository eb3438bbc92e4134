"""Performance benchmark of the harness: prints a table (no pass/fail; tests never time anything).

    .venv/bin/python benchmarks/perf/run.py                 # CPU: the tiny model
    .venv/bin/python benchmarks/perf/run.py --model llama-1b  # GPU: a random 1B Llama from a config

In one run, on the same model and data (the TOFU stand-in, forget10):

* evaluation: the harness's evaluator against a per-metric evaluator (``per_metric.py``: one
  pass per metric, as a per-metric framework does) — items/s and the ratio;
* training: tokens/s per method (and, on GPU, model FLOPs utilisation ≈ 6·N·tokens / time /
  peak bf16 FLOP/s, an upper bound since reference-only forward passes count as training);
* memory: the peak memory of NPO with the cached reference against a resident one (each in
  its own process), as a ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}  # dense bf16 FLOP/s
SIZES = {  # random-weight Llamas built from a config (no hub access needed)
    "llama-1b": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
                     num_key_value_heads=4, vocab_size=32000),
    "llama-mid": dict(hidden_size=512, intermediate_size=1376, num_hidden_layers=8, num_attention_heads=8,
                      num_key_value_heads=8, vocab_size=1024),
}


def tiny_target() -> tuple[str, object]:
    from unlearnbench.benchmarks.tofu import TofuSynthBenchmark
    from unlearnbench.models.specs import ModelSpec

    spec = ModelSpec.from_name("tiny")
    return TofuSynthBenchmark().checkpoint(spec, "target", "forget10"), spec


def random_llama(size: str, tokenizer_dir: str) -> str:
    """A randomly initialised Llama of ``size`` saved with the tiny tokenizer (ids fit any vocab)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    out = Path(tempfile.mkdtemp(prefix=f"perf-{size}-"))
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    cfg = LlamaConfig(**SIZES[size], max_position_embeddings=512, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


def bench_eval(path: str, spec, device: str, batch_size: int, new_tokens: int) -> dict:
    from per_metric import evaluate_per_metric

    from unlearnbench.benchmarks.tofu import TofuSynthBenchmark
    from unlearnbench.data.collate import Encoder
    from unlearnbench.eval.tofu import evaluate_tofu
    from unlearnbench.models.loading import load_model, load_tokenizer

    bench = TofuSynthBenchmark()
    model = load_model(path, spec, device=device)
    enc = Encoder(load_tokenizer(path, spec), spec.template)
    # Warm-up (first-call allocations and kernel selection) so neither evaluator pays it.
    evaluate_tofu(model, enc, bench, "forget10", batch_size=batch_size, max_new_tokens=new_tokens, max_items=batch_size)
    t0 = time.perf_counter()
    summary, records = evaluate_tofu(model, enc, bench, "forget10", batch_size=batch_size, max_new_tokens=new_tokens)
    harness = time.perf_counter() - t0
    t0 = time.perf_counter()
    base = evaluate_per_metric(model, enc, bench, "forget10", batch_size=batch_size, max_new_tokens=new_tokens)
    baseline = time.perf_counter() - t0
    # The same numbers, whichever evaluator computed them (generation is batched differently, so
    # ROUGE may differ on a near-tie; every teacher-forced value must agree).
    for task in ("forget", "retain", "real_authors", "world_facts"):
        for key in ("probability", "truth_ratio", "exact_memorisation", "extraction_strength"):
            a, b = summary[task][key], base[task][key]
            assert abs(a - b) <= 1e-4 * max(1.0, abs(a)), (task, key, a, b)
    for attack, auc in base["mia"].items():
        assert abs(summary["mia"][attack] - auc) <= 1e-6, (attack, summary["mia"][attack], auc)
    n = len(records)
    return {"items": n, "harness_s": harness, "per_metric_s": baseline, "harness_items_per_s": n / harness,
            "per_metric_items_per_s": base["n_items"] / baseline, "ratio": baseline / harness}


def bench_train(path: str, spec, methods: list[str], steps: int, n_params: int, device_name: str) -> list[dict]:
    from unlearnbench.methods.train import unlearn

    out = []
    peak = next((v for k, v in PEAK_BF16.items() if k in device_name), None)
    for name in methods:
        with tempfile.TemporaryDirectory() as tmp:
            # As many epochs as steps, so max_steps (not one epoch of 5 batches) ends the run.
            params = {"lr": 1e-4, "batch_size": 16, "epochs": steps, "max_steps": steps, "warmup_epochs": 0}
            if name == "wagle":
                params["inner"] = "npo"
            info = unlearn(name, spec if path is None else _spec_for(path, spec), split="forget10",
                           out_dir=tmp, seed=0, params=params)
        tokens, wall = info["cost"]["tokens"], info["cost"]["wall_time_s"]
        row = {"method": name, "steps": info["steps"], "tokens": tokens, "wall_s": wall, "tokens_per_s": tokens / wall}
        if peak:
            row["mfu"] = 6 * n_params * tokens / wall / peak
        out.append(row)
    return out


def _spec_for(path: str, spec):
    from dataclasses import replace

    return replace(spec, name=path, description=f"local model at {path}", tiny=None, hub_id=path)


def memory_child(path: str, mode: str, device: str) -> None:
    """One NPO run in this process; prints its peak memory above the process's baseline."""
    import torch

    from unlearnbench.models.specs import ModelSpec
    from unlearnbench.methods.train import unlearn

    spec = ModelSpec.from_name(path)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as tmp:
        # The target is the model directory itself (a local model is its own target).
        unlearn("npo", spec, split="forget10", out_dir=tmp, seed=0,
                params={"lr": 1e-4, "batch_size": 8, "epochs": 1, "max_steps": 3, "reference": mode})
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base)
    print(json.dumps({"mode": mode, "peak_mib": peak}))


def bench_memory(path: str, device: str) -> dict:
    out = {}
    for mode in ("resident", "cached"):
        proc = subprocess.run([sys.executable, __file__, "--memory-child", mode, "--model-dir", path,
                               "--device", device], capture_output=True, text=True, env=os.environ.copy())
        if proc.returncode:
            raise RuntimeError(proc.stderr[-2000:])
        out[mode] = json.loads(proc.stdout.strip().splitlines()[-1])["peak_mib"]
    out["ratio_cached_over_resident"] = out["cached"] / out["resident"]
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="tiny", choices=["tiny", *SIZES])
    p.add_argument("--device", default=None)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--new-tokens", type=int, default=200)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--methods", default="ga,grad_diff,ga_kl,idk,dpo,npo,npo_rt,simnpo,rmu,llmu,flat,wagle")
    p.add_argument("--memory-model", default=None, help="model for the memory section (default: llama-mid on "
                   "CPU, where the tiny model is too small to see its reference)")
    p.add_argument("--out", default=None, help="write the figures as JSON here")
    p.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--model-dir", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.memory_child:
        memory_child(args.model_dir, args.memory_child, device)
        return 0
    target, spec = tiny_target()
    path, n_params, train_spec = (target, None, spec) if args.model == "tiny" else (random_llama(args.model, target), None, None)
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        n_params = sum(q.numel() for q in AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path)).parameters())
    device_name = torch.cuda.get_device_name(0) if device == "cuda" else f"cpu x{torch.get_num_threads()} threads"
    print(f"device: {device_name}; model: {args.model} ({n_params / 1e6:.1f}M parameters)", flush=True)
    eval_spec = spec if args.model == "tiny" else _spec_for(path, spec)
    ev = bench_eval(path, eval_spec, device, args.batch_size, args.new_tokens)
    print(f"\nevaluation (TOFU stand-in forget10, {ev['items']} items incl. holdout, batch {args.batch_size}, "
          f"{args.new_tokens} new tokens)\n| evaluator | seconds | items/s |\n|:---|---:|---:|\n"
          f"| harness | {ev['harness_s']:.1f} | {ev['harness_items_per_s']:.1f} |\n"
          f"| per-metric | {ev['per_metric_s']:.1f} | {ev['per_metric_items_per_s']:.1f} |\n"
          f"ratio (per-metric time / harness time): {ev['ratio']:.2f}x", flush=True)
    tr = bench_train(None if args.model == "tiny" else path, train_spec or spec, args.methods.split(","),
                     args.steps, n_params, device_name)
    print("\ntraining (" + f"{args.steps} steps, batch 16)\n| method | tokens | seconds | tokens/s |"
          + (" MFU |" if "mfu" in tr[0] else "") + "\n|:---|---:|---:|---:|" + ("---:|" if "mfu" in tr[0] else ""))
    for r in tr:
        print(f"| {r['method']} | {r['tokens']} | {r['wall_s']:.2f} | {r['tokens_per_s']:.0f} |"
              + (f" {100 * r['mfu']:.1f}% |" if "mfu" in r else ""))
    mem_model = args.memory_model or ("llama-mid" if device == "cpu" else args.model)
    mem_path = path if mem_model == args.model else (target if mem_model == "tiny" else random_llama(mem_model, target))
    mem = bench_memory(mem_path, device)
    print(f"\nmemory: NPO peak {'RSS above the process baseline' if device == 'cpu' else 'CUDA memory'} "
          f"({mem_model})\n| reference | peak MiB |\n|:---|---:|\n| resident | {mem['resident']:.0f} |\n"
          f"| cached | {mem['cached']:.0f} |\nratio cached / resident: {mem['ratio_cached_over_resident']:.2f}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"device": device_name, "model": args.model, "n_params": n_params,
                                              "evaluation": ev, "training": tr, "memory": mem}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
