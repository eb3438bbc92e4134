"""The recipe of one unlearning run: build the method and the data from a Benchmark and a
ModelSpec, fit with Lightning (strategy, loggers, callbacks), save the model and its history.

It lives in the runner, not in ``methods/``: the methods are LightningModules and losses that
know nothing of benchmarks, strategies or loggers; this module wires them together."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import lightning as L
import torch

from unlearnbench.benchmarks.base import get_benchmark
from unlearnbench.data.collate import encoder_for
from unlearnbench.errors import UserError
from unlearnbench.files import atomic_save, atomic_write_json
from unlearnbench.methods.base import check_parity
from unlearnbench.methods.settings import HARNESS_SET, check_params, known_params
from unlearnbench.metrics.cost import CostTracker
from unlearnbench.models.specs import load_tokenizer
from unlearnbench.parallel import initialized
from unlearnbench.registry import methods
from unlearnbench.runner.trainer_setup import make_loggers, trainer_kwargs


def split_params(bench, cls, params: dict) -> tuple[dict, dict]:
    """(method params, data params): keys the benchmark's data takes (e.g. LLMU's
    ``k_random``, FLAT's ``template``) go to the data unless the method has a setting of that name."""
    init = known_params(cls) if isinstance(cls, type) else set()
    data = {k: v for k, v in params.items() if k in bench.data_options and k not in init}
    return {k: v for k, v in params.items() if k not in data}, data


def build_method(name: str, model_path: str, seed: int, params: dict):
    # What the harness itself sets (dtype for bf16-true, ...) is not a user's hyper-parameter.
    check_params(name, {k: v for k, v in params.items() if k not in HARNESS_SET})
    cls = methods.get(name)
    try:
        return cls(model_path=model_path, seed=seed, **params)
    except TypeError as exc:
        raise ValueError(f"method {name!r}: bad hyper-parameter ({exc})") from exc


def unlearn(method_name: str, spec, bench=None, *, split: str = "forget10",
            out_dir: str | Path, seed: int = 42, params: dict | None = None,
            strategy: str = "single", devices: int = 1, num_nodes: int = 1,
            precision: str | None = None,
            max_steps: int | None = None, start: str | None = None, logger: dict | None = None,
            log_dir: str | Path | None = None, callbacks: list | None = None) -> dict:
    """Unlearn the target of ``spec`` (a ModelSpec) on ``split`` of ``bench`` (a Benchmark, built
    once by the caller; the TOFU stand-in when None); saves to ``out_dir`` and returns run info.

    ``start`` is the model to unlearn from instead of the target (a sequential chain's
    previous step).

    ``batch_size`` is the global (effective) batch: each of the ``devices * num_nodes``
    ranks gets ``batch_size / world`` forget (and retain) rows per optimiser step, so a run
    takes the same optimiser steps over the same data whatever the strategy. With
    ``micro_batch_size`` (a param) a rank takes that many rows per forward pass and
    accumulates ``batch_size / (world * micro_batch_size)`` of them per step, so the
    effective batch is the same on 1, 2 or 8 devices. ``max_steps`` (also accepted as
    ``params["max_steps"]``) stops training early, for smoke runs.

    ``callbacks`` are Lightning callbacks (e.g. the runner's evaluation during unlearning);
    the time they report as ``wall_time_s`` (``cpu_time_s``) is taken out of the training's.
    """
    params = dict(params or {})
    max_steps = params.pop("max_steps", max_steps)
    micro = params.pop("micro_batch_size", None)
    kw = trainer_kwargs(strategy, devices, num_nodes)  # fails fast on a bad strategy
    world = int(kw["devices"]) * int(kw.get("num_nodes", 1))
    L.seed_everything(seed, workers=True, verbose=False)
    if bench is None:
        bench = get_benchmark("tofu-synth")
    bench.check_split(split)
    method_params, data_params = split_params(bench, methods.get(method_name), params)
    target = start or bench.checkpoint(spec, "target", split)
    method = build_method(method_name, target, seed, method_params)
    batching = batch_plan(method_name, method.batch_size, world, micro)
    tok = load_tokenizer(target, spec)
    dm = bench.datamodule(split, encoder_for(bench, spec, tok), batch_size=batching["per_device_batch"],
                          seed=seed, needs=method.needs, **data_params)
    if precision is None:
        precision = "bf16-mixed" if kw["accelerator"] == "gpu" else "32-true"
    budget = [b for b in (method.steps, max_steps) if b]
    loggers = make_loggers(Path(log_dir or Path(out_dir) / "logs"), f"{method_name}-s{seed}", logger)
    trainer = L.Trainer(max_epochs=-1 if method.steps else method.epochs,
                        max_steps=int(min(budget)) if budget else -1, logger=loggers, log_every_n_steps=1,
                        enable_checkpointing=False, deterministic=True, enable_model_summary=False,
                        precision=precision, use_distributed_sampler=True,
                        accumulate_grad_batches=batching["accumulation"], callbacks=list(callbacks or []), **kw)
    with CostTracker() as cost:
        trainer.fit(method, datamodule=dm)
        cost.steps = trainer.global_step
        cost.tokens = method.tokens_seen
    # Time spent in callbacks (evaluating during training) is reported apart, not as training.
    cost.wall_time_s -= sum(getattr(cb, "wall_time_s", 0.0) for cb in callbacks or [])
    cost.cpu_time_s -= sum(getattr(cb, "cpu_time_s", 0.0) for cb in callbacks or [])
    out_dir = Path(out_dir)
    method.save_unlearned(out_dir / "model")
    history = mean_by_step(method.history)  # one row per optimiser step, accumulated or not
    if trainer.world_size > 1 and initialized():
        # Each rank logged the loss of its own share; DDP and FSDP step on the mean of
        # the ranks' gradients, so the history is the mean over ranks, step by step.
        parts: list = [None] * trainer.world_size
        torch.distributed.all_gather_object(parts, history)
        history = [{k: (row[k] if k == "step" else sum(p[i][k] for p in parts) / len(parts))
                    for k in row} for i, row in enumerate(parts[0])]
        # Cost counts the tokens that all ranks processed, comparable across strategies.
        tokens = torch.tensor(method.tokens_seen, dtype=torch.int64,
                              device=trainer.strategy.root_device)
        torch.distributed.all_reduce(tokens)
        cost.tokens = int(tokens)
    if os.environ.get("UNLEARNBENCH_RECORD_RETAIN"):
        # Debugging/tests: the retain rows each rank drew, to check ranks differ.
        atomic_write_json(out_dir / f"retain_rank{trainer.global_rank}.json",
                          {"rank": trainer.global_rank, "world_size": trainer.world_size,
                           "per_rank_batch_size": dm.batch_size,
                           "batches": getattr(method, "retain_indices", [])})
    info = {"method": method_name, "target": target, "steps": trainer.global_step,
            "world_size": trainer.world_size, "batching": batching, "cost": cost.as_dict()}
    if trainer.is_global_zero:
        write_history(out_dir / "history.csv", history)
    return info


