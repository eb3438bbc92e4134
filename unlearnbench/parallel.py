"""The process group in one place: rank, world size, rank zero, barrier, and the scaffold of
every model-facing evaluation (``sharded_eval``).

Outside ``torch.distributed`` (one process, or a process group not yet initialised) this
process is rank 0 of 1 and the barrier and gather are no-ops, so every caller is written
once for both cases. Imports nothing of the harness (any layer may use it).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

import torch


def initialized() -> bool:
    """Whether a torch.distributed process group is running."""
    dist = torch.distributed
    return dist.is_available() and dist.is_initialized()


def rank_world() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) outside torch.distributed."""
    if initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def is_rank_zero() -> bool:
    """Whether this process writes what every rank holds alike (results, caches, models)."""
    return rank_world()[0] == 0


def barrier() -> None:
    """Wait for every rank (a no-op in one process)."""
    if initialized():
        torch.distributed.barrier()


def gather_records(records: list[dict]) -> list[dict]:
    """All ranks' per-item records concatenated on every rank, sorted by "_order" if present."""
    if not initialized():  # one process (or a test's explicit shard): nothing to gather
        return records
    world_size = torch.distributed.get_world_size()
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


class Shard:
    """This process's part of an evaluation: ``take`` its rows, add its ``records``."""

    def __init__(self, rank: int, world: int):
        self.rank, self.world = rank, world
        self.records: list[dict] = []

    def take(self, rows: Sequence) -> list:
        """Every ``world``-th row from ``rank``: the ranks' shares are disjoint and cover ``rows``."""
        return list(rows)[self.rank::self.world]


@contextmanager
def sharded_eval(model, *, rank: int | None = None, world: int | None = None,
                 keep_order: bool = False) -> Iterator[Shard]:
    """``with sharded_eval(model) as shard: shard.records += score(shard.take(rows))``.

    The model is in eval mode inside the block (its train/eval mode is restored after it,
    also on an error). After the block, ``shard.records`` holds every rank's records on
    every rank, sorted by their ``"_order"`` key (which every record must carry), and the
    key is dropped unless ``keep_order``. An explicit ``rank``/``world`` without a process
    group scores that shard only (how a test runs rank 1 of 2 in one process).
    """
    if rank is None or world is None:
        rank, world = rank_world()
    shard = Shard(rank, world)
    was_training = model.training
    model.eval()
    try:
        yield shard
    finally:
        model.train(was_training)
    records = gather_records(shard.records)
    records.sort(key=lambda r: r["_order"])
    if not keep_order:
        for r in records:
            r.pop("_order")
    shard.records = records
