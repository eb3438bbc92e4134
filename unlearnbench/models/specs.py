"""Model specs: a dataclass and a name table, resolved with ``ModelSpec.from_name``; and loading
a model or tokenizer by spec, hub id or local directory (offline-testable).

torch and transformers are imported by the loaders only: a grid reads the specs without them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from unlearnbench.models.local import check_model_dir
from unlearnbench.registry import models

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class TinyConfig:
    """Architecture and recipe of a harness-trained Llama-architecture model."""

    vocab_size: int = 1024
    hidden_size: int = 128
    intermediate_size: int = 384
    num_layers: int = 4
    num_heads: int = 4
    max_len: int = 128
    pretrain_epochs: int = 40
    finetune_epochs: int = 20
    replay: bool = True  # mix the base's pre-training text into fine-tuning
    pretrain_lr: float = 3e-3
    finetune_lr: float = 2e-3
    batch_size: int = 32
    weight_decay: float = 0.01


LOCAL_META = "unlearnbench.json"


@dataclass(frozen=True)
class ModelSpec:
    """A model by short name: hub ids (or a local dir), template, published checkpoints."""

    name: str
    description: str
    template: str
    hub_id: str | None = None
    # Published fine-tuned checkpoints per benchmark family, e.g. {"tofu": {"full": ...,
    # "retain90": ...}, "muse-news": {"target": ..., "retain": ...}}.
    checkpoints: dict[str, dict[str, str]] = field(default_factory=dict)
    tiny: TinyConfig | None = None
    trust_remote_code: bool = False
    gpu_dtype: str = "bfloat16"
    base_id: str | None = None  # a local fine-tune's pre-trained model (from its unlearnbench.json)
    # A model given as a local directory rather than by a registered name (``from_name`` sets it):
    # it is its own target, and its base and reference checkpoints come from its unlearnbench.json.
    is_local: bool = False

    @classmethod
    def from_name(cls, name: str, **overrides) -> "ModelSpec":
        """Look a spec up by name; a local directory becomes an ad-hoc phi-style spec."""
        if name not in models and Path(name).is_dir():
            check_model_dir(name)  # empty, truncated or half-copied: one line, before any work

            # `unlearnbench finetune` records what a directory was fine-tuned from.
            meta_file = Path(name) / LOCAL_META
            meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
            # It may also name the reference checkpoints a benchmark needs (a retain model
            # for TOFU, a retrain model for MUSE), as a spec's published ones:
            # {"checkpoints": {"tofu": {"retain90": "<hub id or dir>"}}}.
            spec = cls(name=name, description=f"local model at {name}", template=meta.get("template", "phi"),
                       hub_id=name, base_id=meta.get("base"), checkpoints=meta.get("checkpoints", {}),
                       is_local=True)
        else:
            spec = models.get(name)
        if overrides.get("tiny") and isinstance(overrides["tiny"], dict):
            overrides["tiny"] = replace(spec.tiny or TinyConfig(), **overrides["tiny"])
        return replace(spec, **overrides) if overrides else spec

    @property
    def is_tiny(self) -> bool:
        return self.tiny is not None


def _tofu(prefix: str, retains=("retain90", "retain95", "retain99")) -> dict[str, str]:
    # open-unlearning publishes a full target and one retain model per forget split.
    return {"full": f"open-unlearning/tofu_{prefix}_full",
            **{r: f"open-unlearning/tofu_{prefix}_{r}" for r in retains}}


# MUSE publishes a target and a retrained Llama-2-7b per corpus (muse-bench on the hub).
_MUSE = {f"muse-{c.lower()}": {"target": f"muse-bench/MUSE-{c}_target",
                               "retain": f"muse-bench/MUSE-{c}_retrain"} for c in ("News", "Books")}

_TABLE = [
    ModelSpec("tiny", "Tiny Llama (4 layers, d=128) trained by the harness on the stand-ins",
              template="tiny-qa", tiny=TinyConfig()),
    ModelSpec("tiny-test", "Smaller tiny Llama for tests (2 layers, d=64, short recipe)",
              template="tiny-qa",
              tiny=TinyConfig(vocab_size=512, hidden_size=64, intermediate_size=128,
                              num_layers=2, num_heads=2, pretrain_epochs=2,
                              finetune_epochs=2, batch_size=16, replay=False)),
    ModelSpec("llama2-7b", "Llama-2-7b-chat (TOFU's main model; MUSE's published targets)",
              template="llama2-chat", hub_id="meta-llama/Llama-2-7b-chat-hf",
              checkpoints={"tofu": _tofu("Llama-2-7b-chat-hf"), **_MUSE}),
    ModelSpec("phi-1.5", "Phi-1.5 (1.3B), TOFU's small model", template="phi",
              hub_id="microsoft/phi-1_5", checkpoints={"tofu": _tofu("phi-1_5")}),
    ModelSpec("llama3.2-1b", "Llama-3.2-1B-Instruct", template="llama3-chat",
              hub_id="meta-llama/Llama-3.2-1B-Instruct",
              checkpoints={"tofu": _tofu("Llama-3.2-1B-Instruct")}),
    ModelSpec("llama3.2-3b", "Llama-3.2-3B-Instruct", template="llama3-chat",
              hub_id="meta-llama/Llama-3.2-3B-Instruct",
              checkpoints={"tofu": _tofu("Llama-3.2-3B-Instruct")}),
    ModelSpec("llama3.1-8b", "Llama-3.1-8B-Instruct", template="llama3-chat",
              hub_id="meta-llama/Llama-3.1-8B-Instruct",
              checkpoints={"tofu": _tofu("Llama-3.1-8B-Instruct")}),
    ModelSpec("zephyr-7b", "Zephyr-7B-beta (WMDP/RMU's model)", template="zephyr-chat",
              hub_id="HuggingFaceH4/zephyr-7b-beta"),
    ModelSpec("zephyr-7b-rmu",
              "cais/Zephyr_RMU: Zephyr-7B-beta after the WMDP paper's RMU (evaluate it as --role base)",
              template="zephyr-chat", hub_id="cais/Zephyr_RMU"),
    # Qwen and Gemma 3 instruct models (asked for in open-unlearning #173 / #175). No TOFU or
    # MUSE checkpoints are published for them: fine-tune your own target and name it in
    # unlearnbench.json, or rehearse one (`unlearnbench rehearse`).
    ModelSpec("qwen2.5-1.5b", "Qwen2.5-1.5B-Instruct (its chat template, with Qwen's default system prompt)",
              template="chat", hub_id="Qwen/Qwen2.5-1.5B-Instruct"),
    ModelSpec("qwen2.5-7b", "Qwen2.5-7B-Instruct", template="chat", hub_id="Qwen/Qwen2.5-7B-Instruct"),
    ModelSpec("qwen3-1.7b", "Qwen3-1.7B in non-thinking mode (chat template, enable_thinking=False)",
              template="qwen3-chat", hub_id="Qwen/Qwen3-1.7B"),
    ModelSpec("qwen3-8b", "Qwen3-8B in non-thinking mode", template="qwen3-chat", hub_id="Qwen/Qwen3-8B"),
    # gemma-3-1b-it is the text-only Gemma3ForCausalLM; the 4B and larger are image-text models.
    ModelSpec("gemma3-1b", "Gemma-3-1B-it (its chat template; eos <end_of_turn>)", template="chat",
              hub_id="google/gemma-3-1b-it"),
    ModelSpec("opt-1.3b", "OPT-1.3B (LLMU's small model)", template="phi", hub_id="facebook/opt-1.3b"),
    ModelSpec("opt-2.7b", "OPT-2.7B (LLMU's and FLAT's model)", template="phi", hub_id="facebook/opt-2.7b"),
]
for _spec in _TABLE:
    models.register(_spec.name, _spec)


# -- loading ----------------------------------------------------------------------------------
def default_dtype(spec=None) -> torch.dtype:
    import torch

    # bf16 on GPU as the papers train; fp32 on CPU where bf16 matmuls are slow and lossy.
    if torch.cuda.is_available():
        return getattr(torch, spec.gpu_dtype) if spec is not None else torch.bfloat16
    return torch.float32


def load_tokenizer(path: str, spec=None):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=bool(spec and spec.trust_remote_code))
    if tok.pad_token_id is None:
        # Safe because attention masks come from lengths, not from pad ids.
        tok.pad_token = tok.eos_token
    return tok


def load_model(path: str, spec=None, dtype: torch.dtype | None = None, device: str | None = None):
    """``AutoModelForCausalLM`` from a hub id or a directory, safetensors only."""
    from transformers import AutoModelForCausalLM

    local = Path(path).is_dir()
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=dtype or default_dtype(spec), use_safetensors=True,
        trust_remote_code=bool(spec and spec.trust_remote_code), local_files_only=local,
    )
    if device:
        model.to(device)
    return model
