"""Helpers that let a multi-process evaluation score every item exactly once."""

from __future__ import annotations

import torch
import torchmetrics
from torchmetrics.utilities import dim_zero_cat


def _distributed_world_size() -> int:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def gather_records(records: list[dict]) -> list[dict]:
    """All ranks' per-item records concatenated on every rank, sorted by "_order" if present."""
    world_size = _distributed_world_size()
    if world_size == 1:
        return records
    gathered: list[list[dict] | None] = [None] * world_size
    torch.distributed.all_gather_object(gathered, list(records))
    merged = [rec for part in gathered for rec in part]
    with_order = sum("_order" in rec for rec in merged)
    if with_order == 0:
        return merged
    if with_order != len(merged):
        raise ValueError(
            f"only {with_order} of {len(merged)} records carry '_order'; cannot sort them"
        )
    # A distributed sampler interleaves items over ranks; "_order" restores dataset order.
    return sorted(merged, key=lambda rec: rec["_order"])


class ItemValues(torchmetrics.Metric):
    """Per-item float values, concatenated over batches and (when distributed) over ranks."""

    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("values", default=[], dist_reduce_fx="cat")

    def update(self, values: torch.Tensor) -> None:
        """Append a batch of per-item values."""
        self.values.append(torch.as_tensor(values, dtype=torch.float32).detach().flatten())

    def compute(self) -> torch.Tensor:
        """All values seen so far, in rank-then-update order."""
        if isinstance(self.values, list) and not self.values:
            return torch.empty(0)
        return dim_zero_cat(self.values)
