"""RMU: steer forget activations at one layer to a random vector, keep retain activations (Li et al. 2024, WMDP).

``L = γ·MSE(h_ℓ(x_f), c·u/‖u‖) + λ·α·MSE(h_ℓ(x_r), h_ℓ^ref(x_r))`` with ``u ~ U[0,1)^d``
drawn once per run from a generator seeded by the method's ``seed``.

Defaults follow the WMDP code (``rmu/unlearn.py``: ``layer_id=7``, ``layer_ids=5,6,7``,
``param_ids=6``, ``steering_coeffs=20``, ``alpha=100``; docs/methods.md "RMU as in the WMDP paper"):

* ``h_ℓ`` is the output of decoder layer ``layer`` (0-based index into
  ``model.model.layers``), read with a forward hook as WMDP's ``forward_with_cache`` does;
  it equals ``hidden_states[layer + 1]`` of ``output_hidden_states=True`` except for the
  last layer, whose ``hidden_states`` entry has the final norm applied.
* Layer choice, :func:`default_layers`: ``layer = min(7, round_half_up(7·n/32))`` for a
  model with ``n`` decoder layers, and ``update_layers`` = ``layer − 2 .. layer`` clipped
  at 0. WMDP's 7 was chosen for zephyr-7b's 32 layers, so every model of 32 layers or
  more gets exactly WMDP's 7 and 5, 6, 7. A shallower model keeps the same relative
  depth, 7/32 ≈ 0.22 of the stack, instead of layer 7, which would sit in the middle of a
  16-layer model and be the last layer of an 8-layer one: phi-1.5 (24 layers) gets 5,
  Llama-3.2-1B (16) 4, ``tiny`` (4) 1, ``tiny-test`` (2) 0. ``layer`` overrides the
  rule (``layer=7`` is open-unlearning's setting on every model).
* Only the MLP output projection of ``update_layers`` moves, as WMDP's ``param_ids=[6]``
  (the 7th parameter of a Llama/Mistral decoder layer, ``mlp.down_proj.weight``): the
  first of ``MLP_OUT`` (``mlp.down_proj.weight``, Phi's ``mlp.fc2.weight``) the layers
  have. ``update_params`` overrides it with name substrings, or ``"all"`` for every
  parameter of those layers. Every other parameter has ``requires_grad`` False and is left
  out of the optimiser, so it stays bit-for-bit unchanged.
* MSE over all positions of the hidden states, prompt and answer alike (WMDP unlearns on
  raw corpus text, where every token counts), averaged over positions and hidden units;
  padding positions are left out (attention mask). WMDP's own ``F.mse_loss`` also
  averages over its left-padding positions, an artefact of batching that makes the loss
  depend on the batch's lengths; open-unlearning instead averages over answer tokens only
  (``labels != -100``). The retain target comes from the frozen reference model.
* ``steering_coeff`` c and ``alpha`` α are a pair tuned per model, never rescaled
  automatically. c is the norm of the target activation, so it only means something
  relative to the norm of ``h_ℓ`` on that model; α balances a retain MSE whose scale is
  that of ``h_ℓ`` itself. The defaults are the WMDP code's c = 20, α = 100 (the released
  zephyr-7b RMU model used c = 6.5, α = 1200). On a model of another activation scale
  measure ``‖h_ℓ(x_f)‖`` (``RMU.hidden``) and pass a pair: the tiny models' grid does
  (``benchmarks/default.yaml``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from unlearnbench.methods import losses
from unlearnbench.methods.base import UnlearningMethod
from unlearnbench.methods.settings import setting


# WMDP's code: hook layer 7 of zephyr-7b's 32 decoder layers.
WMDP_LAYER, WMDP_DEPTH = 7, 32
MLP_OUT = ("mlp.down_proj.weight", "mlp.fc2.weight")


def default_layers(n_layers: int) -> tuple[int, list[int]]:
    """(hooked layer, updated layers) for ``n_layers`` decoder layers: WMDP's 7 and 5-7, or its relative depth.

    ``layer = min(7, round_half_up(7·n_layers/32))``, updated layers ``layer-2 .. layer`` (≥ 0).
    """
    if n_layers < 1:
        raise ValueError(f"method 'rmu': the model has {n_layers} decoder layers; RMU needs at least 1")
    layer = min(WMDP_LAYER, math.floor(WMDP_LAYER * n_layers / WMDP_DEPTH + 0.5))
    return layer, list(range(max(0, layer - 2), layer + 1))


@dataclass
class RMUSettings:
    layer: int | None = setting(None, "decoder layer ℓ whose output is steered (0-based); unset: WMDP's 7 or its "
                                      "relative depth (default_layers)", range=">= 0")
    update_layers: list[int] | tuple[int, ...] | None = setting(None, "layers whose weights move; unset: "
                                                                      "layer − 2 .. layer")
    update_params: tuple[str, ...] | list[str] | str | None = setting(
        None, "name substrings of the parameters that move in update_layers, or all; unset: the MLP output "
              "projection")
    steering_coeff: float = setting(20.0, "c, norm of the random target activation (tuned per model with alpha)")
    alpha: float = setting(100.0, "α, weight of the retain activation MSE (tuned per model with steering_coeff)")


class RMU(UnlearningMethod):
    """RMU: MSE(h_ℓ(x_f), c·u/‖u‖) + α·MSE(h_ℓ(x_r), h_ℓ^ref(x_r)) at one layer (Li et al. 2024, WMDP)."""

    name = "rmu"
    supports_lora = False
    shapes = ("qa", "text")
    needs = ("retain",)
    needs_reference = True
    # "reference": open-unlearning's RMU (src/trainer/unlearn/rmu.py): the MSE over the scored
    # answer positions only, with its [B]/[B, 1] broadcast (losses.rmu_answer_mse).
    parities = ("paper", "reference")
    Settings = RMUSettings

    def __init__(self, model_path: str | None = None, **params):
        super().__init__(model_path, **params)
        s = self.settings
        layer, update_layers, update_params = s.layer, s.update_layers, s.update_params
        n_layers = len(self.model.model.layers)
        auto_layer, auto_update = default_layers(n_layers)
        self.layer = auto_layer if layer is None else int(layer)
        if not 0 <= self.layer < n_layers:
            raise ValueError(f"method 'rmu': layer {self.layer} out of range [0, {n_layers})")
        if update_layers is None:
            update_layers = auto_update if layer is None else range(max(0, self.layer - 2), self.layer + 1)
        self.update_layers = sorted({int(i) for i in update_layers})
        bad = [i for i in self.update_layers if not 0 <= i < n_layers]
        if bad or not self.update_layers:
            raise ValueError(f"method 'rmu': update_layers {bad or '[]'} invalid; "
                             f"the model has layers 0..{n_layers - 1}")
        if isinstance(update_params, str) and update_params != "all":
            update_params = (update_params,)
        self.update_params = tuple(update_params) if update_params not in (None, "all") else update_params
        if self.update_params is None:
            names = {n for i in self.update_layers for n, _ in self.model.model.layers[i].named_parameters()}
            found = [n for n in MLP_OUT if n in names]
            if not found:
                raise ValueError(f"method 'rmu': no MLP output projection ({', '.join(MLP_OUT)}) in layers "
                                 f"{self.update_layers}; pass update_params (name substrings, or 'all')")
            self.update_params = (found[0],)
        self.steering_coeff, self.alpha = s.steering_coeff, s.alpha
        g = torch.Generator().manual_seed(self.seed)
        control = losses.rmu_control_vector(self.model.config.hidden_size, self.steering_coeff, g)
        self.register_buffer("control", control, persistent=False)
        self.model.requires_grad_(False)
        for p in self._trainable():
            p.requires_grad_(True)

    @classmethod
    def trainable_share(cls, shape: dict, params: dict) -> float:
        """Three layers' MLP down projections by default (hidden × intermediate each; the
        config's intermediate size, else 8/3 of the hidden, Llama-1's); all of three layers'
        weights with ``update_params: all``."""
        h, n = shape["hidden"], shape["layers"]
        layer = (shape["params"] - 2 * shape["vocab"] * h) / n
        per_layer = (layer if params.get("update_params") == "all"
                     else h * (shape.get("intermediate") or round(8 * h / 3)))
        return min(1.0, 3 * per_layer / shape["params"])

    def _trainable(self) -> list[torch.nn.Parameter]:
        out = []
        for i in self.update_layers:
            for n, p in self.model.model.layers[i].named_parameters():
                if self.update_params == "all" or any(s in n for s in self.update_params):
                    out.append(p)
        if not out:
            raise ValueError(f"method 'rmu': update_params {self.update_params} match no "
                             f"parameter of layers {self.update_layers}")
        return out

    def param_groups(self) -> list[dict]:
        params = self._trainable()
        return [{"params": [p for p in params if p.ndim >= 2], "weight_decay": self.weight_decay},
                {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]

    def hidden(self, model, sub: dict) -> torch.Tensor:
        """Output of decoder layer ``self.layer`` of ``model`` on ``sub``, [B, T, D]."""
        cache = []

        def hook(_module, _inputs, output):
            cache.append(output[0] if isinstance(output, tuple) else output)

        handle = model.model.layers[self.layer].register_forward_hook(hook)
        try:
            model(input_ids=sub["input_ids"], attention_mask=sub["attention_mask"])
        finally:
            handle.remove()
        return cache[0]

    def loss(self, batch):
        f, r = self.sub(batch), self.retain_batch()
        h_f = self.hidden(self.model, f)
        h_r = self.hidden(self.model, r)
        with torch.no_grad():
            h_r_ref = self.hidden(self.ref_model, r)
        if self.parity == "reference":
            forget = losses.rmu_answer_mse(h_f, self.control.to(h_f.device).expand_as(h_f), f["labels"])
            retain = self.alpha * losses.rmu_answer_mse(h_r, h_r_ref.detach(), r["labels"])
        else:
            forget, retain = losses.rmu_loss(h_f, self.control, h_r, h_r_ref, self.alpha,
                                             forget_mask=f["attention_mask"], retain_mask=r["attention_mask"])
        return {"loss": self.gamma_forget * forget + self.lambda_retain * retain,
                "forget": forget, "retain": retain}
