"""The architectures of the registered real models, written down from their hub ``config.json``.

Used without the hub: the memory plan at full size on the meta device, and ``rehearse``, which
builds a model of the same class with the same vocabulary, special-token ids, rope settings,
tied or untied embeddings and norm epsilon, only shallower and narrower (``shrunk``).
Each entry is ``config.json``'s own keys (``transformers`` turns the rope keys into
``rope_parameters``); ``asset`` is the npm tokenizer (``models.assets``) of the family, or
``None`` where no matching tokenizer is published there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

_LLAMA31_ROPE = {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                 "original_max_position_embeddings": 8192, "rope_type": "llama3"}
_LLAMA3_EOS = [128001, 128008, 128009]


@dataclass(frozen=True)
class RealConfig:
    """A hub model's architecture and the npm tokenizer asset of its family."""

    hub_id: str
    asset: str | None
    config: dict = field(default_factory=dict)
    note: str = ""


REAL_CONFIGS: dict[str, RealConfig] = {
    "llama2-7b": RealConfig("meta-llama/Llama-2-7b-chat-hf", "llama2", dict(
        model_type="llama", vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096, rms_norm_eps=1e-5,
        rope_theta=10000.0, hidden_act="silu", tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)),
    "llama2-13b": RealConfig("meta-llama/Llama-2-13b-chat-hf", "llama2", dict(
        model_type="llama", vocab_size=32000, hidden_size=5120, intermediate_size=13824, num_hidden_layers=40,
        num_attention_heads=40, num_key_value_heads=40, max_position_embeddings=4096, rms_norm_eps=1e-5,
        rope_theta=10000.0, hidden_act="silu", tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)),
    "llama3.1-8b": RealConfig("meta-llama/Llama-3.1-8B-Instruct", "llama3_1", dict(
        model_type="llama", vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=131072, rms_norm_eps=1e-5,
        rope_theta=500000.0, rope_scaling=_LLAMA31_ROPE, hidden_act="silu", tie_word_embeddings=False,
        bos_token_id=128000, eos_token_id=_LLAMA3_EOS)),
    "llama3.2-1b": RealConfig("meta-llama/Llama-3.2-1B-Instruct", "llama3_1", dict(
        model_type="llama", vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
        num_attention_heads=32, num_key_value_heads=8, head_dim=64, max_position_embeddings=131072,
        rms_norm_eps=1e-5, rope_theta=500000.0, rope_scaling={**_LLAMA31_ROPE, "factor": 32.0},
        hidden_act="silu", tie_word_embeddings=True, bos_token_id=128000, eos_token_id=_LLAMA3_EOS)),
    "zephyr-7b": RealConfig("HuggingFaceH4/zephyr-7b-beta", "mistral", dict(
        model_type="mistral", vocab_size=32000, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=32768, rms_norm_eps=1e-5,
        rope_theta=10000.0, sliding_window=4096, hidden_act="silu", tie_word_embeddings=False,
        bos_token_id=1, eos_token_id=2, pad_token_id=2),
        "the npm Mistral tokenizer has no chat template; Zephyr's <|user|> template is not shipped"),
    "phi-1.5": RealConfig("microsoft/phi-1_5", "gpt2", dict(
        model_type="phi", vocab_size=51200, hidden_size=2048, intermediate_size=8192, num_hidden_layers=24,
        num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=2048, layer_norm_eps=1e-5,
        rope_theta=10000.0, partial_rotary_factor=0.5, hidden_act="gelu_new", tie_word_embeddings=False,
        bos_token_id=50256, eos_token_id=50256),
        "GPT-2's BPE: Phi-1.5's ids for ordinary text, without CodeGen's added whitespace-run tokens"),
    "qwen2.5-1.5b": RealConfig("Qwen/Qwen2.5-1.5B-Instruct", "qwen2_5", dict(
        model_type="qwen2", vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
        num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=32768, rms_norm_eps=1e-6,
        rope_theta=1000000.0, hidden_act="silu", tie_word_embeddings=True, bos_token_id=151643,
        eos_token_id=151645)),
    "qwen3-1.7b": RealConfig("Qwen/Qwen3-1.7B", "qwen3", dict(
        model_type="qwen3", vocab_size=151936, hidden_size=2048, intermediate_size=6144, num_hidden_layers=28,
        num_attention_heads=16, num_key_value_heads=8, head_dim=128, max_position_embeddings=40960,
        rms_norm_eps=1e-6, rope_theta=1000000.0, hidden_act="silu", tie_word_embeddings=True,
        bos_token_id=151643, eos_token_id=151645)),
    "gemma3-1b": RealConfig("google/gemma-3-1b-it", "gemma3", dict(
        model_type="gemma3_text", vocab_size=262144, hidden_size=1152, intermediate_size=6912,
        num_hidden_layers=26, num_attention_heads=4, num_key_value_heads=1, head_dim=256,
        max_position_embeddings=32768, rms_norm_eps=1e-6, rope_theta=1000000.0, rope_local_base_freq=10000.0,
        sliding_window=512, query_pre_attn_scalar=256, hidden_activation="gelu_pytorch_tanh",
        tie_word_embeddings=True, bos_token_id=2, eos_token_id=[1, 106], pad_token_id=0)),
    "opt-1.3b": RealConfig("facebook/opt-1.3b", None, dict(
        model_type="opt", vocab_size=50272, hidden_size=2048, ffn_dim=8192, num_hidden_layers=24,
        num_attention_heads=32, max_position_embeddings=2048, word_embed_proj_dim=2048,
        do_layer_norm_before=True, tie_word_embeddings=True, bos_token_id=2, eos_token_id=2, pad_token_id=1),
        "OPT renumbers GPT-2's BPE (fairseq dictionary order): no npm asset has its ids"),
}


def hf_config(name: str, **overrides):
    """The ``transformers`` config of ``name`` (with ``overrides``), built offline."""
    from transformers import AutoConfig

    cfg = dict(REAL_CONFIGS[name].config)
    cfg.update(overrides)
    return AutoConfig.for_model(cfg.pop("model_type"), **cfg)


def shrunk(name: str, hidden: int = 64, layers: int = 2, heads: int = 4):
    """The same architecture at ``layers`` x ``hidden``: vocabulary, special tokens, rope,
    tying, norm epsilon and the grouped-query ratio kept; depth, width and head count changed."""
    c = REAL_CONFIGS[name].config
    ratio = c["num_attention_heads"] // c.get("num_key_value_heads", c["num_attention_heads"])
    heads = ratio * max(1, heads // ratio)  # a whole number of query heads per key/value head
    if hidden % heads:
        hidden = 16 * heads  # e.g. Qwen2.5's 6 query heads per key/value head
    small = {"hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads,
             "num_key_value_heads": max(1, heads // ratio)}
    if c["model_type"] == "opt":
        small.update(ffn_dim=2 * hidden, word_embed_proj_dim=hidden)
        small.pop("num_key_value_heads")
    else:
        small["intermediate_size"] = 2 * hidden
    if "head_dim" in c:
        small["head_dim"] = hidden // heads
    if c["model_type"] == "gemma3_text":
        small.update(query_pre_attn_scalar=hidden // heads)
    return hf_config(name, **small)
