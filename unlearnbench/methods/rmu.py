"""RMU: steer forget activations at one layer to a random vector, keep retain activations (Li et al. 2024, WMDP).

``L = γ·MSE(h_ℓ(x_f), c·u/‖u‖) + λ·α·MSE(h_ℓ(x_r), h_ℓ^ref(x_r))`` with ``u ~ U[0,1)^d``
drawn once per run from a generator seeded by the method's ``seed``.

* ``h_ℓ`` is the output of decoder layer ``layer`` (0-based index into
  ``model.model.layers``), read with a forward hook as WMDP's ``forward_with_cache`` does;
  it equals ``hidden_states[layer + 1]`` of ``output_hidden_states=True`` except for the
  last layer, whose ``hidden_states`` entry has the final norm applied. ``layer=None``
  picks the middle layer ``num_layers // 2`` (``tiny-test``, 2 layers: 1; WMDP used 7 of
  zephyr's 32).
* Only the parameters of ``update_layers`` move (default: ``layer`` and the two before it,
  clipped at 0, as WMDP's ``layer_ids``); every other parameter has ``requires_grad``
  False and is left out of the optimiser, so it stays bit-for-bit unchanged. WMDP further
  restricts to one matrix per layer (``param_ids=[6]``, the MLP down projection); pass
  ``update_params=("mlp.down_proj",)`` for that (names matched as substrings).
* Both MSEs skip padding positions (attention mask); the retain target comes from the
  frozen reference model.
* ``steering_coeff`` 6.5 is the WMDP paper's value for zephyr-7b; ``alpha`` 100 is the
  WMDP code's default retain weight.
"""

from __future__ import annotations

import torch

from unlearnbench.methods import losses
from unlearnbench.methods.base import UnlearningMethod


class RMU(UnlearningMethod):
    """RMU: MSE(h_ℓ(x_f), c·u/‖u‖) + α·MSE(h_ℓ(x_r), h_ℓ^ref(x_r)) at one layer (Li et al. 2024, WMDP)."""

    name = "rmu"
    shapes = ("qa", "text")
    needs = ("retain",)
    needs_reference = True

    def __init__(self, model_path: str | None = None, *, layer: int | None = None,
                 update_layers: list[int] | tuple[int, ...] | None = None,
                 update_params: tuple[str, ...] | list[str] | None = None,
                 steering_coeff: float = 6.5, alpha: float = 100.0, **kwargs):
        super().__init__(model_path, **kwargs)
        n_layers = len(self.model.model.layers)
        self.layer = n_layers // 2 if layer is None else int(layer)
        if not 0 <= self.layer < n_layers:
            raise ValueError(f"method 'rmu': layer {self.layer} out of range [0, {n_layers})")
        if update_layers is None:
            update_layers = range(max(0, self.layer - 2), self.layer + 1)
        self.update_layers = sorted({int(i) for i in update_layers})
        bad = [i for i in self.update_layers if not 0 <= i < n_layers]
        if bad or not self.update_layers:
            raise ValueError(f"method 'rmu': update_layers {bad or '[]'} invalid; "
                             f"the model has layers 0..{n_layers - 1}")
        self.update_params = tuple(update_params) if update_params else None
        self.steering_coeff, self.alpha = float(steering_coeff), float(alpha)
        g = torch.Generator().manual_seed(self.seed)
        control = losses.rmu_control_vector(self.model.config.hidden_size, self.steering_coeff, g)
        self.register_buffer("control", control, persistent=False)
        self.model.requires_grad_(False)
        for p in self._trainable():
            p.requires_grad_(True)

    def _trainable(self) -> list[torch.nn.Parameter]:
        out = []
        for i in self.update_layers:
            for n, p in self.model.model.layers[i].named_parameters():
                if self.update_params is None or any(s in n for s in self.update_params):
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
        forget, retain = losses.rmu_loss(h_f, self.control, h_r, h_r_ref, self.alpha,
                                         forget_mask=f["attention_mask"], retain_mask=r["attention_mask"])
        return {"loss": self.gamma_forget * forget + self.lambda_retain * retain,
                "forget": forget, "retain": retain}
