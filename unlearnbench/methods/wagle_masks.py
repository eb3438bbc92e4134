"""WAGLE's mask arithmetic on score tensors: the score, global and per-row top fractions,
and the sharded (FSDP2) global top fraction. Torch only, so that worker processes import it
cheaply; the method itself is in :mod:`unlearnbench.methods.wagle`."""

from __future__ import annotations

import torch


def wagle_score(theta, g_f, g_r, gamma: float) -> torch.Tensor:
    """``S = |θ·g_f − (1/γ)·g_r·g_f|`` elementwise, in float32 (docs/methods.md, WAGLE step 2)."""
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


def top_fraction_sharded(scores: dict[str, torch.Tensor], ratio: float, group=None) -> dict[str, torch.Tensor]:
    """:func:`top_fraction` of scores (≥ 0) sharded by rows over the ranks of ``group``.

    Each rank passes its local row blocks (rank r holds the r-th contiguous block of every
    tensor, as ``Shard(0)`` does) and gets the masks of those blocks; together they equal
    ``top_fraction`` of the full tensors, ties included. The threshold is found by bisection
    on the float32 bit patterns (monotone for non-negative floats), one all-reduced count
    per step, so no rank gathers the scores.
    """
    dist = torch.distributed
    bits = {n: s.detach().float().contiguous().view(torch.int32) for n, s in scores.items()}
    if any(bool((b < 0).any()) for b in bits.values()):
        raise ValueError("top_fraction_sharded: scores must be >= 0 (WAGLE's scores are absolute values)")
    device = next(iter(scores.values())).device

    def total(count: torch.Tensor | int) -> int:  # one all-reduce, one host sync
        t = torch.as_tensor(count, dtype=torch.int64, device=device).clone()
        dist.all_reduce(t, group=group)
        return int(t)

    def count(select) -> torch.Tensor:
        return sum((select(b).sum() for b in bits.values()), torch.zeros((), dtype=torch.int64, device=device))

    n_all = total(sum(b.numel() for b in bits.values()))
    k = min(n_all, max(1, round(ratio * n_all)))
    lo, hi = 0, 2 ** 31 - 1  # count(bits >= lo) >= k holds at lo = 0
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if total(count(lambda b: b >= mid)) >= k:  # noqa: B023 (used at once)
            lo = mid
        else:
            hi = mid - 1
    out = {n: b > lo for n, b in bits.items()}
    need = k - total(count(lambda b: b > lo))
    ties = torch.stack([(b == lo).sum() for b in bits.values()]).to(torch.int64)
    world, rank = dist.get_world_size(group), dist.get_rank(group)
    parts = [torch.zeros_like(ties) for _ in range(world)]
    dist.all_gather(parts, ties, group=group)
    ties = torch.stack(parts).cpu()  # [world, tensors]
    before = 0  # ties that come earlier in the global (tensor, rank, position) order
    for j, (n, b) in enumerate(bits.items()):
        take = max(0, min(int(ties[rank, j]), need - before - int(ties[:rank, j].sum())))
        if take:
            tie = (b == lo).flatten()
            out[n] |= (tie & (tie.cumsum(0) <= take)).view_as(out[n])
        before += int(ties[:, j].sum())
    return out


def top_per_row(scores: torch.Tensor, ratio: float) -> torch.Tensor:
    """Wanda's comparison group: keep the ``round(ratio·cols)`` highest scores of each row.

    Ties drop the lower column index first (Wanda sorts ascending, stably, and prunes the
    front). Wanda and WAGLE prune ``int(cols·(1 − ratio))``, which float rounding can make
    one short (cols 10, ratio 0.9 prunes 0); ``round`` keeps the stated fraction.
    """
    cols = scores.shape[-1]
    drop = cols - min(cols, max(1, round(ratio * cols)))
    mask = torch.ones(scores.shape, dtype=torch.bool, device=scores.device)
    if drop:
        mask.scatter_(-1, torch.sort(scores.float(), dim=-1, stable=True).indices[..., :drop], False)
    return mask


def row_block(full: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """Rank ``rank``'s block of ``full`` under ``Shard(0)`` (torch.chunk semantics, as DTensor)."""
    chunks = torch.chunk(full, world, dim=0)
    return chunks[rank] if rank < len(chunks) else full[:0]
