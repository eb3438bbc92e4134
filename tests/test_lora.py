"""LoRA (peft) in the shared loop, and gradient checkpointing."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
FAST = {"lr": 1e-3, "batch_size": 16, "epochs": 2, "warmup_epochs": 0}


def _history(path: Path) -> list[dict]:
    with open(path) as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def test_lora_trains_and_evaluates_through_grid(tiny_family, tmp_path):
    from safetensors.torch import load_file

    raw = {"name": "lora", "benchmark": "tofu-synth", "splits": ["forget01"], "models": ["tiny-test"], "seeds": [1],
           "references": {"retain_seeds": [0]}, "eval": {"max_items": 4, "max_new_tokens": 8, "gradnorm": False},
           "keep_models": True,
           "methods": [{"name": "npo", "label": "npo[lora]", "params": {**FAST, "lora": {"r": 4, "alpha": 8}}},
                       {"name": "ga_kl", "label": "ga_kl[lora]", "params": {**FAST, "lora": {"r": 4, "alpha": 8}}}]}
    grid = tmp_path / "lora.yaml"
    grid.write_text(yaml.safe_dump(raw))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "unlearnbench.cli", "grid", str(grid), "--out", str(out)],
                          cwd=REPO, env=os.environ.copy(), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    cell = out / "cells" / "npo-lora__tofu-synth-forget01__tiny-test__s1"
    result = json.loads((cell / "result.json").read_text())
    assert result["status"] == "ok" and 0 <= result["summary"]["forget_quality"] <= 1
    # The saved model is merged: a plain checkpoint, no adapter tensors, weights moved.
    saved = load_file(str(cell / "work" / "model" / "model.safetensors"))
    target = load_file(str(Path(tiny_family["target"]) / "model.safetensors"))
    assert not any("lora" in k for k in saved) and set(saved) == set(target)
    moved = [k for k in saved if not torch.equal(saved[k], target[k])]
    assert moved and all("proj" in k for k in moved)  # only the adapted linear layers changed
    # GA+KL's reference is the base with adapters off: the KL is exactly 0 at the first step.
    kl = _history(out / "cells" / "ga_kl-lora__tofu-synth-forget01__tiny-test__s1" / "history.csv")
    assert kl[0]["kl"] == 0.0 and kl[-1]["kl"] > 0


def test_lora_holds_no_second_model_and_refuses_where_undefined(untrained):
    from unlearnbench.runner.train import build_method

    npo = build_method("npo", untrained["model"], 0, {"lora": {"r": 2}})
    assert npo.ref_model is None  # the reference is the same network with adapters disabled
    trainable = [n for n, p in npo.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert {p.dtype for n, p in npo.model.named_parameters() if p.requires_grad} == {torch.float32}
    for name in ("rmu", "wagle"):
        with pytest.raises(ValueError, match="does not train with LoRA"):
            build_method(name, untrained["model"], 0, {"lora": {"r": 2}})
    with pytest.raises(ValueError, match="unknown option"):
        build_method("ga", untrained["model"], 0, {"lora": {"rank": 2}})


def test_gradient_checkpointing_gives_the_same_losses(untrained, tmp_path):
    from unlearnbench.runner.train import unlearn

    hist = {}
    for flag in (False, True):
        out = tmp_path / str(flag)
        unlearn("grad_diff", untrained["spec"], split="forget01", out_dir=out, seed=5, start=untrained["model"],
                params={**FAST, "epochs": 2, "gradient_checkpointing": flag})
        hist[flag] = _history(out / "history.csv")
    assert len(hist[True]) == len(hist[False]) > 0
    for a, b in zip(hist[True], hist[False]):
        assert abs(a["loss"] - b["loss"]) <= 1e-5 * max(1.0, abs(b["loss"])), (a, b)
