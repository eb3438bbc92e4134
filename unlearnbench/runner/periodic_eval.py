"""Evaluation during unlearning (``eval_every``) and keeping the best checkpoint (``keep``).

A cell with ``eval_every: {steps: N}`` (or ``{epochs: K}``) evaluates the model being
unlearned every N optimiser steps (K epochs), and once more after the last step, on the
benchmark's *validation* items only (``benchmarks.base.is_validation``: the quarter a sweep
with ``select: validation`` chooses on). Any benchmark that summarises a part of its items
accepts it (``Benchmark.summarises_parts``, no list of names): one that ``evaluates_parts``
(TOFU, MUSE) scores the validation items alone, so the test items the leaderboard reports are
never scored during training; the others score every item and drop the test items' records
before anything reads them (``Benchmark.evaluate_part``): nothing of them reaches the curve or
the choice, only the cost is higher. Each evaluation's leaderboard metrics form the cell's curve.

``keep: best`` keeps the checkpoint the benchmark's ranking rule prefers among the evaluated
ones (TOFU: the best forget quality among the checkpoints whose model utility is at least
0.9 × the target's, both on validation items; when none passes, the one that keeps most
utility) — the same choice a ``select: validation`` sweep makes among settings, by the same
code (``report.leaderboard.preferred``). ``keep: {best: <column>}`` ranks by one leaderboard
column in its better direction instead. The cell's test evaluation then runs on the kept
checkpoint. ``keep: last`` (the default) evaluates the last model, as without ``keep``.

Distributed: the callback runs on every rank. The evaluator scores each rank's share of the
items and gathers the records (as at the end of a cell), on the training model itself: under
FSDP2 its parameters are all-gathered once for the whole evaluation (``full_params``) and
sharded again afterwards, so no second model is loaded. GradNorm MIA scores are left out of
periodic evaluations: they need backward passes through the model being trained, which would
run DDP's and FSDP's gradient hooks.

Resume: each evaluation is appended to ``logs/evals.jsonl`` as it finishes, with a key of the
cell's configuration. Training is deterministic (fixed seeds, ``deterministic=True``, and the
RNG state is restored around each evaluation, so a run with evaluations takes the same steps
as one without), so a restarted cell re-trains and skips every evaluation already recorded
for the same key; at a recorded step that was the best so far it writes the checkpoint again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import random
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

import lightning as L

from unlearnbench.parallel import barrier, initialized, is_rank_zero
from unlearnbench.runner.eval_every import check


# ----------------------------------------------------------------------------- choosing
def anchor_metrics(bench, spec, split: str, compare, options: dict) -> dict | None:
    """Validation metrics of the ranking rule's anchor reference (TOFU: the target), from the
    reference cache the grid's reference rows fill (evaluated here when it is not there)."""
    from unlearnbench.eval.references import cached_eval, reference_by_name

    if bench.ranking is None:
        return None
    ref = reference_by_name(bench, bench.ranking.anchor)
    if ref is None:
        return None
    if ref.name == bench.compare_to:
        summary, records, against = *compare, None
    else:
        ckpt = bench.checkpoint(spec, ref.role, bench.eval_split(split), ref.seed)
        summary, records = cached_eval(ckpt, spec, bench, split, reference=compare, options=options)
        against = compare
    return bench.metrics(bench.summarise_records(records, against, "validation"))


def choose(curve: list[dict], keep: dict, meta: dict, anchor: dict | None) -> int | None:
    """Index in ``curve`` of the evaluation ``keep`` prefers (None: keep last, or empty)."""
    import pandas as pd

    from unlearnbench.report.leaderboard import preferred

    if keep.get("keep") != "best" or not curve:
        return None
    frame = pd.DataFrame([{k: (math.nan if v is None else v) for k, v in e["metrics"].items()} for e in curve])
    directions = {c["name"]: c["direction"] for c in meta["columns"]}
    if keep["rule"] == "ranking":
        rule = meta["ranking"]
        ref = (anchor or {}).get(rule["utility"])
        return int(preferred(frame[rule["forget"]], frame[rule["utility"]], math.nan if ref is None else ref,
                             rule["min_ratio"], directions.get(rule["forget"], "max"),
                             directions.get(rule["utility"], "max")))
    column = keep["rule"]
    return int(preferred(frame[column], frame[column], math.nan, 0.0, directions[column], directions[column]))


