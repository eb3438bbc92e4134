"""Robustness attacks: recovery on hand values, the CPU quantiser's error bound, the relearning
slice, and a grid that attacks every job (references included) with resumable attack steps."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from unlearnbench.attacks.base import recovery
from unlearnbench.attacks.quantize import quantise_linears, rtn_per_channel
from unlearnbench.attacks.relearn import Relearn

REPO = Path(__file__).resolve().parents[1]


def test_recovery_formula_on_hand_values():
    # target 0.9, unlearned 0.1: the attack brought back (0.5 - 0.1) / (0.9 - 0.1) = 0.5.
    assert recovery(0.5, 0.1, 0.9) == pytest.approx(0.5)
    assert recovery(0.95, 0.1, 0.9) == 1.0  # clipped above
    assert recovery(0.05, 0.1, 0.9) == 0.0  # clipped below: the attack removed more
    assert recovery(0.1, 0.1, 0.9) == 0.0
    # Nothing was removed (unlearned at or above the target): no ratio, never a made-up 0 or 1.
    assert math.isnan(recovery(0.5, 0.9, 0.9)) and math.isnan(recovery(0.5, 0.95, 0.9))
    assert math.isnan(recovery(None, 0.1, 0.9)) and math.isnan(recovery(0.5, float("nan"), 0.9))


@pytest.mark.parametrize("bits", [8, 4, 3])
def test_rtn_quantiser_error_bound_and_levels(bits):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(16, 64, generator=g) * torch.linspace(0.01, 3.0, 16)[:, None]  # rows of other scales
    w[3] = 0.0  # an all-zero row stays zero
    q = rtn_per_channel(w, bits)
    qmax = 2 ** (bits - 1) - 1
    scale = w.abs().amax(dim=1, keepdim=True) / qmax
    assert torch.all((w - q).abs() <= scale / 2 + 1e-7)  # round to nearest: half a step at most
    assert torch.equal(q[3], torch.zeros(64))
    for row in range(16):  # at most 2^b - 1 levels, symmetric integer multiples of the row's scale
        if row == 3:
            continue
        levels = (q[row] / scale[row]).round()
        assert torch.allclose(q[row], levels * scale[row], atol=1e-6)
        assert levels.abs().max() <= qmax and len(levels.unique()) <= 2 ** bits - 1
    assert torch.equal(rtn_per_channel(q, bits), q)  # quantising twice changes nothing more
    # Fewer bits, larger error (the bound is what the 4-bit attack exploits).
    err = {b: (w - rtn_per_channel(w, b)).abs().mean() for b in (8, 4)}
    assert err[4] > 10 * err[8]


def test_quantise_linears_touches_linear_weights_but_not_the_head_or_embeddings():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                         num_attention_heads=2, num_key_value_heads=2, tie_word_embeddings=False))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    done = quantise_linears(model, 4)
    after = model.state_dict()
    assert "lm_head" not in done and len(done) == 2 * 7  # q, k, v, o, gate, up, down per layer
    for name, value in after.items():
        changed = not torch.equal(value, before[name])
        assert changed == (name.removesuffix(".weight") in done), name


def test_relearn_slice_is_every_kth_row_and_checks_its_fraction():
    rows = list(range(20))
    assert Relearn().slice(rows) == [0, 4, 8, 12, 16]
    assert Relearn(fraction=0.5).slice(rows) == list(range(0, 20, 2))
    assert Relearn(fraction=1).slice(rows) == rows
    with pytest.raises(ValueError, match="fraction"):
        Relearn(fraction=0).slice(rows)
    with pytest.raises(ValueError, match="unknown parameter"):
        Relearn(steps=3)


def test_grid_with_attacks_on_references_and_cells(tiny_family, tmp_path):
    raw = {"name": "robust", "benchmark": "tofu-synth", "splits": ["forget10"], "models": ["tiny-test"],
           "seeds": [1], "references": {"retain_seeds": [0]},
           "eval": {"max_items": 6, "max_new_tokens": 8, "batch_size": 8, "gradnorm": False},
           "methods": [{"name": "ga", "params": {"epochs": 1, "lr": 1e-3, "batch_size": 16}}],
           "attacks": {"relearn": {"fraction": 0.5}, "quant4": {}}}
    grid = tmp_path / "robust.yaml"
    grid.write_text(yaml.safe_dump(raw))
    out = tmp_path / "out"

    def run():
        return subprocess.run([sys.executable, "-m", "unlearnbench.cli", "grid", str(grid), "--out", str(out)],
                              cwd=REPO, env=os.environ.copy(), capture_output=True, text=True, timeout=900)

    proc = run()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    cell = out / "cells" / "ga__tofu-synth-forget10__tiny-test__s1"
    for job in (cell, out / "refs" / "target__tofu-synth-forget10__tiny-test",
                out / "refs" / "retain__tofu-synth-forget10__tiny-test"):
        for attack in ("relearn", "quant4"):
            result = json.loads((job / "attacks" / attack / "result.json").read_text())
            assert result["status"] == "ok" and result["parent"] == job.name, result.get("error")
            assert "forget_rougeL" in result["metrics"]
    assert not (cell / "work" / "model").exists()  # pruned once its attacks were done
    table = pd.read_csv(out / "leaderboard.csv")
    ga = table[table["method_label"] == "ga"].iloc[0]
    target = table[table["method_label"] == "target"].iloc[0]
    # The recovery column recomputes from the leaderboard's own numbers (one seed here).
    want = recovery(ga["forget_rougeL@relearn"], ga["forget_rougeL"], target["forget_rougeL"])
    assert ga["recovery@relearn"] == pytest.approx(want, nan_ok=True)
    md = (out / "leaderboard.md").read_text()
    assert "### Robustness of tofu-synth" in md and "recovery@quant4" in md
    assert (out / "robustness.png").read_bytes()[:4] == b"\x89PNG"
    again = run()  # resumable: every job and attack is already done
    assert again.returncode == 0 and "0 to run" in again.stdout, again.stdout[-2000:]
    # A changed setting makes the cell and its attacks stale: the re-run cell keeps its model
    # until its re-run attacks have read it (their old results must not count as done).
    raw["methods"][0]["params"]["lr"] = 2e-3
    grid.write_text(yaml.safe_dump(raw))
    changed = run()
    assert changed.returncode == 0 and "3 to run" in changed.stdout, changed.stdout[-3000:]
    for attack in ("relearn", "quant4"):
        result = json.loads((cell / "attacks" / attack / "result.json").read_text())
        assert result["status"] == "ok" and result["config"]["params"]["lr"] == 2e-3, result.get("error")
    assert not (cell / "work" / "model").exists()
