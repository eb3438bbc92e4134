"""WAGLE: weight-attribution mask around any unlearning method (Jia et al. 2024).

Contract: docs/methods.md, WAGLE. The inner method is a registered child module
sharing WAGLE's model; Lightning's ``trainer`` setter and ``.to()`` propagate to child
LightningModules, so the inner's ``retain_batch``, ``device``, ``global_rank`` just work.

Scale of γ against the public code. The authors' code (OPTML-Group/WAGLE,
``src/unlearn/generate_mask.py``, ``snip_advanced``) scores ``|(θ − g_r/μ)·g_f|`` with
``μ`` (``mu``, 1e-6 in its TOFU configs), i.e. our formula with γ = μ, but its ``g_f``
and ``g_r`` are *sums* over the N mask-generation batches of each batch's mean loss
gradient (batch size 1 in its TOFU configs: a sum over examples), while ours are the
token-mean gradient over the whole set. Since ``g_code ≈ N·g_ours``, its score is
``N·|θ·g_f − (N/μ)·g_r·g_f|`` in our terms: the same ranking as ours with ``γ = μ/N``.
With TOFU forget10 (N = 400) μ = 1e-6 is γ = 2.5e-9; at either value the second term
dominates, so the mask ranks ``|g_r·g_f|``. It also pairs each forget batch with one
retain batch (N retain examples); we use the whole retain set.

FSDP2 (``strategy: fsdp``): parameters are DTensors sharded by rows over the data-parallel
mesh. Each rank scores ``rows[rank::world]`` of the forget and retain sets (the same number
of batches on every rank, FSDP's collectives need it), the gradients are FSDP's reduced
shards rescaled to the token mean over the whole set, scores are elementwise and so are
computed on each rank's shards, and :func:`top_fraction_sharded` finds the global top
``ratio`` with collectives, breaking ties in the same order as :func:`top_fraction`. No rank
ever holds the full model, gradient or score vector; each keeps the mask of its own shard.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader

from unlearnbench.methods import losses
from unlearnbench.methods import settings as S
from unlearnbench.methods.base import UnlearningMethod, _count_tokens
from unlearnbench.methods.settings import setting
from unlearnbench.methods.wagle_masks import (  # noqa: F401 (re-exported: the public mask functions)
    row_block, top_fraction, top_fraction_sharded, top_per_row, wagle_score)
from unlearnbench.parallel import initialized

MASKS = ("wagle", "random", "magnitude", "wanda", "dense")
# Settings of the training loop WAGLE runs for the inner method (optimiser, schedule, batch,
# seed, how the model is held, data): the inner's copy would be ignored, so inner_params may
# not carry them. The inner's own loss weights (gamma_forget, lambda_retain) do reach its loss
# and stay allowed, and so does its parity.
LOOP_KEYS = tuple(sorted({*S.names(S.LoopSettings, S.RunOptions), "dtype", "ref_dtype"} - {"parity"})) + (
    "k_random", "template", "max_steps", "micro_batch_size")


@dataclass
class WAGLESettings:
    inner: str = setting("grad_diff", "the unlearning method whose update is masked (any registered one but wagle)")
    ratio: float = setting(0.95, "fraction of the weights updated (the top of the score)", range="(0, 1]")
    gamma: float = setting(1e-6, "γ, the diagonal Hessian in the attribution score", range="> 0")
    mask: str = setting("wagle", "wagle (weight attribution), or the baselines random, magnitude, wanda, dense",
                        choices=MASKS)
    inner_params: dict | None = setting(None, "the inner method's own settings (loop settings such as lr belong "
                                              "at the top level)")
    save_masks: bool = setting(False, "also write the masks (wagle_masks.safetensors) in the run dir")


def decoder_linears(model) -> dict[str, torch.nn.Linear]:
    """``weight`` parameter name -> module, for every Linear inside a decoder block (Wanda's scope)."""
    blocks = model.model.layers
    prefix = next(n for n, m in model.named_modules() if m is blocks)
    return {f"{prefix}.{i}.{n}.weight": m for i, block in enumerate(blocks)
            for n, m in block.named_modules() if isinstance(m, torch.nn.Linear)}


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


def shard_batches(dataset, collate, batch_size: int, rank: int, world: int):
    """``(batch, weight)`` over this rank's ``rows[rank::world]``; ranks with fewer batches get
    weight-0 copies of row 0, so every rank runs as many forward/backward passes (FSDP2)."""
    mine = list(range(rank, len(dataset), world))
    n_batches = math.ceil(math.ceil(len(dataset) / world) / batch_size)
    for b in range(n_batches):
        rows = mine[b * batch_size:(b + 1) * batch_size]
        yield (collate([dataset[i] for i in rows]), 1.0) if rows else (collate([dataset[0]]), 0.0)


def nll_grad_sharded(model, params: list, batches, device, world: int) -> tuple[list[torch.Tensor], int]:
    """:func:`nll_grad` for FSDP2: each rank's ``batches`` (from :func:`shard_batches`), local
    float32 gradient shards of the token-mean NLL over all ranks' tokens; ``.grad`` restored."""
    saved = [p.grad for p in params]
    scored, seen = torch.zeros((), dtype=torch.float64, device=device), 0
    try:
        for p in params:
            p.grad = None
        with torch.enable_grad():
            for batch, weight in batches:
                b = {k: batch[k].to(device) for k in ("input_ids", "attention_mask", "labels")}
                s, n = losses.sequence_nll(model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits,
                                           b["labels"])
                (s.sum() * weight).backward()  # FSDP2 reduce-scatters the mean over ranks into .grad
                scored += weight * n.sum()
                seen += int(weight) * _count_tokens(b)
        torch.distributed.all_reduce(scored, group=params[0].device_mesh.get_group())
        scale = world / max(float(scored), 1.0)  # mean over ranks -> sum -> token mean
        grads = [p.grad.to_local().float() * scale if p.grad is not None
                 else torch.zeros_like(p.to_local(), dtype=torch.float32) for p in params]
    finally:
        for p, g in zip(params, saved):
            p.grad = g
    return grads, seen


@torch.no_grad()
def input_norms(model, batches, device, group=None) -> tuple[dict[str, torch.Tensor], int]:
    """Wanda's ``‖X_j‖₂``: per decoder-block Linear weight name, the L2 norm per input feature
    of the layer's input over the non-padding tokens of ``(batch, weight)`` pairs (summed
    over the ranks of ``group`` when given), and the tokens read."""
    linears = decoder_linears(model)
    sums = {n: torch.zeros(m.in_features, dtype=torch.float32, device=device) for n, m in linears.items()}
    state, seen = {}, 0

    def hook(name):
        def add(mod, inp, out):
            x, mask = inp[0].float(), state["mask"]
            if x.shape[:-1] != mask.shape:
                raise ValueError(f"wanda: input of {name} has shape {tuple(x.shape)}, expected "
                                 f"[batch, tokens, features] matching the attention mask {tuple(mask.shape)}")
            sums[name] += (x * mask[..., None]).pow(2).flatten(0, -2).sum(0)
        return add

    hooks = [m.register_forward_hook(hook(n)) for n, m in linears.items()]
    try:
        for batch, weight in batches:
            ids, am = batch["input_ids"].to(device), batch["attention_mask"].to(device)
            state["mask"] = am.float() * weight
            model(input_ids=ids, attention_mask=am)
            seen += int(weight) * int(am.sum())
    finally:
        for h in hooks:
            h.remove()
    if group is not None:
        for v in sums.values():
            torch.distributed.all_reduce(v, group=group)
    return {k: v.sqrt() for k, v in sums.items()}, seen


def _local(p) -> torch.Tensor:
    return p.to_local() if _is_dtensor(p) else p


def _is_dtensor(p) -> bool:
    return type(p).__name__ == "DTensor"


class WAGLE(UnlearningMethod):
    """WAGLE: weight-attribution mask around any unlearning method (Jia et al. 2024).

    Only the top-``ratio`` weights move; the rest stay bit-for-bit. ``inner`` gets every option
    plus ``inner_params`` (the inner's own options; loop settings such as ``lr`` belong at the
    top level). ``mask``: ``wagle`` or the baselines ``random``/``magnitude``/``wanda``/``dense``.

    Baselines at the same budget: ``random`` and ``magnitude`` (``|θ|``) rank every trainable
    weight globally, like ``wagle``. ``wanda`` scores ``|W_ij|·‖X_j‖₂`` (``X_j`` the j-th
    input feature of the layer over the forget set's non-padding tokens) and compares each
    output row of each Linear inside the decoder blocks, keeping ``ratio`` of every row, as
    Wanda prunes (locuslab/wanda ``prune_wanda``). Wanda has no score for other tensors
    (embeddings, norms, ``lm_head``, biases), and they are always updated, as in the authors'
    WAGLE code (its ``mask_gradient`` with ``if_wanda`` masks only decoder Linear weights):
    the budget applies to the weights the method compares, and freezing the rest would mix a
    second intervention (frozen embeddings and norms) into the baseline. ``mask_density``
    therefore counts all trainable weights and exceeds ``ratio`` for ``wanda``;
    ``wagle_mask.json`` also gives the density over the compared weights.
    """

    name = "wagle"
    Settings = WAGLESettings
    delegates_to = "inner"  # keywords WAGLE does not take go to its inner method
    supports_lora = False
    # "reference": as OPTML-Group/WAGLE @31275e8 runs it. Its BaseTrainer zeroes masked-out
    # gradients and then takes a plain AdamW step, so weight decay also shrinks the masked-out
    # weights; and the inner method takes its "wagle" parity where it has one (NPO, NPO-RT:
    # token-mean NPO; IdkPO: the sum of two means, WAGLE's PO).
    parities = ("paper", "reference")

    @classmethod
    def supports(cls, shape: str, params: dict | None = None) -> bool:
        """WAGLE trains on whatever its inner method trains on."""
        from unlearnbench.registry import methods

        inner = methods.get((params or {}).get("inner", WAGLESettings.inner))
        return (isinstance(inner, type) and inner is not cls
                and inner.supports(shape, (params or {}).get("inner_params")))

    def __init__(self, model_path: str | None = None, **params):
        """``params``: WAGLE's settings, the shared ones (WAGLE runs the loop; the inner method
        gets them too) and, flat, any other the inner method takes."""
        from unlearnbench.registry import methods

        mine = {k: params.pop(k) for k in S.names(WAGLESettings) if k in params}
        own = WAGLESettings(**mine)
        S.check(own, self.name)  # before the inner method loads the model
        parity, kw = params.pop("parity", "paper"), params
        inner = own.inner
        inner_cls = methods.get(inner)  # an unknown name raises the registry's error, with suggestions
        if isinstance(inner_cls, type) and issubclass(inner_cls, WAGLE):
            raise ValueError("method 'wagle' cannot wrap itself (inner='wagle'); choose e.g. grad_diff or npo")
        inner_params = dict(own.inner_params or {})
        if parity == "reference" and "wagle" in getattr(inner_cls, "parities", ()) and "parity" not in inner_params:
            inner_params["parity"] = "wagle"
        if loop := [k for k in inner_params if k in LOOP_KEYS]:
            raise ValueError(f"method 'wagle': inner_params {loop} {'is a' if len(loop) == 1 else 'are'} shared "
                             f"training-loop setting{'s' * (len(loop) > 1)} that WAGLE runs for the inner method, "
                             f"so it would be ignored there; set {', '.join(loop)} at the top level "
                             f"(e.g. --set {loop[0]}=...), not in inner_params")
        if clash := sorted(set(inner_params) & set(kw)):
            raise ValueError(f"method 'wagle': {clash} given both directly and in inner_params; give each once")
        inner_m = inner_cls(model_path=model_path, **kw, **inner_params)
        shared = {*S.names(*S.SHARED), "dtype", "ref_dtype"}
        super().__init__(model_path, model=inner_m.model, parity=parity, **mine,
                         **{k: v for k, v in kw.items() if k in shared})
        self.inner = inner_m  # a child module, so the Trainer reaches it too
        self.needs, self.needs_reference, self.ref_model = inner_m.needs, inner_m.needs_reference, inner_m.ref_model
        self.inner_name, self.mask_kind, self.ratio, self.gamma = inner, own.mask, float(own.ratio), float(own.gamma)
        self.save_masks, self.masks, self.mask_density, self._mask_of, self._decay = own.save_masks, {}, None, {}, {}
        self.mask_stats: dict = {}

    @property
    def tokens_seen(self) -> int:  # the inner counts the retain tokens it draws: add both
        return self._own_tokens + getattr(self._modules.get("inner"), "tokens_seen", 0)

    @tokens_seen.setter
    def tokens_seen(self, value: int) -> None:
        self._own_tokens = value - getattr(self._modules.get("inner"), "tokens_seen", 0)

    def loss(self, batch):
        return self.inner.loss(batch)

    def _sharding(self, named):
        """``(mesh, rank, world)`` of FSDP2's row sharding, or None for plain tensors."""
        dtensors = [p for _, p in named if _is_dtensor(p)]
        if not dtensors:
            return None
        from torch.distributed.tensor import Shard

        bad = [n for n, p in named if not _is_dtensor(p) or tuple(p.placements) != (Shard(0),)
               or p.device_mesh.ndim != 1 or p.device_mesh != dtensors[0].device_mesh]
        if bad:
            raise NotImplementedError(f"method 'wagle': parameters {bad[:3]} are not row-sharded (Shard(0)) over one "
                                      "data-parallel mesh; WAGLE supports single, ddp and fsdp (FSDP2) as shipped")
        mesh = dtensors[0].device_mesh
        return mesh, mesh.get_local_rank(), mesh.size()

    def compute_masks(self, dm) -> dict[str, torch.Tensor]:
        """Score every trainable weight at the current weights on ``dm``'s forget / retain
        data and keep the top ``ratio``; sets ``masks`` (under FSDP2 each rank's
        row block), ``mask_density`` and ``mask_stats``."""
        named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        shard = self._sharding(named)
        mesh, rank, world = shard if shard else (None, 0, 1)
        group = mesh.get_group() if mesh is not None else None
        collate, bs = dm.collator(extras=False), max(1, self.batch_size // world)

        def batches(ds):
            if mesh is None:
                return ((b, 1.0) for b in DataLoader(ds, batch_size=bs, collate_fn=collate))
            return shard_batches(ds, collate, bs, rank, world)

        params, kind, scores, kept = [p for _, p in named], self.mask_kind, None, None
        compared = {n for n, _ in named}
        self.model.eval()  # no dropout while scoring
        if kind == "wagle":
            if mesh is None:
                (g_f, seen_f), (g_r, seen_r) = (nll_grad(self.model, params, (b for b, _ in batches(ds)), self.device)
                                                for ds in (dm.forget_set, dm.retain_set))
            else:
                (g_f, seen_f), (g_r, seen_r) = (nll_grad_sharded(self.model, params, batches(ds), self.device, world)
                                                for ds in (dm.forget_set, dm.retain_set))
            self._own_tokens += seen_f + seen_r
            # pop: each gradient is freed once scored
            scores = {n: wagle_score(_local(p), g_f.pop(0), g_r.pop(0), self.gamma) for n, p in named}
        elif kind == "random":  # the full tensors from one generator, so any sharding gives the same mask
            gen = torch.Generator().manual_seed(self.seed)
            scores = {n: row_block(torch.rand(p.shape, generator=gen), rank, world).to(self.device)
                      for n, p in named}
        elif kind == "magnitude":
            scores = {n: _local(p).detach().abs() for n, p in named}
        elif kind == "wanda":
            norms, seen = input_norms(self.model, batches(dm.forget_set), self.device, group)
            self._own_tokens += seen
            compared = set(norms) & compared
            kept = {n: top_per_row(_local(p).detach().float().abs() * norms[n], self.ratio) if n in compared
                    else torch.ones_like(_local(p), dtype=torch.bool) for n, p in named}
        if scores is not None:
            kept = (top_fraction_sharded(scores, self.ratio, group) if mesh is not None
                    else top_fraction(scores, self.ratio))
        self.masks = {n: kept[n].to(_local(p).device) if kept else torch.ones_like(_local(p), dtype=torch.bool)
                      for n, p in named}
        if mesh is None and initialized():
            for m in self.masks.values():  # DDP: one mask for all ranks, even if scores differ by noise
                torch.distributed.broadcast(m.view(torch.uint8), src=0)
        self._mask_of = {id(p): self.masks[n] for n, p in named if kept}  # dense: nothing to mask
        counts = torch.tensor([int(m.sum()) for m in self.masks.values()], dtype=torch.int64, device=self.device)
        if group is not None:
            torch.distributed.all_reduce(counts, group=group)
        sizes = {n: p.numel() for n, p in named}  # DTensor.numel() is the full tensor's
        per = {n: int(c) for n, c in zip(self.masks, counts.tolist())}
        self.mask_density = sum(per.values()) / max(1, sum(sizes.values()))
        n_cmp = sum(sizes[n] for n in compared)
        self.mask_stats = {"density": self.mask_density, "per_tensor": {n: per[n] / sizes[n] for n in per},
                           "compared_fraction": n_cmp / max(1, sum(sizes.values())),
                           "compared_density": sum(per[n] for n in compared) / max(1, n_cmp)}
        rank_zero_info(f"wagle: {kind} mask updates {self.mask_density:.4f} of the weights (ratio {self.ratio})")
        return self.masks

    def on_fit_start(self) -> None:
        self.compute_masks(self.trainer.datamodule)  # at θ_o, before any step
        super().on_fit_start()
        self.inner.on_fit_start()
        self.ref_model = self.inner.ref_model  # None once the inner cached its reference

    def param_groups(self) -> list[dict]:
        """The inner's groups with weight decay 0: WAGLE decays masked-in weights itself (under
        parity "reference" AdamW decays every weight, masked-out ones included, as WAGLE's code)."""
        groups = self.inner.param_groups()
        for g in groups if self.mask_kind != "dense" and self.parity != "reference" else ():
            g["params"] = list(g["params"])
            self._decay.update({id(p): g.get("weight_decay", 0.01) for p in g["params"]})  # AdamW's default
            g["weight_decay"] = 0.0
        return groups

    @torch.no_grad()
    def mask_gradients(self) -> None:
        """After clipping, before the step: zero masked-out grads; AdamW's decoupled decay
        ``θ ← θ·(1 − lr_t·wd)`` on masked-in weights only (zero grad + zero moments: no move).
        Under FSDP2 each rank edits its own shards (``to_local`` aliases them)."""
        self.inner.mask_gradients()
        for group in (g for opt in self.trainer.optimizers for g in opt.param_groups):
            for p in group["params"]:
                if p.grad is None or (m := self._mask_of.get(id(p))) is None:
                    continue  # AdamW skips (and does not decay) a param without grad
                _local(p.grad).masked_fill_(~m, 0)
                if decay := group["lr"] * self._decay.get(id(p), 0.0):
                    w = _local(p)
                    w.copy_(torch.where(m, w * (1 - decay), w))

    def full_masks(self) -> dict[str, torch.Tensor]:
        """Masks of the full tensors on CPU (under FSDP2 a collective: every rank must call)."""
        named = dict(self.model.named_parameters())
        out = {}
        for n, m in self.masks.items():
            p = named[n]
            if _is_dtensor(p):
                from torch.distributed.tensor import DTensor

                m = DTensor.from_local(m.to(torch.uint8), p.device_mesh, p.placements, run_check=False,
                                       shape=p.shape, stride=p.stride()).full_tensor().bool()
            out[n] = m.cpu()
        return out

    def save_unlearned(self, path) -> None:
        """Model; then ``wagle_mask.json`` (densities) and, with ``save_masks``, ``wagle_masks
        .safetensors`` in the run dir (``path``'s parent): the model dir stays a clean HF dir."""
        super().save_unlearned(path)
        if not self.masks:
            return
        full = self.full_masks() if self.save_masks else None  # every rank joins the gather
        if self.global_rank != 0:
            return
        run_dir = Path(path).parent
        stats = {"inner": self.inner_name, "mask": self.mask_kind, "ratio": self.ratio, "gamma": self.gamma,
                 **self.mask_stats}
        (run_dir / "wagle_mask.json").write_text(json.dumps(stats, indent=2))
        if full is not None:
            from safetensors.torch import save_file
            save_file({n: m.contiguous() for n, m in full.items()}, str(run_dir / "wagle_masks.safetensors"))
