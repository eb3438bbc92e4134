"""Hand-built token batches shared by the metric tests (not a test module)."""

import torch


def padded(rows, left=False, drop_eos=False):
    """A batch of (question, answer) rows; ``drop_eos``: the final answer token unscored
    (open-unlearning's convention, ``eval.parity``)."""
    T = max(len(q) + len(a) for q, a in rows)
    ids = torch.zeros(len(rows), T, dtype=torch.long)
    am, labels = torch.zeros_like(ids), torch.full_like(ids, -100)
    for i, (q, a) in enumerate(rows):
        n = len(q) + len(a)
        s = T - n if left else 0
        ids[i, s:s + n] = torch.tensor(q + a)
        am[i, s:s + n] = 1
        labels[i, s + len(q):s + n] = torch.tensor(a)
        if drop_eos:
            labels[i, s + n - 1] = -100
    return {"input_ids": ids, "attention_mask": am, "labels": labels}
