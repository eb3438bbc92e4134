"""WAGLE: weight-attribution mask around any unlearning method (Jia et al. 2024).

Contract: ``shared/spec/methods.md``, WAGLE. The inner method is a registered child module
sharing WAGLE's model; Lightning's ``trainer`` setter and ``.to()`` propagate to child
LightningModules, so the inner's ``retain_batch``, ``device``, ``global_rank`` just work."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import torch
from lightning.pytorch.utilities import rank_zero_info

from unlearnbench.methods import losses
from unlearnbench.methods.base import UnlearningMethod, _count_tokens

MASKS = ("wagle", "random", "magnitude", "wanda", "dense")
_BASE_ARGS = set(inspect.signature(UnlearningMethod.__init__).parameters) - {"self", "model_path", "model"}


def wagle_score(theta, g_f, g_r, gamma: float) -> torch.Tensor:
    """``S = |θ·g_f − (1/γ)·g_r·g_f|`` elementwise, in float32 (spec step 2)."""
    return (theta.detach().float() * g_f.float() - g_r.float() * g_f.float() / gamma).abs()


def top_fraction(scores: dict[str, torch.Tensor], ratio: float) -> dict[str, torch.Tensor]:
    """Bool masks keeping exactly ``round(ratio·N)`` of all N scores, highest first, ranked
    globally over every tensor; ties at the threshold are taken in tensor/position order."""
    flat = torch.cat([s.detach().float().flatten().cpu() for s in scores.values()])
    k = min(flat.numel(), max(1, round(ratio * flat.numel())))
    thr, flat = torch.kthvalue(flat, flat.numel() - k + 1).values, None  # the k-th largest score
    out = {name: s.detach().float().cpu() > thr for name, s in scores.items()}
    need = k - sum(int(m.sum()) for m in out.values())
    for name, s in scores.items():
        tie = (s.detach().float().cpu() == thr).flatten()
        take = tie & (tie.cumsum(0) <= need)
        out[name] |= take.view_as(out[name])
        need -= int(take.sum())
    return out


def nll_grad(model, params: list, loader, device) -> tuple[list[torch.Tensor], int]:
    """Float32 gradient w.r.t. ``params`` of the token-mean NLL over every scored answer token
    the loader yields (whatever the batching; ``.grad`` untouched), and the tokens read."""
    acc = [torch.zeros_like(p, dtype=torch.float32) for p in params]
    scored = seen = 0
    with torch.enable_grad():
        for batch in loader:
            b = {k: batch[k].to(device) for k in ("input_ids", "attention_mask", "labels")}
            s, n = losses.sequence_nll(model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits,
                                       b["labels"])
            for a, g in zip(acc, torch.autograd.grad(s.sum(), params, allow_unused=True, materialize_grads=True)):
                a += g.float()
            scored, seen = scored + int(n.sum()), seen + _count_tokens(b)
    return [a / max(scored, 1) for a in acc], seen


@torch.no_grad()
def input_norms(model, loader, device) -> tuple[dict[int, torch.Tensor], int]:
    """Wanda: ``id(Linear.weight)`` -> L2 norm per input feature of the layer's input over
    the non-padding tokens the loader yields (forward hooks), and the tokens read."""
    sums, state, seen = {}, {}, 0

    def hook(mod, inp, out):
        x, am = inp[0].float(), state["mask"]
        x = x * am[..., None] if x.shape[:-1] == am.shape else x
        sums[id(mod.weight)] = sums.get(id(mod.weight), 0) + x.pow(2).flatten(0, -2).sum(0)

    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, torch.nn.Linear)]
    try:
        for batch in loader:
            ids, am = batch["input_ids"].to(device), batch["attention_mask"].to(device)
            state["mask"] = am.float()
            model(input_ids=ids, attention_mask=am)
            seen += int(am.sum())
    finally:
        for h in hooks:
            h.remove()
    return {k: v.sqrt() for k, v in sums.items()}, seen


class WAGLE(UnlearningMethod):
    """WAGLE: weight-attribution mask around any unlearning method (Jia et al. 2024).

    Only the top-``ratio`` weights move; the rest stay bit-for-bit. ``inner`` gets every option
    plus ``inner_params``; ``mask``: ``wagle`` or ``random``/``magnitude``/``wanda``/``dense``."""

    name = "wagle"

    @classmethod
    def supports(cls, shape: str, params: dict | None = None) -> bool:
        """WAGLE trains on whatever its inner method trains on."""
        from unlearnbench.registry import methods

        inner = methods.get((params or {}).get("inner", "grad_diff"))
        return isinstance(inner, type) and inner is not cls and inner.supports(shape, (params or {}).get("inner_params"))

    def __init__(self, model_path: str | None = None, inner: str = "grad_diff", ratio: float = 0.95,
                 gamma: float = 1e-6, mask: str = "wagle", inner_params: dict | None = None,
                 save_masks: bool = False, **kw):
        from unlearnbench.registry import methods
        if mask not in MASKS:
            raise ValueError(f"method 'wagle': unknown mask {mask!r}; choose one of {', '.join(MASKS)}")
        if not 0 < ratio <= 1:
            raise ValueError(f"method 'wagle': ratio (fraction of weights updated) must be in (0, 1], got {ratio}")
        if not gamma > 0:
            raise ValueError(f"method 'wagle': gamma (the diagonal Hessian γ) must be > 0, got {gamma}")
        inner_cls = methods.get(inner)  # an unknown name raises the registry's error, with suggestions
        if isinstance(inner_cls, type) and issubclass(inner_cls, WAGLE):
            raise ValueError("method 'wagle' cannot wrap itself (inner='wagle'); choose e.g. grad_diff or npo")
        if clash := sorted(set(inner_params := dict(inner_params or {})) & set(kw)):
            raise ValueError(f"method 'wagle': {clash} given both directly and in inner_params; give each once")
        inner_m = inner_cls(model_path=model_path, **kw, **inner_params)
        super().__init__(model_path, model=inner_m.model, **{k: v for k, v in kw.items() if k in _BASE_ARGS})
        self.inner = inner_m  # a child module, so the Trainer reaches it too
        self.needs, self.needs_reference, self.ref_model = inner_m.needs, inner_m.needs_reference, inner_m.ref_model
        self.inner_name, self.mask_kind, self.ratio, self.gamma = inner, mask, float(ratio), float(gamma)
        self.save_masks, self.masks, self.mask_density, self._mask_of, self._decay = save_masks, {}, None, {}, {}

    @property
    def tokens_seen(self) -> int:  # the inner counts the retain tokens it draws: add both
        return self._own_tokens + getattr(self._modules.get("inner"), "tokens_seen", 0)

    @tokens_seen.setter
    def tokens_seen(self, value: int) -> None:
        self._own_tokens = value - getattr(self._modules.get("inner"), "tokens_seen", 0)

    def loss(self, batch):
        return self.inner.loss(batch)

    def compute_masks(self, dm) -> dict[str, torch.Tensor]:
        """Score every trainable weight at the current weights on ``dm``'s forget / retain
        data, keep the top ``ratio``; sets ``masks`` and ``mask_density``."""
        named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        if any(type(p).__name__ == "DTensor" for _, p in named):
            raise NotImplementedError("method 'wagle': FSDP-sharded parameters are not supported; use single or ddp")
        load = lambda which: dm.plain_loader(which, self.batch_size)  # noqa: E731
        params, kind, scores = [p for _, p in named], self.mask_kind, None
        self.model.eval()  # no dropout while scoring
        if kind == "wagle":
            (g_f, seen_f), (g_r, seen_r) = (nll_grad(self.model, params, load(which), self.device)
                                            for which in ("forget", "retain"))
            self._own_tokens += seen_f + seen_r
            scores = {n: wagle_score(p, g_f.pop(0), g_r.pop(0), self.gamma) for n, p in named}  # frees as it goes
        elif kind == "random":
            gen = torch.Generator().manual_seed(self.seed)
            scores = {n: torch.rand(p.shape, generator=gen) for n, p in named}
        elif kind == "magnitude":
            scores = {n: p.detach().abs() for n, p in named}
        elif kind == "wanda":  # |θ|·‖X‖ for Linear weights, |θ| for every other tensor
            norms, seen = input_norms(self.model, load("forget"), self.device)
            self._own_tokens += seen
            scores = {n: p.detach().float().abs() * norms[id(p)] if id(p) in norms and p.ndim == 2
                      else p.detach().abs() for n, p in named}
        kept = top_fraction(scores, self.ratio) if scores is not None else {}
        self.masks = {n: kept[n].to(p.device) if kept else torch.ones_like(p, dtype=torch.bool) for n, p in named}
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            for m in self.masks.values():  # one mask for all ranks, even if scores differ by noise
                torch.distributed.broadcast(m.view(torch.uint8), src=0)
        self._mask_of = {id(p): self.masks[n] for n, p in named if kept}  # dense: nothing to mask
        self.mask_density = sum(int(m.sum()) for m in self.masks.values()) / max(1, sum(m.numel() for m in self.masks.values()))
        rank_zero_info(f"wagle: {kind} mask updates {self.mask_density:.4f} of the weights (ratio {self.ratio})")
        return self.masks

    def on_fit_start(self) -> None:
        self.compute_masks(self.trainer.datamodule)  # at θ_o, before any step
        super().on_fit_start()
        self.inner.on_fit_start()

    def param_groups(self) -> list[dict]:
        """The inner's groups with weight decay 0: WAGLE decays masked-in weights itself."""
        groups = self.inner.param_groups()
        for g in groups if self.mask_kind != "dense" else ():
            g["params"] = list(g["params"])
            self._decay.update({id(p): g.get("weight_decay", 0.01) for p in g["params"]})  # AdamW's default
            g["weight_decay"] = 0.0
        return groups

    @torch.no_grad()
    def mask_gradients(self) -> None:
        """After clipping, before the step: zero masked-out grads; AdamW's decoupled decay
        ``θ ← θ·(1 − lr_t·wd)`` on masked-in weights only (zero grad + zero moments: no move)."""
        self.inner.mask_gradients()
        for group in (g for opt in self.trainer.optimizers for g in opt.param_groups):
            for p in group["params"]:
                if p.grad is None or (m := self._mask_of.get(id(p))) is None:
                    continue  # AdamW skips (and does not decay) a param without grad
                p.grad.masked_fill_(~m, 0)
                if decay := group["lr"] * self._decay.get(id(p), 0.0):
                    p.copy_(torch.where(m, p * (1 - decay), p))

    def save_unlearned(self, path) -> None:
        """Model; then ``wagle_mask.json`` (densities) and, with ``save_masks``, ``wagle_masks
        .safetensors`` in the run dir (``path``'s parent): the model dir stays a clean HF dir."""
        super().save_unlearned(path)
        if self.global_rank != 0 or not self.masks:
            return
        run_dir = Path(path).parent
        stats = {"inner": self.inner_name, "mask": self.mask_kind, "ratio": self.ratio, "gamma": self.gamma,
                 "density": self.mask_density, "per_tensor": {n: float(m.float().mean()) for n, m in self.masks.items()}}
        (run_dir / "wagle_mask.json").write_text(json.dumps(stats, indent=2))
        if self.save_masks:
            from safetensors.torch import save_file
            save_file({n: m.contiguous().cpu() for n, m in self.masks.items()}, str(run_dir / "wagle_masks.safetensors"))
