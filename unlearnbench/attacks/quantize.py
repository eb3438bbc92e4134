"""Weight-only quantisation attacks (Zhang et al., ICLR 2025: 4-bit quantisation restores much of
what utility-constrained unlearning removed).

On GPU with ``bitsandbytes`` installed the model is reloaded through transformers'
``BitsAndBytesConfig`` (LLM.int8 for 8 bits, NF4 for 4 bits), as a deployed model would be.
Elsewhere (the CPU stand-ins) the same attack is simulated by round-to-nearest (RTN)
symmetric quantisation per output channel of every ``nn.Linear`` weight except the output
head (which bitsandbytes also keeps in full precision), dequantised back into the float
weights: ``scale_r = max_j |W_rj| / (2^(b−1) − 1)``, ``W'_rj = scale_r · clamp(round(W_rj /
scale_r), −(2^(b−1) − 1), 2^(b−1) − 1)``, so ``|W − W'| ≤ scale_r / 2`` elementwise and each row
holds at most ``2^b − 1`` distinct values. Embeddings and norms stay as they are.
"""

from __future__ import annotations

import torch

from unlearnbench.attacks.base import Attack

BACKENDS = ("auto", "rtn", "bnb")


@torch.no_grad()
def rtn_per_channel(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """Round-to-nearest symmetric quantise-dequantise of a 2-D weight, one scale per output row."""
    if weight.ndim != 2:
        raise ValueError(f"rtn_per_channel expects a 2-D weight, got shape {tuple(weight.shape)}")
    if not 2 <= bits <= 16:
        raise ValueError(f"bits must be in [2, 16], got {bits}")
    qmax = 2 ** (bits - 1) - 1
    w = weight.float()
    scale = w.abs().amax(dim=1, keepdim=True) / qmax
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # an all-zero row stays zero
    q = torch.clamp(torch.round(w / scale), -qmax, qmax)
    return (q * scale).to(weight.dtype)


@torch.no_grad()
def quantise_linears(model, bits: int, skip=("lm_head",)) -> list[str]:
    """RTN-quantise every ``nn.Linear`` weight of ``model`` in place except the ``skip`` modules
    (and a weight tied to the input embeddings); returns the names quantised."""
    tied = model.get_input_embeddings().weight if hasattr(model, "get_input_embeddings") else None
    done = []
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear) or name.split(".")[-1] in skip:
            continue
        if tied is not None and module.weight is tied:
            continue
        module.weight.copy_(rtn_per_channel(module.weight, bits))
        done.append(name)
    return done


class Quantise(Attack):
    """Weight-only quantisation, then re-evaluation (``bits`` 8 or 4)."""

    defaults = {"backend": "auto"}
    bits = 8

    def __init__(self, **params):
        super().__init__(**params)
        if self.params["backend"] not in BACKENDS:  # checked when the grid is read, not hours later
            raise ValueError(f"attack {self.name!r}: backend must be one of {BACKENDS}, got {self.params['backend']!r}")
        self.used = None  # the backend that ran ("bnb" or "rtn"), recorded in the result

    def _use_bnb(self) -> bool:
        backend = self.params["backend"]
        if backend == "rtn":
            return False
        try:
            import bitsandbytes  # noqa: F401
            available = torch.cuda.is_available()
        except ImportError:
            available = False
        if backend == "bnb" and not available:
            raise ValueError(f"attack {self.name!r}: backend 'bnb' needs a CUDA GPU and the bitsandbytes "
                             "package (pip install bitsandbytes); use backend 'rtn' on CPU")
        return available

    def apply(self, model, *, tokenizer, encoder, bench, split, spec, seed, source: str | None = None):
        self.used = "bnb" if self._use_bnb() else "rtn"
        if self.used == "bnb":
            from transformers import AutoModelForCausalLM, BitsAndBytesConfig

            if source is None:
                raise ValueError(f"attack {self.name!r}: bitsandbytes reloads the model from its directory")
            config = (BitsAndBytesConfig(load_in_8bit=True) if self.bits == 8 else
                      BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                         bnb_4bit_compute_dtype=torch.bfloat16))
            return AutoModelForCausalLM.from_pretrained(source, quantization_config=config, device_map="auto")
        quantise_linears(model, self.bits)
        return model


class Quant8(Quantise):
    """8-bit weight-only quantisation (bitsandbytes LLM.int8 on GPU; RTN per output channel on CPU)."""

    name = "quant8"
    bits = 8


class Quant4(Quantise):
    """4-bit weight-only quantisation (bitsandbytes NF4 on GPU; RTN per output channel on CPU)."""

    name = "quant4"
    bits = 4
