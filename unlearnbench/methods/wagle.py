"""WAGLE: weight-attribution mask around any unlearning method (Jia et al. 2024).

Contract: ``shared/spec/methods.md``, section WAGLE. The inner method is held by
composition, never inherited: ``self.inner`` is a registered child LightningModule that
shares its model with WAGLE. Lightning's ``trainer`` setter and ``.to()`` propagate to
child LightningModules, so the inner's ``retain_batch``, ``device`` and ``global_rank``
work unchanged while WAGLE is the module attached to the Trainer.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import torch
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader

from unlearnbench.data.tofu import Collator
from unlearnbench.methods import losses
from unlearnbench.methods.base import UnlearningMethod, _count_tokens

MASKS = ("wagle", "random", "magnitude", "wanda", "dense")
_BASE_ARGS = set(inspect.signature(UnlearningMethod.__init__).parameters) - {"self", "model_path", "model"}


def wagle_score(theta, g_f, g_r, gamma: float) -> torch.Tensor:
    """``S = |θ·g_f − (1/γ)·g_r·g_f|`` elementwise, in float32 (spec step 2)."""
    theta, g_f, g_r = theta.detach().float(), g_f.float(), g_r.float()
    return (theta * g_f - g_r * g_f / gamma).abs()


def top_fraction(scores: dict[str, torch.Tensor], ratio: float) -> dict[str, torch.Tensor]:
    """Bool masks keeping exactly ``round(ratio·N)`` of the N scores, highest first, ranked
    globally over all tensors; ties at the threshold are taken in tensor/position order."""
    flat = torch.cat([s.detach().float().flatten().cpu() for s in scores.values()])
    n = flat.numel()
    k = min(n, max(1, round(ratio * n)))
    thr = torch.kthvalue(flat, n - k + 1).values  # the k-th largest score
    del flat
    out = {name: s.detach().float().cpu() > thr for name, s in scores.items()}
    need = k - sum(int(m.sum()) for m in out.values())
    for name, s in scores.items():
        if need <= 0:
            break
        tie = (s.detach().float().cpu() == thr).flatten()
        take = tie & (tie.cumsum(0) <= need)
        out[name] |= take.view_as(out[name])
        need -= int(take.sum())
    return out


def nll_grad(model, params: list, loader, device) -> tuple[list[torch.Tensor], int]:
    """Gradient (float32) w.r.t. ``params`` of the token-mean NLL over every scored answer
    token the loader yields (independent of batching), and the tokens read."""
    acc = [torch.zeros_like(p, dtype=torch.float32) for p in params]
    scored, seen = 0, 0
    with torch.enable_grad():
        for batch in loader:
            b = {k: batch[k].to(device) for k in ("input_ids", "attention_mask", "labels")}
            logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
            s, n = losses.sequence_nll(logits, b["labels"])
            # autograd.grad leaves .grad (and any DDP reducer hooks) untouched.
            for a, g in zip(acc, torch.autograd.grad(s.sum(), params, allow_unused=True)):
                if g is not None:
                    a += g.float()
            scored, seen = scored + int(n.sum()), seen + _count_tokens(b)
    for a in acc:
        a /= max(scored, 1)
    return acc, seen


@torch.no_grad()
def input_norms(model, loader, device) -> tuple[dict[int, torch.Tensor], int]:
    """Wanda: ``id(Linear.weight)`` -> L2 norm of the layer's input per input feature over
    the non-padding tokens the loader yields (forward hooks), and the tokens read."""
    sums: dict[int, torch.Tensor] = {}
    state: dict = {}

    def hook(mod, inp, out):
        x, am = inp[0].float(), state["mask"]
        x = x * am[..., None] if x.shape[:-1] == am.shape else x
        key = id(mod.weight)
        sums[key] = sums.get(key, 0) + x.pow(2).flatten(0, -2).sum(0)

    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, torch.nn.Linear)]
    seen = 0
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
    """WAGLE (Jia et al. 2024): only the top-``ratio`` weights by attribution score move.

    ``inner`` names the wrapped method (built with the shared options plus ``inner_params``);
    ``mask`` picks the scores: ``wagle`` (spec), or the baselines ``random``, ``magnitude``,
    ``wanda`` and ``dense`` (no mask). Masked-out weights stay bit-for-bit at ``θ_o``.
    """

    name = "wagle"

    def __init__(self, model_path: str | None = None, inner: str = "grad_diff", ratio: float = 0.95,
                 gamma: float = 1e-6, mask: str = "wagle", inner_params: dict | None = None,
                 save_masks: bool = False, **kw):
        from unlearnbench.registry import RegistryError, methods

        if mask not in MASKS:
            raise ValueError(f"method 'wagle': unknown mask {mask!r}; choose one of {', '.join(MASKS)}")
        if not 0 < ratio <= 1:
            raise ValueError(f"method 'wagle': ratio is the fraction of weights updated and must be in (0, 1], got {ratio}")
        if not gamma > 0:
            raise ValueError(f"method 'wagle': gamma (the diagonal Hessian γ) must be > 0, got {gamma}")
        try:
            inner_cls = methods.get(inner)
        except (KeyError, RegistryError) as exc:
            raise ValueError(f"method 'wagle': bad inner method: {exc}") from exc
        if isinstance(inner_cls, type) and issubclass(inner_cls, WAGLE):
            raise ValueError("method 'wagle' cannot wrap itself (inner='wagle'); choose another method, e.g. grad_diff or npo")
        inner_params = dict(inner_params or {})
        if clash := sorted(set(inner_params) & set(kw)):
            raise ValueError(f"method 'wagle': {clash} given both directly and in inner_params; give each once")
        # Every option reaches the inner method; the shared-loop ones also configure WAGLE.
        inner_m = inner_cls(model_path=model_path, **kw, **inner_params)
        super().__init__(model_path, model=inner_m.model, **{k: v for k, v in kw.items() if k in _BASE_ARGS})
        self.inner = inner_m  # a child module: the Trainer reaches it too
        self.needs, self.needs_reference = inner_m.needs, inner_m.needs_reference
        self.ref_model = inner_m.ref_model
        self.inner_name, self.mask_kind, self.ratio, self.gamma = inner, mask, float(ratio), float(gamma)
        self.save_masks = save_masks
        self.masks: dict[str, torch.Tensor] = {}
        self.mask_density: float | None = None
        self._mask_of: dict[int, torch.Tensor] = {}
        self._decay: dict[int, float] = {}

    # The inner counts the retain tokens it draws; the cost is the sum of both counters.
    @property
    def tokens_seen(self) -> int:
        inner = self._modules.get("inner")
        return self._own_tokens + (inner.tokens_seen if inner is not None else 0)

    @tokens_seen.setter
    def tokens_seen(self, value: int) -> None:
        inner = self._modules.get("inner")
        self._own_tokens = value - (inner.tokens_seen if inner is not None else 0)

    def loss(self, batch):
        return self.inner.loss(batch)

    # -- the mask --------------------------------------------------------------
    def compute_masks(self, dm) -> dict[str, torch.Tensor]:
        """Score every trainable weight at the current (starting) weights and keep the top
        ``ratio``; sets ``masks``, ``mask_density`` and returns ``masks``."""
        named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        if any(type(p).__name__ == "DTensor" for _, p in named):
            raise NotImplementedError("method 'wagle': sharded (FSDP) parameters are not supported; use strategy single or ddp")
        kind = self.mask_kind
        load = lambda ds: DataLoader(ds, batch_size=self.batch_size, shuffle=False,  # noqa: E731
                                     collate_fn=Collator(dm.encoder))
        self.model.eval()  # no dropout while scoring
        if kind == "dense":
            scores = None
        elif kind == "wagle":
            g_f, seen_f = nll_grad(self.model, [p for _, p in named], load(dm.forget_set), self.device)
            g_r, seen_r = nll_grad(self.model, [p for _, p in named], load(dm.retain_set), self.device)
            self._own_tokens += seen_f + seen_r
            scores = {n: wagle_score(p, gf, gr, self.gamma) for (n, p), gf, gr in zip(named, g_f, g_r)}
            del g_f, g_r
        elif kind == "random":
            gen = torch.Generator().manual_seed(self.seed)
            scores = {n: torch.rand(p.shape, generator=gen) for n, p in named}
        elif kind == "magnitude":
            scores = {n: p.detach().abs() for n, p in named}
        else:  # wanda: |θ|·‖X‖ for Linear weights, |θ| for every other tensor
            norms, seen = input_norms(self.model, load(dm.forget_set), self.device)
            self._own_tokens += seen
            scores = {n: p.detach().float().abs() * norms[id(p)] if id(p) in norms and p.ndim == 2
                      else p.detach().abs() for n, p in named}
        kept = top_fraction(scores, self.ratio) if scores is not None else {}
        self.masks = {n: kept[n].to(p.device) if n in kept else torch.ones_like(p, dtype=torch.bool)
                      for n, p in named}
        self._mask_of = {id(p): self.masks[n] for n, p in named}
        total = sum(m.numel() for m in self.masks.values())
        self.mask_density = sum(int(m.sum()) for m in self.masks.values()) / max(total, 1)
        rank_zero_info(f"wagle: {kind} mask updates {self.mask_density:.4f} of {total} weights "
                       f"(ratio {self.ratio}, inner {self.inner_name!r})")
        return self.masks

    def on_fit_start(self) -> None:
        self.compute_masks(self.trainer.datamodule)  # at θ_o, before any step
        super().on_fit_start()
        self.inner.on_fit_start()

    # -- training hooks ----------------------------------------------------------
    def param_groups(self) -> list[dict]:
        """The inner's groups with weight decay 0: WAGLE decays masked-in weights itself."""
        groups = self.inner.param_groups()
        if self.mask_kind == "dense":
            return groups
        for g in groups:
            g["params"] = list(g["params"])
            for p in g["params"]:
                self._decay[id(p)] = g.get("weight_decay", 0.01)  # 0.01: AdamW's default
            g["weight_decay"] = 0.0
        return groups

    @torch.no_grad()
    def mask_gradients(self) -> None:
        """After clipping, before the step: zero masked-out grads and apply AdamW's decoupled
        decay ``θ ← θ·(1 − lr_t·wd)`` to masked-in weights only. With a zero grad and zero
        moments Adam's update is exactly 0, so masked-out weights never move."""
        self.inner.mask_gradients()
        if self.mask_kind == "dense":
            return
        for opt in self.trainer.optimizers:
            for group in opt.param_groups:
                for p in group["params"]:
                    m = self._mask_of.get(id(p))
                    if p.grad is None or m is None:
                        continue  # AdamW skips (and does not decay) a param with no grad
                    p.grad.masked_fill_(~m, 0)
                    decay = group["lr"] * self._decay.get(id(p), 0.0)
                    if decay:
                        p.copy_(torch.where(m, p * (1 - decay), p))

    # -- saving ----------------------------------------------------------------
    def save_unlearned(self, path) -> None:
        """The model, plus ``wagle_mask.json`` (densities) and, with ``save_masks``,
        ``wagle_masks.safetensors`` in the run directory (the parent of ``path``), so
        that the model directory stays loadable by tools that read every safetensors file."""
        super().save_unlearned(path)
        if self.global_rank != 0 or not self.masks:
            return
        run_dir = Path(path).parent
        stats = {"inner": self.inner_name, "mask": self.mask_kind, "ratio": self.ratio,
                 "gamma": self.gamma, "density": self.mask_density,
                 "per_tensor": {n: float(m.float().mean()) for n, m in self.masks.items()}}
        (run_dir / "wagle_mask.json").write_text(json.dumps(stats, indent=2))
        if self.save_masks:
            from safetensors.torch import save_file

            save_file({n: m.contiguous().cpu() for n, m in self.masks.items()}, str(run_dir / "wagle_masks.safetensors"))
