"""Loading models and tokenizers by spec, hub id or local directory (offline-testable)."""

from __future__ import annotations

from pathlib import Path

import torch


def default_dtype(spec=None) -> torch.dtype:
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