def batch_plan(method_name: str, batch_size: int, world: int, micro: int | None) -> dict:
    """Global batch, per-device batch and accumulation steps of a run (in its resolved config)."""
    if batch_size % world:
        raise ValueError(f"method {method_name!r}: batch_size {batch_size} (the global batch) must be "
                         f"divisible by the world size {world}")
    per_rank = batch_size // world
    micro = per_rank if micro is None else int(micro)
    if micro < 1 or per_rank % micro:
        raise ValueError(f"method {method_name!r}: micro_batch_size {micro} must divide the per-device "
                         f"batch {per_rank} (batch_size {batch_size} over {world} devices)")
    return {"global_batch": batch_size, "per_device_batch": micro, "accumulation": per_rank // micro,
            "world_size": world}


def mean_by_step(history: list[dict]) -> list[dict]:
    """Micro-batch rows of one optimiser step averaged into one row (the step's loss is their
    mean: Lightning divides each micro-batch loss by the accumulation count)."""
    steps: dict[int, list[dict]] = {}
    for row in history:
        steps.setdefault(row["step"], []).append(row)
    return [{k: (step if k == "step" else sum(r[k] for r in rows) / len(rows)) for k in rows[0]}
            for step, rows in steps.items()]


def write_history(path: Path, history: list[dict]) -> None:
    cols = ["step"] + sorted({k for row in history for k in row} - {"step"})

    def writer(tmp):
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols)
            w.writeheader()
            w.writerows(history)

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save(path, writer)


def parse_sets(pairs: list[str]) -> dict:
    """``["lr=1e-5", "inner=npo"]`` -> {"lr": 1e-5, "inner": "npo"} (values parsed as YAML)."""
    out = {}
    for pair in pairs:
        if "=" not in pair or not pair.split("=", 1)[0].strip():
            raise UserError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set lr=1e-5")
        k, v = pair.split("=", 1)
        out[k.strip()] = _number_or_yaml(v)
    return out


def _number_or_yaml(v: str):
    # YAML 1.1 reads "1e-5" as a string; a researcher means the number.
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    import yaml

    try:
        return yaml.safe_load(v)
    except yaml.YAMLError as exc:
        raise UserError(f"--set value {v!r} is neither a number nor valid YAML ({exc.problem}); "
                        "quote mappings, e.g. --set lora=\"{r: 8}\"") from exc


def unlearn_cli(args, spec) -> int:
    out = Path(args.out or Path("results") / "unlearned" / f"{args.method}-{spec.name}-{args.split}-s{args.seed}")
    params = parse_sets(args.set)
    check_parity(methods.get(args.method), params)  # before the target is built (minutes)
    info = unlearn(args.method, spec, get_benchmark(args.benchmark, args.data_dir), split=args.split, out_dir=out,
                   seed=args.seed, params=params)
    print(json.dumps(info, indent=2))
    print(f"saved unlearned model to {out / 'model'}")
    return 0
