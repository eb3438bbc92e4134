"""Parity of UNDIAL, SatImp, WGA, CE-U, PDU and AltPO with open-unlearning's own code.

One fixed small batch (forget, retain and alternate rows with prompt and padding) and one
small random Llama (plus a second one as the frozen reference), built below. For each method
the total loss, the gradient's L2 norm and its projection on a fixed random direction are
compared with numbers computed by open-unlearning's code (locuslab/open-unlearning
@d3d7cf9e6b3c125d16687d4232680d8d83548f1a) on the same model and batch, within 1e-6.

How the reference numbers were made (their code is not in this tree): the repository was
extracted to /tmp/ou (``git archive d3d7cf9 | tar -x -C /tmp/ou``); a shim package ``trainer``
in /tmp/oushim held symlinks to their ``src/trainer/utils.py`` and
``src/trainer/unlearn/{grad_diff,ceu,pdu,dpo,undial,satimp,wga}.py`` with a stub
``unlearn/base.py`` (``class UnlearnTrainer: pass``, so HF's Trainer is not needed); each
class's ``compute_loss`` was called unbound on an object carrying the method's attributes
(``gamma``, ``alpha``, ``beta``..., ``compute_retain_loss`` = ``GradDiff.compute_retain_loss``
with ``retain_loss_type="NLL"``; PDU also ``final_loss_value`` with ``primal_dual=True`` and
updates enabled), on ``_model()``/``_ref_model()``/``_batch()`` imported from this file, then
``loss.backward()`` and :func:`_grad_stats`. Command (torch 2.13.0+cpu, transformers 5.23.0):
``OMP_NUM_THREADS=1 PYTHONPATH=/tmp/oushim:/work/wt/newmethods python /tmp/oushim/ou_parity.py``.
"""

from __future__ import annotations

import pytest
import torch

from unlearnbench.registry import methods

VOCAB = 128  # > 100: open-unlearning's UNDIAL indexes vocabulary entry V-100 at label -100


def _model(seed: int = 0):
    import transformers

    torch.manual_seed(seed)
    cfg = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                   num_attention_heads=2, num_key_value_heads=2, initializer_range=0.5,
                                   max_position_embeddings=64, attn_implementation="eager")
    return transformers.LlamaForCausalLM(cfg).float()


def _ref_model():
    """A second random model as the frozen reference, so the reference terms are not trivial."""
    return _model(seed=1).eval().requires_grad_(False)


def _rows(seed: int, prompt_lens, answer_lens) -> dict:
    """Right-padded rows: prompt labels -100, answer scored, padding -100 with mask 0."""
    g = torch.Generator().manual_seed(seed)
    width = max(p + a for p, a in zip(prompt_lens, answer_lens))
    ids = torch.randint(1, VOCAB, (len(prompt_lens), width), generator=g)
    labels = torch.full_like(ids, -100)
    mask = torch.zeros_like(ids)
    for i, (p, a) in enumerate(zip(prompt_lens, answer_lens)):
        labels[i, p:p + a] = ids[i, p:p + a]
        mask[i, :p + a] = 1
        ids[i, p + a:] = 0
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _batch() -> dict:
    forget = _rows(10, (3, 4, 2), (5, 3, 6))
    forget["index"] = torch.tensor([0, 1, 2])
    alternate = _rows(11, (3, 4, 2), (4, 6, 3))
    alternate["index"] = torch.tensor([0, 1, 2])
    return {**forget, "alternate": alternate, "retain": _rows(12, (2, 5, 3), (6, 2, 4))}


def _full_batch() -> dict:
    """Every shifted position scored (labels = input ids, no padding)."""
    g = torch.Generator().manual_seed(13)
    ids = torch.randint(1, VOCAB, (2, 7), generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone(),
            "index": torch.tensor([0, 1]), "retain": _rows(12, (2, 5, 3), (6, 2, 4))}


