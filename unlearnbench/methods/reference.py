"""The frozen reference's sequence log-probs, computed once before training (issue: memory).

NPO, NPO-RT and IdkDPO use the reference model only through ``S_ref(y|x)``, the summed NLL
of an answer: of each forget answer, and (IdkDPO) of each refusal the data module may draw
for each forget question. Those are a finite table — forget rows × (1 + number of
refusals) — so the harness scores them once with the reference model and then drops it;
training then holds one model instead of two. ``reference: resident`` keeps the model and
scores every batch instead (the same numbers, within float noise; a test checks 1e-6).
"""

from __future__ import annotations

import torch

from unlearnbench.data.collate import pad_right
from unlearnbench.data.refusals import REFUSALS
from unlearnbench.methods.losses import sequence_nll

MODES = ("cached", "resident")


@torch.no_grad()
def _summed_nll(model, pairs: list[tuple[list[int], list[int]]], pad_id: int, batch_size: int, device) -> torch.Tensor:
    out = []
    for start in range(0, len(pairs), batch_size):
        b = pad_right(pairs[start: start + batch_size], pad_id)
        logits = model(input_ids=b["input_ids"].to(device), attention_mask=b["attention_mask"].to(device)).logits
        out.append(sequence_nll(logits, b["labels"].to(device))[0].float())
    return torch.cat(out) if out else torch.zeros(0, device=device)


def reference_table(ref_model, dm, needs, batch_size: int, device) -> tuple[dict[str, torch.Tensor], int]:
    """``{"answer": S_ref [rows]}`` and, with the ``idk`` need, ``{"idk": S_ref [rows, refusals]}``
    (with ``alternate``, ``{"alternate": S_ref [rows, alternates]}``)
    for every forget row of the data module ``dm``, and the tokens scored (every rank computes
    all of it: under FSDP the reference's forward passes are collective)."""
    enc, rows = dm.encoder, dm.forget_set.rows
    was = ref_model.training
    ref_model.eval()
    # The forget rows as the training batches hold them (QA pairs or raw-text chunks), in order.
    answer = torch.zeros(len(rows), device=device)
    tokens = 0
    with torch.no_grad():
        for b in dm.plain_loader("forget", batch_size):
            logits = ref_model(input_ids=b["input_ids"].to(device),
                               attention_mask=b["attention_mask"].to(device)).logits
            answer[b["index"].to(device)] = sequence_nll(logits, b["labels"].to(device))[0].float()
            tokens += int(b["attention_mask"].sum())
    table = {"answer": answer}
    if "idk" in needs:
        pairs = enc.encode_many([(r["question"], a) for r in rows for a in REFUSALS])
        table["idk"] = _summed_nll(ref_model, pairs, enc.pad_id, batch_size, device).view(len(rows), len(REFUSALS))
        tokens += sum(len(ids) for ids, _ in pairs)
    if "alternate" in needs:  # AltPO: every alternate of every row, NaN where a row has fewer
        alts = dm.alternates
        width = max(len(a) for a in alts)
        pairs = enc.encode_many([(r["question"], a) for r, row_alts in zip(rows, alts) for a in row_alts])
        flat = _summed_nll(ref_model, pairs, enc.pad_id, batch_size, device)
        table["alternate"] = torch.full((len(rows), width), float("nan"), device=device)
        at = 0
        for i, row_alts in enumerate(alts):
            table["alternate"][i, : len(row_alts)] = flat[at: at + len(row_alts)]
            at += len(row_alts)
        tokens += sum(len(ids) for ids, _ in pairs)
    ref_model.train(was)
    return table, tokens


def lookup(table: dict[str, torch.Tensor], sub: dict) -> torch.Tensor:
    """S_ref of a sub-batch: its rows' forget answers, or the refusals (alternates) drawn for them."""
    index = sub["index"].to(table["answer"].device)
    if "alt_choice" in sub:
        return table["alternate"][index, sub["alt_choice"].to(index.device)]
    if "choice" in sub:
        return table["idk"][index, sub["choice"].to(index.device)]
    return table["answer"][index]
