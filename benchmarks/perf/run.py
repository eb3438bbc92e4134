"""Performance benchmark of the harness: prints a table (no pass/fail; tests never time anything).

    .venv/bin/python benchmarks/perf/run.py                 # CPU: the tiny model
    .venv/bin/python benchmarks/perf/run.py --model llama-1b  # GPU: a random 1B Llama from a config
    .venv/bin/python benchmarks/perf/run.py --model llama-mid --sections eval   # evaluation only
    .venv/bin/python benchmarks/perf/run.py --model llama-mid --sections eval --benchmarks tofu \
        --finetune-epochs 3    # the random Llamas fine-tuned first, so they answer and stop

In one run, on the same model and data (the TOFU stand-in, forget10):

* evaluation, per benchmark stand-in (TOFU with GradNorm and the retain reference, MUSE,
  WMDP/MMLU): the harness's evaluator against a per-metric evaluator (``per_metric.py``,
  ``per_metric_more.py``: one pass per metric, as a per-metric framework does) — items/s and
  the ratio;
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
import statistics
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


def random_llama(size: str, tokenizer_dir: str, seed: int = 0) -> str:
    """A randomly initialised Llama of ``size`` saved with a tiny model's tokenizer (its ids fit
    any vocab) and that model's context length."""
    import torch
    from transformers import AutoConfig, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    out = Path(tempfile.mkdtemp(prefix=f"perf-{size}-"))
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    positions = max(512, AutoConfig.from_pretrained(tokenizer_dir).max_position_embeddings)
    cfg = LlamaConfig(**SIZES[size], max_position_embeddings=positions, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(seed)
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


def finetune_in_place(path: str, bench, spec, role: str, split: str, epochs: int, seed: int) -> None:
    """Fine-tune the model saved at ``path`` for ``epochs`` on what ``bench``'s tiny-family recipe
    gives ``role`` (TOFU: the ``full`` answers for the target, ``retain90`` for the retain model),
    with the tiny family's fine-tuning settings, and save it back. A random model never emits its
    end token, so it generates every answer to the limit; a fine-tuned one answers and stops, as
    the targets a real evaluation sees do."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from unlearnbench.models.finetune import fit_causal_lm

    model, tok = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    qa, texts = bench.recipe().finetune(role, split)
    fit_causal_lm(model, tok, qa=qa, texts=texts, epochs=epochs, lr=spec.tiny.finetune_lr, tiny=spec.tiny,
                  seed=seed, template=spec.template, desc=f"{role} ({Path(path).name})")
    model.save_pretrained(path)


def _models(bench, size: str, spec, roles=("target",), finetune_epochs: int = 0) -> tuple[list[str], object]:
    """Model directories for ``roles`` on ``bench``'s default split: its tiny models, or random
    Llamas of ``size`` (one seed per role) with the tiny model's tokenizer, fine-tuned for
    ``finetune_epochs`` on the role's data when that is above 0; and their spec."""
    split = bench.default_split
    if size == "tiny":
        return [bench.checkpoint(spec, role, split) for role in roles], spec
    target = bench.checkpoint(spec, "target", split)  # for its tokenizer and context length
    paths = [random_llama(size, target, seed) for seed in range(len(roles))]
    for seed, (role, path) in enumerate(zip(roles, paths)):
        if finetune_epochs:
            finetune_in_place(path, bench, spec, role, split, finetune_epochs, seed)
    return paths, _spec_for(paths[0], spec)


def _timed(fn):
    """(result, wall seconds, CPU seconds of this process). With one torch thread the CPU time
    is the work done, whatever else loads the machine; the wall time includes waiting."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def _close(a, b, what, rel=1e-4):
    assert (a is None and b is None) or abs(a - b) <= rel * max(1.0, abs(a)), (what, a, b)


def bench_eval_tofu(size: str, spec, device: str, batch_size: int, new_tokens: int, finetune_epochs: int = 0,
                    repeats: int = 1) -> dict:
    """The TOFU stand-in (forget10) with its retain model as the reference: the harness's
    evaluator (GradNorm on) against ``per_metric.evaluate_per_metric``, each timed ``repeats``
    times, interleaved (harness, baseline, harness, ...); the medians are reported and the
    per-repeat ratios beside them (on a shared machine one run of either can be 10% off)."""
    from per_metric import evaluate_per_metric

    from unlearnbench.benchmarks.tofu import TofuSynthBenchmark
    from unlearnbench.data.collate import Encoder
    from unlearnbench.eval.tofu import evaluate_tofu
    from unlearnbench.models.specs import load_model, load_tokenizer

    bench, split = TofuSynthBenchmark(), "forget10"
    (path, retain_path), spec = _models(bench, size, spec, ("target", "retain"), finetune_epochs)
    model, retain = (load_model(p, spec, device=device) for p in (path, retain_path))
    enc = Encoder(load_tokenizer(path, spec), spec.template)
    opts = dict(batch_size=batch_size, max_new_tokens=new_tokens, gradnorm=True)
    # The retain model's evaluation, which the harness computes once per split and caches
    # (eval.references): outside the timing, and given to both evaluators. Neither uses the
    # retain model's GradNorm scores, so they are not computed here.
    reference = evaluate_tofu(retain, enc, bench, split, **{**opts, "gradnorm": False})
    ref_tr = [r["truth_ratio"] for r in reference[1] if r["task"] == "forget"]
    ref_auc = reference[0]["mia"]["min_k"]
    # Warm-up (first-call allocations and kernel selection) so neither evaluator pays it.
    evaluate_tofu(model, enc, bench, split, max_items=batch_size, **opts)
    runs = []
    for _ in range(repeats):
        (summary, records), harness, harness_cpu = _timed(
            lambda: bench.evaluate(model, enc, split, reference=reference, **opts))
        base, baseline, baseline_cpu = _timed(lambda: evaluate_per_metric(
            model, enc, bench, split, batch_size=batch_size, max_new_tokens=new_tokens, retain_model=retain,
            retain_truth_ratios=ref_tr, retain_mia_auc=ref_auc))
        runs.append((harness, harness_cpu, baseline, baseline_cpu))
    harness, harness_cpu, baseline, baseline_cpu = (statistics.median(r[k] for r in runs) for k in range(4))
    # The same numbers, whichever evaluator computed them (generation is batched differently, so
    # ROUGE may differ on a near-tie; every teacher-forced value must agree).
    for task in ("forget", "retain", "real_authors", "world_facts"):
        for key in ("probability", "truth_ratio", "exact_memorisation", "extraction_strength"):
            _close(summary[task][key], base[task][key], (task, key))
    _close(summary["forget_quality"], base["forget_quality"], "forget_quality")
    _close(summary["privleak"], base["privleak"], "privleak")
    assert set(base["mia"]) == set(summary["mia"]), (sorted(base["mia"]), sorted(summary["mia"]))
    for attack, auc in base["mia"].items():
        _close(summary["mia"][attack], auc, attack, rel=1e-6)
    n = len(records)
    return {"benchmark": "tofu-synth forget10", "items": n, "harness_s": harness, "per_metric_s": baseline,
            "harness_items_per_s": n / harness, "per_metric_items_per_s": base["n_items"] / baseline,
            "ratio": baseline / harness,
            "harness_cpu_s": harness_cpu, "per_metric_cpu_s": baseline_cpu, "cpu_ratio": baseline_cpu / harness_cpu,
            "repeats_cpu_ratio": [b / h for _, h, _, b in runs]}


def bench_eval_muse(size: str, spec, device: str, batch_size: int) -> dict:
    """The MUSE stand-in: the harness's evaluator against ``per_metric_more``'s MUSE baseline
    (the retrain model's AUC given to both as 0.5: a cached figure either way)."""
    from per_metric_more import evaluate_muse_per_metric

    from unlearnbench.benchmarks.muse import MuseSynthBenchmark
    from unlearnbench.data.collate import Encoder
    from unlearnbench.models.specs import load_model, load_tokenizer

    bench = MuseSynthBenchmark()
    (path,), spec = _models(bench, size, spec)
    model = load_model(path, spec, device=device)
    tok = load_tokenizer(path, spec)
    opts = {k: v for k, v in bench.eval_options.items() if k not in ("parity",)}
    opts["batch_size"] = batch_size
    reference = ({"mia": {"min_k": 0.5}}, [])
    bench.evaluate(model, Encoder(tok, spec.template), bench.default_split, reference=reference,
                   **{**opts, "max_items": batch_size})  # warm-up
    (summary, records), harness, harness_cpu = _timed(lambda: bench.evaluate(model, Encoder(tok, spec.template),
                                                                 bench.default_split, reference=reference, **opts))
    base, baseline, baseline_cpu = _timed(lambda: evaluate_muse_per_metric(
        model, tok, bench.path, batch_size=batch_size, verbmem_tokens=opts["verbmem_tokens"],
        knowmem_tokens=opts["knowmem_tokens"], mia_max_tokens=opts["mia_max_tokens"], retrain_auc=0.5))
    for key in ("verbmem_f", "knowmem_f", "knowmem_r", "privleak"):
        _close(summary[key], base[key], key)
    for attack, auc in base["mia"].items():
        _close(summary["mia"][attack], auc, attack, rel=1e-6)
    n = len(records)
    return {"benchmark": "muse-synth", "items": n, "harness_s": harness, "per_metric_s": baseline,
            "harness_items_per_s": n / harness, "per_metric_items_per_s": n / baseline, "ratio": baseline / harness,
            "harness_cpu_s": harness_cpu, "per_metric_cpu_s": baseline_cpu, "cpu_ratio": baseline_cpu / harness_cpu}


def bench_eval_wmdp(size: str, spec, device: str, batch_size: int) -> dict:
    """The WMDP stand-in (WMDP-Bio and the MMLU subjects): the harness against one forward per request."""
    from per_metric_more import evaluate_wmdp_per_metric

    from unlearnbench.benchmarks.wmdp import WmdpSynthBenchmark
    from unlearnbench.data.collate import Encoder
    from unlearnbench.models.specs import load_model, load_tokenizer

    bench = WmdpSynthBenchmark()
    (path,), spec = _models(bench, size, spec)
    model = load_model(path, spec, device=device)
    tok = load_tokenizer(path, spec)
    enc = Encoder(tok, spec.template)
    bench.evaluate(model, enc, bench.default_split, batch_size=batch_size, max_items=batch_size)  # warm-up
    (summary, records), harness, harness_cpu = _timed(lambda: bench.evaluate(model, enc, bench.default_split,
                                                                 batch_size=batch_size))
    base, baseline, baseline_cpu = _timed(
        lambda: evaluate_wmdp_per_metric(model, tok, bench.sets(), batch_size=batch_size))
    for name, v in base.items():
        _close(summary[name]["accuracy"], v["accuracy"], name, rel=1e-9)
    n = len(records)
    return {"benchmark": "wmdp-synth", "items": n, "harness_s": harness, "per_metric_s": baseline,
            "harness_items_per_s": n / harness, "per_metric_items_per_s": n / baseline, "ratio": baseline / harness,
            "harness_cpu_s": harness_cpu, "per_metric_cpu_s": baseline_cpu, "cpu_ratio": baseline_cpu / harness_cpu}


def _print_eval(ev: dict, detail: str) -> None:
    print(f"\nevaluation: {ev['benchmark']} ({ev['items']} items{detail})\n"
          f"| evaluator | seconds | CPU seconds | items/s |\n|:---|---:|---:|---:|\n"
          f"| harness | {ev['harness_s']:.1f} | {ev['harness_cpu_s']:.1f} | {ev['harness_items_per_s']:.1f} |\n"
          f"| per-metric | {ev['per_metric_s']:.1f} | {ev['per_metric_cpu_s']:.1f} | "
          f"{ev['per_metric_items_per_s']:.1f} |\n"
          f"ratio (per-metric / harness): {ev['ratio']:.2f}x wall time, {ev['cpu_ratio']:.2f}x CPU time", flush=True)
    if len(ev.get("repeats_cpu_ratio", ())) > 1:
        print(f"medians of {len(ev['repeats_cpu_ratio'])} interleaved repeats; CPU ratio of each: "
              + ", ".join(f"{r:.2f}x" for r in ev["repeats_cpu_ratio"]), flush=True)


def bench_train(path: str, spec, methods: list[str], steps: int, n_params: int, device_name: str) -> list[dict]:
    from unlearnbench.runner.train import unlearn

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
    from unlearnbench.runner.train import unlearn

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
    p.add_argument("--sections", default="eval,train,memory", help="which sections to run (comma-separated)")
    p.add_argument("--benchmarks", default="tofu,muse,wmdp", help="evaluation benchmarks (comma-separated): "
                   "tofu, muse, wmdp")
    p.add_argument("--repeats", type=int, default=1, help="TOFU evaluation: time each evaluator this many "
                   "times, interleaved, and report the medians (default 1)")
    p.add_argument("--finetune-epochs", type=int, default=0,
                   help="TOFU evaluation with a random model (--model llama-mid, ...): fine-tune the target and "
                   "retain model for this many epochs on their stand-in data first, so that they answer and stop "
                   "instead of generating every answer to --new-tokens (default 0: random weights)")
    p.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--model-dir", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.memory_child:
        memory_child(args.model_dir, args.memory_child, device)
        return 0
    if args.repeats < 1 or args.finetune_epochs < 0:
        print("run.py: --repeats must be at least 1 and --finetune-epochs at least 0", file=sys.stderr)
        return 2
    if args.finetune_epochs and args.model == "tiny":
        print("run.py: --finetune-epochs fine-tunes a random model; the tiny model is already the fine-tuned "
              "target (use --model llama-mid)", file=sys.stderr)
        return 2
    sections = set(args.sections.split(","))
    unknown = sorted((sections - {"eval", "train", "memory"})
                     | (set(args.benchmarks.split(",")) - {"tofu", "muse", "wmdp"}))
    if unknown:
        print(f"run.py: unknown section or benchmark {', '.join(unknown)}; sections: eval, train, memory; "
              "benchmarks: tofu, muse, wmdp", file=sys.stderr)
        return 2
    target, spec = tiny_target()
    path = target if args.model == "tiny" else random_llama(args.model, target)
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        shell = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path))
        n_params = sum(q.numel() for q in shell.parameters())
    device_name = torch.cuda.get_device_name(0) if device == "cuda" else f"cpu x{torch.get_num_threads()} threads"
    print(f"device: {device_name}; model: {args.model} ({n_params / 1e6:.1f}M parameters)", flush=True)
    evals, tr, mem = [], None, None
    if "eval" in sections:
        for name in args.benchmarks.split(","):
            if name == "tofu":
                ev = bench_eval_tofu(args.model, spec, device, args.batch_size, args.new_tokens,
                                     args.finetune_epochs, args.repeats)
                detail = (f" incl. holdout, batch {args.batch_size}, {args.new_tokens} new tokens, "
                          "GradNorm and the retain reference"
                          + (f", models fine-tuned {args.finetune_epochs} epochs" if args.finetune_epochs else ""))
            elif name == "muse":
                ev, detail = bench_eval_muse(args.model, spec, device, 16), ", batch 16"
            else:
                ev, detail = bench_eval_wmdp(args.model, spec, device, args.batch_size), f", batch {args.batch_size}"
            _print_eval(ev, detail)
            evals.append(ev)
    if "train" not in sections:
        tr = []
    else:
        tr = bench_train(None if args.model == "tiny" else path, spec, args.methods.split(","),
                         args.steps, n_params, device_name)
    if tr:
        print("\ntraining (" + f"{args.steps} steps, batch 16)\n| method | tokens | seconds | tokens/s |"
              + (" MFU |" if "mfu" in tr[0] else "") + "\n|:---|---:|---:|---:|" + ("---:|" if "mfu" in tr[0] else ""))
        for r in tr:
            print(f"| {r['method']} | {r['tokens']} | {r['wall_s']:.2f} | {r['tokens_per_s']:.0f} |"
                  + (f" {100 * r['mfu']:.1f}% |" if "mfu" in r else ""))
    if "memory" in sections:
        mem_model = args.memory_model or ("llama-mid" if device == "cpu" else args.model)
        mem_path = (path if mem_model == args.model
                    else (target if mem_model == "tiny" else random_llama(mem_model, target)))
        mem = bench_memory(mem_path, device)
        print(f"\nmemory: NPO peak {'RSS above the process baseline' if device == 'cpu' else 'CUDA memory'} "
              f"({mem_model})\n| reference | peak MiB |\n|:---|---:|\n| resident | {mem['resident']:.0f} |\n"
              f"| cached | {mem['cached']:.0f} |\nratio cached / resident: {mem['ratio_cached_over_resident']:.2f}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"device": device_name, "model": args.model, "n_params": n_params,
                                              "evaluation": evals, "training": tr, "memory": mem}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
