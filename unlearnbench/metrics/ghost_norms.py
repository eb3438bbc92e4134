"""Exact per-text gradient norms from one batched forward and backward ("ghost norms").

Used by ``metrics.mia.gradnorm_scores`` (p = 2). Each text's loss depends only on its own row
(rows are cut to their real tokens and right-padded, so causal attention never lets a real
token see padding), so back-propagating the SUM of the rows' losses gives, at every layer,
each row's own output gradient ``b`` (rows x T x d_out), while the forward pass gives its
input ``a`` (rows x T x d_in). A parameter's per-row gradient is a sum over that row's tokens,
and its squared Frobenius norm follows without ever forming the gradient (Li et al. 2021,
"Large language models can be strong differentially private learners", ghost clipping; the
same identities as Opacus' fast gradient clipping):

* ``nn.Linear`` weight: ``G = Σ_t b_t a_tᵀ``, ``‖G‖² = Σ_{t,s} (a_t·a_s)(b_t·b_s)`` (two T x T
  Gram matrices), or ``‖aᵀb‖²`` directly when ``T·(d_in + d_out) > d_in·d_out`` (the cheaper
  one per layer); bias: ``‖Σ_t b_t‖²``.
* ``nn.Embedding`` (and a ``...ScaledWordEmbedding`` whose output is ``embedding · scale``):
  ``‖G‖² = Σ_{t,s} [id_t = id_s] (g_t·g_s)`` with ``g = scale · b``; tokens equal to
  ``padding_idx`` get no gradient, as in PyTorch.
* ``nn.LayerNorm``: weight ``‖Σ_t x̂_t ⊙ b_t‖²``, bias ``‖Σ_t b_t‖²``.
* ``...RMSNorm`` with one ``weight``: ``Σ_t x̂_t ⊙ b_t`` with ``x̂`` the module's own normalised
  input, for the two formulas found in transformers (Llama's ``w · x̂`` and Gemma's
  ``x̂ · (1 + w)``); the formula is checked against the module's output on every call (first row).
* A weight tied between an embedding and a linear layer (the LM head): ``‖G_emb + G_head‖² =
  ‖G_emb‖² + ‖G_head‖² + 2⟨G_emb, G_head⟩`` with ``⟨G_emb, G_head⟩ = Σ_{t,s} b_s[id_t] (g_t·a_s)``.

Anything else — a parameter outside these modules, a weight shared otherwise, a module called
twice in one forward or whose output gradient never arrives, a formula that does not match —
makes ``plan`` return a reason or the pass raise ``Unsupported``; the caller then runs its
exact one-text-at-a-time loop. Nothing is approximated.

Only the activations' gradients are requested (``torch.autograd.grad`` w.r.t. the embedding
outputs), so no parameter-sized gradient is ever formed.

Memory, for a chunk of ``R`` rows padded to ``T`` tokens (``R·T ≤ max_tokens``, default
1024, chosen by ``metrics.mia.gradnorm_scores``): the autograd graph of one forward over
``R·T`` tokens, what training at that batch holds (a 7B Llama in bf16 saves about 13
hidden-sized and 4 FFN-sized values per layer and token, ~6 MB per token: ~7 GB at 1024
tokens, beside its 14 GB of weights), plus transient per-layer buffers: two ``R x T x T``
fp32 Gram matrices, one layer's output gradient, and for the LM head the ``R x T x V``
fp32 logit gradients (1024 tokens x 32k vocabulary: 130 MB). Nothing parameter-sized is
allocated (vmap per-sample gradients would hold ``R x`` the parameters).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class Unsupported(Exception):
    """The model holds something these identities do not cover exactly; use the per-row loop."""


def _kind(module: nn.Module, names: set[str]) -> str | None:
    """The ghost-norm rule for a module owning the direct parameters ``names``, or None."""
    if type(module) is nn.Linear:
        return "linear"
    if type(module) is nn.LayerNorm and names <= {"weight", "bias"}:
        return "layernorm"
    is_scaled = type(module).__name__.endswith("ScaledWordEmbedding") and hasattr(module, "embed_scale")
    if type(module) is nn.Embedding or (isinstance(module, nn.Embedding) and is_scaled):
        if module.max_norm is not None or module.scale_grad_by_freq or module.sparse:
            return None  # renormalised or rescaled gradients: not the plain gather
        return "embedding"
    if type(module).__name__.endswith("RMSNorm") and names == {"weight"} and module.weight.dim() == 1:
        return "rmsnorm"
    return None


def plan(model: nn.Module):
    """``(modules, tied)`` when every parameter is covered exactly, else a reason (str).

    ``modules``: ``[(module, kind)]`` for each module owning parameters; ``tied``: ``{id(weight):
    (embedding, linear)}`` for a weight shared by one embedding and one linear layer."""
    owners: dict[int, list] = {}
    modules = []
    for name, module in model.named_modules():
        names = {n for n, _ in module.named_parameters(recurse=False)}
        if not names:
            continue
        kind = _kind(module, names)
        if kind is None:
            return f"module {name or type(model).__name__} ({type(module).__name__}) has no exact ghost-norm rule"
        modules.append((module, kind))
        for n, q in module.named_parameters(recurse=False):
            owners.setdefault(id(q), []).append((module, kind, n))
    tied = {}
    for key, own in owners.items():
        if len(own) == 1:
            continue
        kinds = sorted((k, n) for _, k, n in own)
        if len(own) == 2 and kinds == [("embedding", "weight"), ("linear", "weight")]:
            emb = next(m for m, k, _ in own if k == "embedding")
            lin = next(m for m, k, _ in own if k == "linear")
            tied[key] = (emb, lin)
        else:
            return f"a parameter is shared by {len(own)} modules ({', '.join(type(m).__name__ for m, _, _ in own)})"
    return modules, tied


def _rows(t: torch.Tensor, rows: int) -> torch.Tensor:
    """``[rows, tokens, d]`` in fp32 (every dimension between the row and the last flattened)."""
    return t.reshape(rows, -1, t.shape[-1]).float()


def _gram(x: torch.Tensor) -> torch.Tensor:
    return torch.bmm(x, x.transpose(1, 2))


class _Pass:
    """Hooks for one chunk: forward hooks capture inputs, tensor hooks take output gradients."""

    def __init__(self, modules, tied, rows: int):
        self.rows = rows
        self.modules, self.tied = modules, tied
        self.tied_linear = {id(lin): key for key, (_, lin) in tied.items()}
        self.tied_emb = {id(emb): key for key, (emb, _) in tied.items()}
        self.sq: dict[int, torch.Tensor] = {}  # id(param) -> [rows] squared norm
        self.calls: dict[int, int] = {}
        self.fired: dict[int, int] = {}
        self.roots: list[torch.Tensor] = []
        self.grams: dict[int, list] = {}  # id(input) -> [input, users left, gram or None]
        self.cross: dict[int, dict] = {}  # tied key -> {"M": ..., "g": ...}
        self.emb_ids: dict[int, torch.Tensor] = {}

    def _add(self, q: torch.Tensor, v: torch.Tensor) -> None:
        self.sq[id(q)] = self.sq.get(id(q), 0) + v

    def forward_hook(self, module, kind):
        def hook(mod, inputs, output):
            key = id(mod)
            self.calls[key] = self.calls.get(key, 0) + 1
            if self.calls[key] > 1:
                raise Unsupported(f"{type(mod).__name__} is called more than once per forward")
            x = inputs[0]
            if kind == "linear":
                k = id(x)  # q/k/v (gate/up) share their input: one Gram matrix for all
                if k in self.grams:
                    self.grams[k][1] += 1
                else:
                    self.grams[k] = [x, 1, None]
                ctx = (k,)
            elif kind == "embedding":
                scale = mod.embed_scale.to(mod.weight.dtype) if hasattr(mod, "embed_scale") else None
                if scale is not None and not torch.equal(output, F.embedding(x, mod.weight, mod.padding_idx) * scale):
                    raise Unsupported(f"{type(mod).__name__}'s output is not embedding x embed_scale")
                self.emb_ids[key] = x
                ctx = (x, scale)
            elif kind == "rmsnorm":
                ctx = (x, self._rms_formula(mod, x, output))
            else:  # layernorm
                ctx = (x,)
            if not output.requires_grad:
                raise Unsupported(f"{type(mod).__name__}'s output does not require grad")
            output.register_hook(lambda g: self.on_grad(mod, kind, ctx, g))
            if kind == "embedding":
                self.roots.append(output)
        return hook

    @staticmethod
    def _rms_normed(mod, x, formula):
        eps = getattr(mod, "variance_epsilon", getattr(mod, "eps", None))
        xf = x.float()
        n = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
        return n.to(x.dtype) if formula == "llama" else n

    def _rms_formula(self, mod, x, output) -> str:
        """Which of the two RMSNorm formulas the module computes, checked on its output for the
        first row (the module computes the same function of every row)."""
        if getattr(mod, "variance_epsilon", getattr(mod, "eps", None)) is None:
            raise Unsupported(f"{type(mod).__name__} has no eps attribute")
        w, x, output = mod.weight, x[:1], output[:1]
        tol = {"rtol": 1e-5, "atol": 1e-6} if output.dtype == torch.float32 else {"rtol": 1e-2, "atol": 1e-3}
        for formula in ("llama", "gemma"):
            n = self._rms_normed(mod, x, formula)
            want = w * n if formula == "llama" else (n * (1.0 + w.float())).type_as(x)
            if want.shape == output.shape and torch.allclose(want.float(), output.float(), **tol):
                return formula
        raise Unsupported(f"{type(mod).__name__} computes neither w*x_hat nor x_hat*(1+w)")

    def on_grad(self, mod, kind, ctx, g):
        self.fired[id(mod)] = self.fired.get(id(mod), 0) + 1
        R = self.rows
        b = _rows(g, R)
        if kind == "linear":
            entry = self.grams[ctx[0]]
            a = _rows(entry[0], R)
            T, din, dout = a.shape[1], a.shape[2], b.shape[2]
            if T * (din + dout) <= din * dout:
                if entry[2] is None:
                    entry[2] = _gram(a)
                sq = (entry[2] * _gram(b)).sum((1, 2))
            else:
                sq = torch.bmm(a.transpose(1, 2), b).pow(2).sum((1, 2))
            entry[1] -= 1
            if entry[1] == 0:
                del self.grams[ctx[0]]
            self._add(mod.weight, sq)
            if mod.bias is not None:
                self._add(mod.bias, b.sum(1).pow(2).sum(1))
            key = self.tied_linear.get(id(mod))
            if key is not None:  # M_t = Σ_s b_s[id_t] a_s, for the cross term with the embedding
                emb = self.tied[key][0]
                ids = self.emb_ids[id(emb)].reshape(R, -1)
                if ids.shape[1] != b.shape[1]:
                    raise Unsupported("the tied head does not see one position per input token")
                bg = b.gather(2, ids[:, None, :].expand(R, b.shape[1], ids.shape[1]))  # [r, s, t]
                self.cross.setdefault(key, {})["M"] = torch.bmm(bg.transpose(1, 2), a)
        elif kind == "embedding":
            ids, scale = ctx
            ids = ids.reshape(R, -1)
            if scale is not None:
                b = b * scale.float()
            if mod.padding_idx is not None:
                b = b * (ids != mod.padding_idx)[..., None]
            same = ids[:, :, None] == ids[:, None, :]
            self._add(mod.weight, (_gram(b) * same).sum((1, 2)))
            key = self.tied_emb.get(id(mod))
            if key is not None:
                self.cross.setdefault(key, {})["g"] = b
        elif kind == "rmsnorm":
            x, formula = ctx
            n = _rows(self._rms_normed(mod, x, formula), R)
            self._add(mod.weight, (n * b).sum(1).pow(2).sum(1))
        else:
            (x,) = ctx
            shape = mod.normalized_shape
            n = F.layer_norm(x.float(), shape, eps=mod.eps).reshape(R, -1, *shape).flatten(2)
            b = b.reshape(R, -1, *shape).flatten(2) if len(shape) > 1 else b
            self._add(mod.weight, (n * b).sum(1).pow(2).sum(1))
            if mod.bias is not None:
                self._add(mod.bias, b.sum(1).pow(2).sum(1))

    def finish(self, params) -> torch.Tensor:
        """``[rows, parameters]`` squared norms, after checking every hook fired exactly once."""
        for module, _ in self.modules:
            if self.calls.get(id(module), 0) != 1 or self.fired.get(id(module), 0) != 1:
                raise Unsupported(f"{type(module).__name__} did not take part in the loss exactly once")
        for key in self.tied:
            c = self.cross[key]
            self.sq[key] = self.sq[key] + 2 * (c["g"] * c["M"]).sum((1, 2))
        return torch.stack([self.sq[id(q)] for q in params], dim=1)


def squared_norms(model: nn.Module, planned, params: list, ids: torch.Tensor, labels: torch.Tensor,
                  return_logits: bool = False):
    """``[rows, len(params)]`` squared gradient norms of each row's token-mean NLL (and, with
    ``return_logits``, the pass's logits ``[rows, T - 1, vocab]``, detached: position t predicts
    token t + 1, for callers that take other scores from the same forward).

    ``ids``/``labels`` ``[rows, T]``: each row's real tokens first, then padding (any valid
    id; labels -100). Padding needs no mask: causal attention keeps it out of every real
    token's computation, and its own logits carry no loss, so every gradient at a padded
    position is exactly zero and adds nothing to any sum below (a non-finite padded
    activation would show as a non-finite score, which the caller refuses). Raises
    ``Unsupported`` (see the module doc)."""
    modules, tied = planned
    rows = ids.shape[0]
    state = _Pass(modules, tied, rows)
    handles = [m.register_forward_hook(state.forward_hook(m, k)) for m, k in modules]
    try:
        logits = model(input_ids=ids).logits[:, :-1]
        target = labels[:, 1:]
        scored = target != -100
        # Only the scored positions' vocabulary rows (the others carry no loss), in float32
        # as the per-row loop computes them.
        nll = F.cross_entropy(logits[scored].float(), target[scored], reduction="none")
        row = torch.arange(rows, device=ids.device)[:, None].expand_as(target)[scored]
        per_row = torch.zeros(rows, dtype=nll.dtype, device=nll.device).index_add_(0, row, nll)
        loss = (per_row / scored.sum(1)).sum()
        if not state.roots:
            raise Unsupported("no embedding output to differentiate from")
        torch.autograd.grad(loss, state.roots)
    finally:
        for h in handles:
            h.remove()
    sq = state.finish(params)
    return (sq, logits.detach()) if return_logits else sq
