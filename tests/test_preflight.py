"""The grid's preflight: unresolvable model and data references stop the grid in one line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from unlearnbench.errors import UserError

from unlearnbench.runner.grid import parse_grid
from unlearnbench.runner.preflight import PreflightError, check_model_dir
from unlearnbench.runner.run import run_grid


@pytest.fixture(scope="module")
def good_dir(tmp_path_factory):
    """A complete local model directory: config, safetensors weights, tokenizer."""
    from tokenizers import Tokenizer, models
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    d = tmp_path_factory.mktemp("model")
    cfg = LlamaConfig(vocab_size=16, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2)
    LlamaForCausalLM(cfg).save_pretrained(d)
    tok = Tokenizer(models.WordLevel({"<unk>": 0, "<s>": 1, "</s>": 2}, unk_token="<unk>"))
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>").save_pretrained(d)
    return d


def _grid(model, data_dir):
    (data_dir / "forget10.json").write_text("{}")  # a data directory that is not empty
    return parse_grid({"name": "pf", "benchmark": "tofu", "splits": ["forget10"], "models": [model],
                       "methods": ["ga", "npo"], "references": {"retain_seeds": [0]},
                       "data_dir": str(data_dir)})


def test_a_complete_directory_passes(good_dir):
    check_model_dir(good_dir, "cell")


@pytest.mark.parametrize("damage, words", [
    (lambda d: (d / "config.json").unlink(), "no config.json"),
    (lambda d: (d / "config.json").write_text("{not json"), "config.json is not valid JSON"),
    (lambda d: (d / "model.safetensors").unlink(), "no *.safetensors"),
    (lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:6]), "truncated"),
    (lambda d: (d / "model.safetensors").write_bytes(b"\xff" * 64), "truncated or damaged"),
    (lambda d: (d / "tokenizer.json").unlink(), "no tokenizer"),
])
def test_a_broken_directory_is_named_in_one_line(good_dir, tmp_path, damage, words):
    d = tmp_path / "broken-model"
    shutil.copytree(good_dir, d)
    damage(d)
    with pytest.raises(PreflightError) as err:
        check_model_dir(d, "npo__tofu-forget10")
    msg = str(err.value)
    assert "\n" not in msg and str(d) in msg and words in msg


def test_grid_with_a_broken_local_model_stops_before_any_job(good_dir, tmp_path):
    d = tmp_path / "no-weights"
    shutil.copytree(good_dir, d)
    (d / "model.safetensors").unlink()
    lines = []
    # The grid reads the model spec first, which checks the directory (models.local): one line.
    with pytest.raises(UserError, match="no-weights"):
        run_grid(_grid(str(d), tmp_path), tmp_path / "out", log=lines.append)
    assert not (tmp_path / "out" / "cells").exists()


def test_hub_id_offline_fails_the_grid_in_one_line_within_5s(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty hub cache
    # Offline is decided without a connection (how long it takes: docs/running.md, measured 1.3 s).
    with pytest.raises(PreflightError) as err:
        run_grid(_grid("llama2-7b", tmp_path), tmp_path / "out", log=lambda m: None)
    msg = str(err.value)
    assert "\n" not in msg and "HF_HUB_OFFLINE" in msg and "open-unlearning/tofu_Llama-2-7b-chat-hf" in msg


def test_cli_exits_2_on_an_offline_hub_id(tmp_path):
    grid = tmp_path / "g.yaml"
    grid.write_text(json.dumps({"name": "pf", "benchmark": "tofu", "splits": ["forget10"], "models": ["llama2-7b"],
                                "methods": ["ga"], "references": {"retain_seeds": [0]}}))
    env = {**__import__("os").environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    proc = subprocess.run([sys.executable, "-m", "unlearnbench.cli", "grid", str(grid), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "locuslab/TOFU" in err[0] and "HF_HUB_OFFLINE" in err[0]


def test_cli_refuses_an_offline_hub_id_before_importing_lightning(tmp_path):
    """The answer is fast because the references are checked before any method class (and with
    it Lightning, about 4 s of imports) is loaded; a bad parameter is still refused in one line."""
    grid = tmp_path / "g.yaml"
    env = {**__import__("os").environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    cmd = [sys.executable, "-X", "importtime", "-m", "unlearnbench.cli", "grid", str(grid),
           "--out", str(tmp_path / "o")]
    raw = {"name": "pf", "benchmark": "tofu", "splits": ["forget10"], "models": ["llama2-7b"],
           "methods": [{"name": "npo", "params": {"beta": -1}}], "references": {"retain_seeds": [0]}}
    grid.write_text(json.dumps(raw))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    imported = [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")]
    said = [line for line in proc.stderr.splitlines() if not line.startswith("import time:")]
    assert proc.returncode == 2 and len(said) == 1 and "locuslab/TOFU" in said[0], proc.stderr[-2000:]
    assert "lightning" not in imported
    # The same method entry on the stand-in (nothing to fetch): the bad beta is refused.
    local_model = {**raw, "models": ["tiny-test"], "benchmark": "tofu-synth"}
    grid.write_text(json.dumps(local_model))
    proc = subprocess.run(cmd[:1] + cmd[3:], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "beta" in proc.stderr, proc.stderr
    assert not (tmp_path / "o").exists()  # refused before the results directory (and its lock) exist
