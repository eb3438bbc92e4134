"""``parity`` against numbers computed with each method's public code (docs/methods.md, "parity").

The reference numbers below were computed by running the public code's own loss functions
(their source, executed unchanged from a checkout in /tmp; none of it is in this tree) on
the fixture built here, identically: a random tiny Llama (weights drawn from a seeded
generator, not transformers' initialiser), a reference model perturbed by seeded noise,
and fixed token ids, right-padded with id 1 to 10 positions (500 for FLAT, its padded
length). Each records the loss, the gradient's norm and its projection on a seeded random
direction. Command: ``python run_refs.py`` (a shim that ``exec``s only the named functions
of: kevinyaobytedance/llm_unlearn@647f309:utils.py get_answer_loss, compute_kl;
UCSC-REAL/FLAT@bf2ef07:dataloader.py CustomTrainerForgetting.compute_loss ("cl"),
ProbLossStable, get_contrastive_loss; locuslab/tofu@bdc209e:dataloader.py
CustomTrainerForgetting.compute_loss ("idk", "KL"); locuslab/open-unlearning@d3d7cf9:
src/trainer/unlearn/rmu.py RMU.compute_loss; OPTML-Group/WAGLE@31275e8: src/unlearn/GA.py
NPO_FT.compute_loss, src/unlearn/base.py BaseTrainer.mask_gradient, then torch AdamW with
transformers' Trainer.get_decay_parameter_names groups), torch 2.13.0, transformers 5.23.0, CPU,
with the CPU kernels pinned as this harness pins them (``MKL_CBWR=AVX2 ATEN_CPU_CAPABILITY=avx2
DNNL_MAX_CPU_ISA=AVX2``, unlearnbench/numerics.py): without the pins the last float32 bits
of the gradients differ, by up to 2e-6 relative.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import transformers

from unlearnbench.methods.flat import FLAT
from unlearnbench.methods.ga_kl import GAKL
from unlearnbench.methods.idk import IdkPO
from unlearnbench.methods.llmu import LLMU
from unlearnbench.methods.rmu import RMU
from unlearnbench.methods.wagle import WAGLE

PAD, T = 1, 10
FORGET = [([5, 9, 14], [21, 7, 33, 2]), ([6, 11, 40, 8], [19, 25, 12, 30, 2]), ([17, 3], [44, 28, 2])]
ALT = [([5, 9, 14], [10, 13, 2]), ([6, 11, 40, 8], [10, 16, 22, 2]), ([17, 3], [10, 13, 27, 35, 2])]
RETAIN = [([31, 4, 26], [15, 38, 41, 2]), ([24, 36], [20, 29, 2]), ([45, 18, 32, 39], [23, 34, 2])]
RANDOM_ANSWERS = [[15, 38, 41], [20, 29]]

# (loss, ‖g‖, <g, d>) from the public code; see the module docstring.
REFERENCE = {
    "llmu": (5.253974914550781, 8.006654439928633, 7.824143466356851),
    "flat_kl": (0.36758285760879517, 0.005826018762075457, -0.0025676737980219995),
    "flat_tv": (-0.00010663586726877838, 0.002961553360800434, -0.0012418256864006189),
    "flat_js": (-0.00010657310485839844, 0.0029610684016861985, -0.0012415944898816643),
    "flat_pearson": (-0.00021326738351490349, 0.005923122566177309, -0.0024836417160343147),
    "idk": (4.496513843536377, 6.40073535141122, 5.86950753474067),
    "ga_kl": (-4.262765407562256, 7.260940401710665, 5.408314672930945),
    "rmu": (516.8277587890625, 809.4662380434808, 411.5141308184684),
    "wagle_npo": (18.629981994628906, 11.928731555015757, 14.910958571152356),
}


def tiny_llama(noise: float = 0.0):
    cfg = transformers.LlamaConfig(vocab_size=48, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                   num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                                   pad_token_id=PAD, bos_token_id=0, eos_token_id=2, tie_word_embeddings=False)
    cfg._attn_implementation = "eager"
    m = transformers.LlamaForCausalLM(cfg)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _, p in m.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3 + (1.0 if p.ndim == 1 else 0.0))
        if noise:
            g = torch.Generator().manual_seed(7)
            for _, p in m.named_parameters():
                p.add_(torch.randn(p.shape, generator=g) * noise)
    return m.eval()


def rows_batch(rows, length=T):
    ids, am, lab = [], [], []
    for prompt, ans in rows:
        n = len(prompt) + len(ans)
        ids.append(prompt + ans + [PAD] * (length - n))
        am.append([1] * n + [0] * (length - n))
        lab.append([-100] * len(prompt) + ans + [-100] * (length - n))
    return {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(am), "labels": torch.tensor(lab)}


def direction(model):
    g = torch.Generator().manual_seed(1234)
    return {n: torch.randn(p.shape, generator=g) for n, p in model.named_parameters()}


def grad_summary(model):
    d = direction(model)
    sq = proj = 0.0
    for n, p in model.named_parameters():
        if p.grad is not None:
            sq += float(p.grad.double().pow(2).sum())
            proj += float((p.grad.double() * d[n].double()).sum())
    return sq ** 0.5, proj


def build(cls, **params):
    """The method around the tiny model, its reference replaced by the perturbed copy, and
    the retain batch fixed (the method's own retain iterator needs a Trainer)."""
    method = cls(model=tiny_llama(), lr=1e-3, **params)
    if method.ref_model is not None:
        method.ref_model.load_state_dict(tiny_llama(noise=0.05).state_dict())
    retain = rows_batch(RETAIN)
    for m in (method, getattr(method, "inner", None)):
        if m is not None:
            m.retain_batch = lambda: retain
    return method


def check(method, batch, key):
    loss = method.loss(batch)["loss"]
    loss.backward()
    want_loss, want_norm, want_proj = REFERENCE[key]
    norm, proj = grad_summary(method.model)
    assert float(loss) == pytest.approx(want_loss, abs=1e-6, rel=1e-6)
    assert norm == pytest.approx(want_norm, abs=1e-6, rel=1e-6)
    assert proj == pytest.approx(want_proj, abs=1e-6, rel=1e-6)
    return float(loss), norm


def test_llmu_reference_matches_llm_unlearn():
    batch = rows_batch(FORGET)
    batch["random"] = rows_batch([(p, a) for p, _ in FORGET for a in RANDOM_ANSWERS])
    method = build(LLMU, parity="reference")
    assert method.grad_clip == 0.0  # the public code never clips
    check(method, batch, "llmu")
    paper = build(LLMU)
    assert paper.grad_clip == 1.0
    assert float(paper.loss(batch)["loss"]) != pytest.approx(REFERENCE["llmu"][0], rel=1e-3)


@pytest.mark.parametrize("div", ["kl", "tv", "js", "pearson"])
def test_flat_reference_matches_flat_repo(div):
    batch = rows_batch(FORGET)
    batch["template"] = rows_batch(ALT)
    check(build(FLAT, parity="reference", divergence=div), batch, f"flat_{div}")


def test_idk_default_is_tofu_concatenated_mean_and_wagle_is_the_sum():
    batch = {**rows_batch(FORGET), "idk": rows_batch(ALT)}
    for parity in ("paper", "reference"):
        check(build(IdkPO, parity=parity), batch, "idk")
    summed = build(IdkPO, parity="wagle").loss(batch)
    assert float(summed["loss"]) == pytest.approx(float(summed["forget"] + summed["retain"]), abs=1e-6)


def test_ga_kl_reference_matches_tofu_kl():
    check(build(GAKL, parity="reference"), rows_batch(FORGET), "ga_kl")


def test_rmu_reference_matches_open_unlearning():
    method = build(RMU, parity="reference", layer=1, update_layers=[0, 1], alpha=100.0, steering_coeff=20.0)
    check(method, rows_batch(FORGET), "rmu")


def test_wagle_reference_npo_and_weight_decay_on_masked_out_weights():
    method = build(WAGLE, inner="npo_rt", parity="reference", reference="resident", weight_decay=0.1, mask="random")
    assert method.inner.parity == "wagle"
    batch = rows_batch(FORGET)
    check(method, batch, "wagle_npo")
    gm = torch.Generator().manual_seed(99)
    named = list(method.model.named_parameters())
    masks = {n: torch.rand(p.shape, generator=gm) < 0.5 for n, p in named}
    method.masks, method._mask_of = masks, {id(p): masks[n] for n, p in named}
    opt = torch.optim.AdamW(method.param_groups(), lr=1e-3)
    method.trainer = SimpleNamespace(optimizers=[opt])
    before = {n: p.detach().clone() for n, p in named}
    method.mask_gradients()
    opt.step()
    d = direction(method.model)
    moved_out = sum(int(((p.detach() != before[n]) & ~masks[n]).sum()) for n, p in named)
    delta_proj = sum(float(((p.detach() - before[n]).double() * d[n].double()).sum()) for n, p in named)
    delta_abs = sum(float((p.detach() - before[n]).double().abs().sum()) for n, p in named)
    # OPTML-Group/WAGLE: 3321 of the 3357 masked-out weights move (decayed; the rest are norm weights).
    assert (moved_out, sum(int((~m).sum()) for m in masks.values())) == (3321, 3357)
    assert delta_proj == pytest.approx(-4.7671418583049296e-05, abs=1e-6, rel=1e-6)
    assert delta_abs == pytest.approx(3.34920807567687, abs=1e-6, rel=1e-6)


# --------------------------------------------------------------------------- bad input


def test_parity_on_a_method_without_one_is_one_line_exit_2(capsys):
    from unlearnbench import cli

    rc = cli.main(["train", "--model", "tiny-test", "--benchmark", "tofu-synth", "--method", "ga",
                   "--set", "parity=reference", "--out", "/nonexistent/never"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert "'ga' has no parity='reference'" in err and "drop `parity`" in err and "Traceback" not in err
    rc = cli.main(["train", "--model", "tiny-test", "--benchmark", "tofu-synth", "--method", "flat",
                   "--set", "parity=wagle", "--out", "/nonexistent/never"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "choose one of paper, reference" in err, err


def test_grid_refuses_a_parity_the_method_lacks_before_running():
    from unlearnbench.runner.grid import GridError, parse_grid

    raw = {"name": "x", "benchmark": "tofu-synth", "models": ["tiny-test"],
           "methods": [{"name": "npo", "params": {"parity": "reference"}}]}
    with pytest.raises(GridError, match=r"'npo': unknown parity 'reference'; choose one of paper, wagle"):
        parse_grid(raw)
    raw["methods"] = [{"name": "llmu", "params": {"parity": "reference"}},
                      {"name": "idk", "params": {"parity": "wagle"}}]
    assert [c.params["parity"] for c in parse_grid(raw).cells] == ["reference", "wagle"]
    with pytest.raises(ValueError, match="'simnpo' has no parity"):
        build(__import__("unlearnbench.methods.simnpo", fromlist=["SimNPO"]).SimNPO, parity="reference")