# ----------------------------------------------------------------------------- the callback
def run_key(cell: dict, data_key=None) -> str:
    """What makes a recorded evaluation reusable: the cell's configuration and its data."""
    ignore = ("plugins", "keep_model", "logger")
    blob = json.dumps([{k: v for k, v in cell.items() if k not in ignore}, data_key], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def read_log(path: Path, key: str) -> dict[int, dict]:
    """Recorded evaluations of this configuration, by step (a torn last line is ignored)."""
    out: dict[int, dict] = {}
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("key") == key:
            out[int(entry["step"])] = entry
    return out


@contextmanager
def full_params(model):
    """The whole parameters on every rank for the block: under FSDP2 each ``fully_shard``ed
    module is all-gathered once and kept gathered through every forward (rather than each rank
    running a different number of forwards, each a collective), then sharded again; FSDP1 uses
    ``summon_full_params``; otherwise nothing to do."""
    from torch.distributed.fsdp import FSDPModule

    fsdp2 = [m for m in model.modules() if isinstance(m, FSDPModule)]
    if fsdp2:
        saved = [(g, g.post_forward_mesh_info) for m in fsdp2 for g in m._get_fsdp_state()._fsdp_param_groups]
        for m in fsdp2:
            m.unshard()
            m.set_reshard_after_forward(False, recurse=False)
        try:
            yield
        finally:
            for g, info in saved:  # the reshard policy training had (the root's differs)
                g.post_forward_mesh_info = info
            for m in fsdp2:
                m.reshard()
        return
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP1

    if any(isinstance(m, FSDP1) for m in model.modules()):
        with FSDP1.summon_full_params(model, writeback=False, recurse=True):
            yield
        return
    yield


@contextmanager
def same_rng():
    """Leave Python's, NumPy's and torch's RNG as they were: training after an evaluation (or
    after a skipped one, on resume) draws exactly what it would have drawn without it."""
    import numpy as np
    import torch

    state = (random.getstate(), np.random.get_state(), torch.get_rng_state(),
             torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)
    try:
        yield
    finally:
        random.setstate(state[0])
        np.random.set_state(state[1])
        torch.set_rng_state(state[2])
        if state[3] is not None:
            torch.cuda.set_rng_state_all(state[3])


class PeriodicEval(L.Callback):
    """Evaluate the model being unlearned on validation items every ``every`` (see the module
    docstring); keep the best checkpoint in ``best_dir``; record the curve in ``log_path``."""

    def __init__(self, *, bench, encoder, split: str, compare, options: dict, every: dict, keep: dict,
                 meta: dict, anchor: dict | None, log_path: Path, key: str, best_dir: Path, models=None):
        self.bench, self.encoder, self.split, self.compare = bench, encoder, split, compare
        self.models = models  # models(role, seed) -> a reference model (e.g. LLMU's original), as at the end
        # GradNorm needs backward passes through the training model (see the module docstring).
        self.options = {**bench.check_eval_options({**options, **every.get("eval", {})}),
                        **({"gradnorm": False} if "gradnorm" in bench.eval_options else {})}
        self.every, self.keep, self.meta, self.anchor = every, keep, meta, anchor
        self.log_path, self.key, self.best_dir = Path(log_path), key, Path(best_dir)
        self.recorded = read_log(self.log_path, key)
        self.curve: list[dict] = []
        self.best: int | None = None  # index in curve of the kept checkpoint
        self.wall_time_s = 0.0  # time this process spent in the callback (evaluating, saving)
        self.cpu_time_s = 0.0  # its CPU time there (both are taken out of the training's)
        self.save_wall_time_s = 0.0
        self.reused = 0  # evaluations read back from an interrupted run
        self._last = -1

    # Lightning hooks ------------------------------------------------------------------
    def on_train_start(self, trainer, pl_module):
        import torch

        if initialized():
            # Every rank skips the same evaluations (each is a collective): rank 0's record wins,
            # also when the ranks do not share a disk.
            box = [self.recorded]
            torch.distributed.broadcast_object_list(box, src=0)
            self.recorded = box[0]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        n = self.every.get("steps")
        step = trainer.global_step
        if n and step > 0 and step % n == 0 and step != self._last:  # after an optimiser step
            self._at(trainer, pl_module, step)

    def on_train_epoch_end(self, trainer, pl_module):
        k = self.every.get("epochs")
        if k and (trainer.current_epoch + 1) % k == 0 and trainer.global_step != self._last:
            self._at(trainer, pl_module, trainer.global_step)

    def on_train_end(self, trainer, pl_module):
        if trainer.global_step != self._last:  # the last model is always on the curve
            self._at(trainer, pl_module, trainer.global_step)

    # ----------------------------------------------------------------------------------
    def _at(self, trainer, pl_module, step: int) -> None:
        t0, c0 = time.perf_counter(), time.process_time()
        self._last = step
        entry = self.recorded.get(step)
        if entry is not None:
            self.reused += 1
        else:
            entry = self._evaluate(pl_module, step, trainer.current_epoch)
            if trainer.is_global_zero:
                self._append(entry)
        self.curve.append(entry)
        best = choose(self.curve, self.keep, self.meta, self.anchor)
        if best is not None and best == len(self.curve) - 1 and best != self.best:
            s0 = time.perf_counter()
            self._save(trainer, pl_module)
            self.save_wall_time_s += time.perf_counter() - s0
        if best is not None:
            self.best = best
        self.wall_time_s += time.perf_counter() - t0
        self.cpu_time_s += time.process_time() - c0

    def _evaluate(self, pl_module, step: int, epoch: int) -> dict:
        model = pl_module.model
        t0, c0 = time.perf_counter(), time.process_time()
        with same_rng(), full_params(model):
            _, records = self.bench.evaluate_part(model, self.encoder, self.split, reference=self.compare,
                                                  models=self.models, part="validation", **self.options)
        summary = self.bench.summarise_records(records, self.compare, "validation")
        return {"key": self.key, "step": step, "epoch": epoch, "metrics": self.bench.metrics(summary),
                "n_items": len(records), "eval_wall_time_s": time.perf_counter() - t0,
                "eval_cpu_time_s": time.process_time() - c0}

    def _append(self, entry: dict) -> None:
        # One line per evaluation, flushed to disk before training goes on: an interrupted
        # cell loses at most the evaluation that was running.
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a") as f:
            f.write(json.dumps(entry, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def _save(self, trainer, pl_module) -> None:
        """The new best checkpoint, written next to the old one and swapped in by renames, so
        ``best_dir`` always holds one whole checkpoint (and only one)."""
        tmp = self.best_dir.with_name(self.best_dir.name + ".tmp")
        old = self.best_dir.with_name(self.best_dir.name + ".old")
        if trainer.is_global_zero:
            shutil.rmtree(tmp, ignore_errors=True)
        pl_module.save_unlearned(tmp)  # a collective under FSDP; ends with a barrier
        if trainer.is_global_zero:
            (tmp / "kept_step.json").write_text(json.dumps({"step": self._last}))
            shutil.rmtree(old, ignore_errors=True)
            if self.best_dir.exists():
                os.replace(self.best_dir, old)
            os.replace(tmp, self.best_dir)
            shutil.rmtree(old, ignore_errors=True)
        barrier()

    def adopt_best(self, work: Path) -> None:
        """Make the kept checkpoint the cell's model (``work/model``: what is evaluated on the test
        items, attacked, or continued by a chain's next step); rank 0 moves it, every rank waits."""
        best = work / "best"
        if self.best is not None and is_rank_zero() and (best / "config.json").exists():
            shutil.rmtree(work / "model", ignore_errors=True)
            os.replace(best, work / "model")
        barrier()

    def kept_step(self) -> int | None:
        return None if self.best is None else self.curve[self.best]["step"]

    def summary(self) -> dict:
        """What the cell's result records: the curve, the kept step, the evaluation cost."""
        curve = [{k: v for k, v in e.items() if k != "key"} for e in self.curve]
        kept = None if self.best is None else curve[self.best]["step"]
        return {"curve": curve, "kept": {**self.keep, "every": self.every, "step": kept,
                                         "last_step": curve[-1]["step"] if curve else None},
                "periodic_eval_wall_time_s": sum(e["eval_wall_time_s"] for e in curve),
                "periodic_eval_cpu_time_s": sum(e.get("eval_cpu_time_s", math.nan) for e in curve),
                "reused_evaluations": self.reused}


# ----------------------------------------------------------------------------- the cell's side
def callback_for(cell: dict, cell_dir: Path, bench, spec, compare, start: str | None) -> PeriodicEval | None:
    """The cell's ``PeriodicEval`` (None without ``eval_every``). Built before training, so
    before DDP/FSDP start the other ranks: the anchor reference is read (or evaluated) here."""
    from unlearnbench.data.collate import encoder_for
    from unlearnbench.models.specs import load_tokenizer
    from unlearnbench.runner.jobs import benchmark_meta

    from unlearnbench.registry import benchmarks

    every, keep = check(cell.get("params") or {}, benchmarks.get(cell["benchmark"]))
    if every is None:
        return None
    source = start or bench.checkpoint(spec, "target", cell["split"])
    # One tokenisation of each item's texts for the cell, not one per evaluation.
    encoder = dataclasses.replace(encoder_for(bench, spec, load_tokenizer(source, spec)), memo={})
    anchor = anchor_metrics(bench, spec, cell["split"], compare, cell.get("eval") or {}) \
        if keep.get("rule") == "ranking" else None
    return PeriodicEval(bench=bench, encoder=encoder, split=cell["split"], compare=compare,
                        options=cell.get("eval") or {}, every=every, keep=keep, meta=benchmark_meta(bench),
                        anchor=anchor, log_path=cell_dir / "logs" / "evals.jsonl",
                        key=run_key(cell, bench.data_key()), best_dir=cell_dir / "work" / "best",
                        models=_reference_models(bench, spec, cell["split"]))


def _reference_models(bench, spec, split: str):
    """``models(role, seed)`` as the cell's final evaluation gets it (eval.references), each
    model loaded on first use and kept for the cell's later evaluations."""
    loaded: dict = {}

    def models(role: str, seed: int = 0):
        import torch

        from unlearnbench.models.specs import load_model

        if (role, seed) not in loaded:
            device = f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else None
            loaded[(role, seed)] = load_model(bench.checkpoint(spec, role, split, seed), spec, device=device)
        return loaded[(role, seed)]

    return models