def _grad_stats(model) -> tuple[float, float]:
    """(L2 norm of the whole gradient, its dot product with a fixed N(0,1) direction)."""
    g = torch.cat([p.grad.reshape(-1).double() for _, p in sorted(model.named_parameters())])
    direction = torch.randn(g.numel(), generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    return float(g.norm()), float(g @ direction)


# method, our params, batch builder -> open-unlearning's (loss, |grad|, grad·u), computed as
# the module docstring says with these settings:
#   undial   UNDIAL beta=10, gamma=1, alpha=0                      (positions="all" here)
#   undial answer: the same on _full_batch (every position scored: both reductions agree)
#   satimp   SatImp beta1=5, beta2=1, gamma=0.1, alpha=1 (its yaml)
#   wga      WGA beta=1, gamma=1, alpha=1
#   ceu      CEU ignore_first_n_answer_tokens=1
#   pdu      PDU gamma=1, alpha=1 (preferences [1, 1]), retain_loss_eps=2.0, dual_step_size=1
#   altpo    DPO beta=0.1, gamma=1, alpha=1, win = alternate, lose = forget
CASES = {
    "undial": ("undial", {"positions": "all"}, _batch,
               (6.3313460350036621, 2.1406874807, 1.0177365017)),
    "undial-answer": ("undial", {}, _full_batch,
                      (7.2872452735900879, 4.1364397352, -8.0692407321)),
    "satimp": ("satimp", {}, _batch, (7.3635516166687012, 12.0166834120, -23.0825233956)),
    "wga": ("wga", {}, _batch, (7.3286213874816895, 12.0121020023, -22.8226173472)),
    "ceu": ("ceu", {}, _batch, (3.2783834934234619, 0.3408887417, 0.4579478145)),
    "pdu": ("pdu", {"retain_loss_eps": 2.0, "dual_warmup_epochs": 0}, _batch,
            (31.7821121215820312, 75.3893078352, -45.3111021161)),
    "altpo": ("altpo", {"reference": "resident"}, _batch, (21.6733474731445312, 58.3954164444, -68.5976174121)),
}
PDU_DUAL_AFTER = 6.3635516166687012  # open-unlearning's preferences[1] after the step


@pytest.mark.parametrize("case", sorted(CASES))
def test_loss_and_gradient_equal_open_unlearning(case):
    name, params, build, (loss_ou, norm_ou, dot_ou) = CASES[case]
    cls = methods.get(name)
    method = cls(model=_model(), **params)
    if method.needs_reference:
        method.ref_model = _ref_model()
    batch = build()
    method.retain_batch = lambda: batch["retain"]  # no trainer: the fixed retain rows
    terms = method.loss(batch)
    terms["loss"].backward()
    norm, dot = _grad_stats(method.model)
    assert float(terms["loss"].detach()) == pytest.approx(loss_ou, rel=1e-6, abs=1e-6)
    assert norm == pytest.approx(norm_ou, rel=1e-6, abs=1e-6)
    assert dot == pytest.approx(dot_ou, rel=1e-6, abs=1e-6)
    if name == "pdu":
        assert method.dual == pytest.approx(PDU_DUAL_AFTER, rel=1e-6, abs=1e-6)


def test_undial_answer_positions_ignore_prompt_and_padding():
    """The default reduction: changing the logits at unscored positions leaves the loss as is,
    while open-unlearning's ("all") moves."""
    from unlearnbench.methods.losses_ou import undial_loss

    b = _batch()
    logits = torch.randn(3, b["labels"].shape[1], VOCAB, generator=torch.Generator().manual_seed(3))
    ref = torch.randn(logits.shape, generator=torch.Generator().manual_seed(4))
    changed = logits.clone()
    # row 1 has 4 + 3 tokens of 8: position 6 predicts padding
    changed[1, 6] += 5.0 * torch.randn(VOCAB, generator=torch.Generator().manual_seed(5))
    assert undial_loss(changed, ref, b["labels"]) == pytest.approx(float(undial_loss(logits, ref, b["labels"])))
    assert float(undial_loss(changed, ref, b["labels"], positions="all")) != \
        pytest.approx(float(undial_loss(logits, ref, b["labels"], positions="all")))


def test_hand_values_of_the_pure_losses():
    """Reductions checked by hand on the 3-token vocabulary of test_losses' toy batch."""
    import math

    from unlearnbench.methods import losses, losses_ou

    lg = torch.log(torch.tensor([[[0.5, 0.25, 0.25], [0.25, 0.5, 0.25], [9.0, 9.0, 9.0]]]))
    labels = torch.tensor([[-100, 0, 1]])  # two scored tokens, each with p = 0.5
    ga = losses.ga_loss(lg, labels)
    # β = 0 weights are 1: plain gradient ascent; p = 0.5 gives the weight 0.5^β
    assert float(losses_ou.wga_loss(lg, labels, beta=0.0)) == pytest.approx(float(ga))
    assert float(losses_ou.wga_loss(lg, labels, beta=2.0)) == pytest.approx(-0.25 * math.log(2))
    assert float(losses_ou.satimp_loss(lg, labels, 0.0, 0.0)) == pytest.approx(float(ga))
    assert float(losses_ou.satimp_loss(lg, labels, 1.0, 1.0)) == pytest.approx(-0.25 * math.log(2))
    # CE-U, first answer token skipped: position 1 only; target (0.25, 0, 0.25)/0.5 -> (0.5, 0, 0.5),
    # CE = −(0.5 log 0.25 + 0.5 log 0.25) = log 4
    assert float(losses_ou.ceu_loss(lg, labels)) == pytest.approx(math.log(4))
    # PDU (open-unlearning positions: labels' own positions 1 and 2): margins 0 for the flat
    # row 2; row 1: max log 0.5 − mean log(0.25, 0.5, 0.25)
    m1 = math.log(0.5) - (2 * math.log(0.25) + math.log(0.5)) / 3
    assert float(losses_ou.pdu_forget_loss(lg, labels)) == pytest.approx(m1 ** 2 / 2)
    m0 = math.log(0.5) - (math.log(0.5) + 2 * math.log(0.25)) / 3
    assert float(losses_ou.pdu_forget_loss(lg, labels, shifted=True)) == pytest.approx((m0 ** 2 + m1 ** 2) / 2)
    # UNDIAL with β = 0 and ref = model: CE of a distribution with itself = its entropy
    h = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))
    assert float(losses_ou.undial_loss(lg, lg, labels, beta=0.0)) == pytest.approx(h)
