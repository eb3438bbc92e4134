"""Per-item values of a multi-process evaluation, concatenated over ranks (records: ``parallel.gather_records``)."""

from __future__ import annotations

import torch
import torchmetrics
from torchmetrics.utilities import dim_zero_cat


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
