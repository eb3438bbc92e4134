"""WAGLE: masked-out weights stay bit-for-bit, mask densities, the score, baselines, options."""

from __future__ import annotations

import csv
import json
import math
from types import SimpleNamespace

import pytest
import torch

from unlearnbench.methods.wagle import (MASKS, WAGLE, decoder_linears, input_norms, nll_grad, top_fraction,
                                        top_per_row, wagle_score)


def _params(path):
    from unlearnbench.models.specs import load_model

    return {n: p.detach() for n, p in load_model(str(path), dtype=torch.float32).named_parameters()}


def _density(masks):
    return sum(int(m.sum()) for m in masks.values()) / sum(m.numel() for m in masks.values())


@pytest.fixture(scope="module")
def small_dm(untrained):
    """The tofu-synth forget10 data, cut to 24 forget and 24 retain rows (scoring is cheap)."""
    from unlearnbench.benchmarks.tofu import TofuSynthBenchmark
    from unlearnbench.data.collate import Encoder
    from unlearnbench.data.datamodule import Rows
    from unlearnbench.models.specs import load_tokenizer

    spec, target = untrained["spec"], untrained["model"]
    dm = TofuSynthBenchmark().datamodule("forget10", Encoder(load_tokenizer(target, spec), spec.template),
                                         batch_size=16, seed=42)
    dm.setup("fit")
    dm.forget_set, dm.retain_set = Rows(dm.forget_set.rows[:24]), Rows(dm.retain_set.rows[:24])
    return dm


def _build(untrained, seed=42, **params):
    from unlearnbench.runner.train import build_method

    return build_method("wagle", untrained["model"], seed, {"inner": "ga", "batch_size": 16, **params})


def _check_frozen(untrained, run_dir):
    """Masked-out weights of the saved model equal the target's bit for bit; some masked-in moved."""
    from safetensors.torch import load_file

    masks = load_file(str(run_dir / "wagle_masks.safetensors"))
    before, after = _params(untrained["model"]), _params(run_dir / "model")
    assert set(masks) == set(before) == set(after)
    moved = 0
    for name, m in masks.items():
        assert m.dtype == torch.bool and m.shape == before[name].shape
        assert torch.equal(after[name][~m], before[name][~m]), f"masked-out weights of {name} moved"
        moved += int((after[name][m] != before[name][m]).sum())
    assert moved > 0.2 * sum(int(m.sum()) for m in masks.values())
    return masks


def test_masked_out_weights_stay_bit_exact(untrained, tmp_path):
    from unlearnbench.runner.train import unlearn

    params = {"inner": "ga", "ratio": 0.5, "lr": 1e-3, "epochs": 1, "batch_size": 16, "save_masks": True}
    info = unlearn("wagle", untrained["spec"], out_dir=tmp_path, params=params, start=untrained["model"])
    assert info["steps"] == 5
    masks = _check_frozen(untrained, tmp_path)
    stats = json.loads((tmp_path / "wagle_mask.json").read_text())
    assert stats["mask"] == "wagle" and stats["inner"] == "ga"
    assert abs(stats["density"] - 0.5) <= 1e-3 and stats["density"] == pytest.approx(_density(masks))


def test_wraps_grad_diff_and_npo(untrained, small_dm, tmp_path):
    from unlearnbench.runner.train import unlearn

    # grad_diff draws retain batches through the Trainer while WAGLE is the attached module.
    params = {"inner": "grad_diff", "mask": "wanda", "ratio": 0.5, "lr": 1e-3, "epochs": 1,
              "batch_size": 32, "save_masks": True}
    info = unlearn("wagle", untrained["spec"], out_dir=tmp_path, params=params, start=untrained["model"])
    _check_frozen(untrained, tmp_path)
    with open(tmp_path / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == info["steps"] == 3 and all(float(r["retain"]) > 0 for r in rows)

    # The cost adds the inner's retain tokens to WAGLE's own count.
    gd = _build(untrained, inner="grad_diff", mask="dense")
    assert gd.needs == ("retain",) and not gd.needs_reference and gd.ref_model is None
    gd.tokens_seen += 7
    gd.inner.tokens_seen += 5
    gd.tokens_seen += 1
    assert (gd.tokens_seen, gd.inner.tokens_seen) == (13, 5)

    npo = _build(untrained, inner="npo", mask="dense", inner_params={"beta": 0.2})
    assert npo.needs_reference and npo.ref_model is npo.inner.ref_model is not None
    assert npo.model is npo.inner.model and npo.inner.settings.beta == 0.2
    batch = small_dm.collator(extras=False)([small_dm.forget_set[i] for i in range(4)])
    with torch.no_grad():
        terms = npo.loss(batch)  # at θ = ref: (2/β)·log 2
    assert float(terms["loss"]) == pytest.approx(2 / 0.2 * math.log(2), rel=1e-5)


def test_mask_gradients_is_adamw_on_masked_in_only(untrained, small_dm):
    """The reasoning behind the guarantee, one optimiser step at a time: WAGLE's groups have
    weight decay 0 and it decays masked-in weights itself; masked-out weights (zero grad, zero
    moments) do not move at all, masked-in ones move exactly as under plain AdamW."""
    method = _build(untrained, mask="random", ratio=0.5, lr=1e-2, weight_decay=0.1)
    masks = method.compute_masks(small_dm)
    named = dict(method.model.named_parameters())
    start = {n: p.detach().clone() for n, p in named.items()}
    ref = {n: p.detach().clone().requires_grad_() for n, p in named.items()}
    ref_opt = torch.optim.AdamW([{"params": [ref[n] for n in named if named[n].ndim >= 2], "weight_decay": 0.1},
                                 {"params": [ref[n] for n in named if named[n].ndim < 2], "weight_decay": 0.0}],
                                lr=1e-2)
    opt = torch.optim.AdamW(method.param_groups(), lr=1e-2)
    method.trainer = SimpleNamespace(optimizers=[opt])  # all mask_gradients reads from the Trainer
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        for n, p in named.items():
            g = torch.randn(p.shape, generator=gen)
            p.grad, ref[n].grad = g.clone(), g * masks[n]
        method.mask_gradients()
        opt.step()
        ref_opt.step()
    for n, m in masks.items():
        assert torch.equal(named[n].detach()[~m], start[n][~m])
        assert torch.allclose(named[n].detach()[m], ref[n].detach()[m], rtol=1e-6, atol=0)
        assert not torch.equal(named[n].detach()[m], start[n][m])


@pytest.mark.parametrize("ratio", [0.3, 0.8])
def test_wagle_mask_density(untrained, small_dm, ratio):
    method = _build(untrained, ratio=ratio, gamma=1e-6)
    masks = method.compute_masks(small_dm)
    trainable = {n for n, p in method.model.named_parameters() if p.requires_grad}
    assert set(masks) == trainable and all(m.dtype == torch.bool for m in masks.values())
    assert abs(_density(masks) - ratio) <= 1e-3 and method.mask_density == pytest.approx(_density(masks))
    assert sum(1 for m in masks.values() if m.any()) > 1  # ranked globally, not one tensor


def test_score_matches_hand_computation(untrained, small_dm):
    lin = torch.nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, -2.0], [0.5, 3.0]]))
    g_f = torch.tensor([[0.1, 0.2], [-0.3, 0.4]])
    g_r = torch.tensor([[1e-6, 0.0], [0.0, -2e-6]])
    # |θ·g_f − g_r·g_f/γ| with γ = 1e-6: |0.1 − 0.1|, |−0.4|, |−0.15|, |1.2 + 0.8|
    s = wagle_score(lin.weight, g_f, g_r, gamma=1e-6)
    assert torch.allclose(s, torch.tensor([[0.0, 0.4], [0.15, 2.0]]), atol=1e-6)
    assert top_fraction({"w": s}, 0.5)["w"].tolist() == [[False, True], [False, True]]
    # Ranking is global; ties at the threshold still give the exact count.
    kept = top_fraction({"a": torch.zeros(3, 2), "b": torch.tensor([5.0, 0.0])}, 0.25)
    assert kept["b"].tolist() == [True, False] and int(kept["a"].sum()) == 1

    # g_f is the gradient of the token-mean NLL over the whole set, whatever the batching.
    from torch.utils.data import DataLoader

    from unlearnbench.methods import losses

    method = _build(untrained)
    params = [p for p in method.model.parameters() if p.requires_grad]
    one = small_dm.collator(extras=False)([small_dm.forget_set[i] for i in range(len(small_dm.forget_set))])
    ref = torch.autograd.grad(losses.mean_nll(method.model(input_ids=one["input_ids"],
                                              attention_mask=one["attention_mask"]).logits, one["labels"]), params)
    got, seen = nll_grad(method.model, params, DataLoader(small_dm.forget_set, batch_size=5,
                                                           collate_fn=small_dm.collator(extras=False)), "cpu")
    assert seen == int(one["attention_mask"].sum())
    for a, b in zip(got, ref):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-4)


def test_baseline_masks(untrained, small_dm):
    masks = {}
    for kind in ("random", "magnitude", "wanda", "dense"):
        method = _build(untrained, mask=kind, ratio=0.4, seed=7)
        masks[kind] = method.compute_masks(small_dm)
        if kind == "dense":
            assert all(bool(m.all()) for m in masks[kind].values()) and method.mask_density == 1.0
            assert any(g["weight_decay"] > 0 for g in method.param_groups())  # the inner's own groups
        else:
            if kind != "wanda":  # wanda: ratio of each compared row, checked below
                assert abs(_density(masks[kind]) - 0.4) <= 1e-3
            assert all(g["weight_decay"] == 0 for g in method.param_groups())
    # magnitude: one global threshold on |θ|.
    theta = dict(method.model.named_parameters())
    kept = torch.cat([theta[n].detach().abs()[m] for n, m in masks["magnitude"].items()])
    dropped = torch.cat([theta[n].detach().abs()[~m] for n, m in masks["magnitude"].items()])
    assert kept.min() >= dropped.max()
    # wanda: 0.4 of every output row of every decoder-block Linear; the other tensors are
    # not compared and always updated (the WAGLE authors' code), so the overall density is higher.
    linears = decoder_linears(method.model)
    assert linears and set(linears) < set(masks["wanda"])
    for n, m in masks["wanda"].items():
        if n in linears:
            assert (m.sum(dim=1) == round(0.4 * m.shape[1])).all(), n
        else:
            assert m.all(), n
    compared = sum(masks["wanda"][n].numel() for n in linears)
    assert sum(int(masks["wanda"][n].sum()) for n in linears) / compared == pytest.approx(0.4, abs=0.01)
    assert _density(masks["wanda"]) > 0.45
    # and it weighs |W| by the input-activation norm, so it differs from a per-row |W| ranking.
    assert any(not torch.equal(masks["wanda"][n], top_per_row(theta[n].detach().abs(), 0.4)) for n in linears)
    # random: reproducible with the same seed, different with another.
    again = _build(untrained, mask="random", ratio=0.4, seed=7).compute_masks(small_dm)
    other = _build(untrained, mask="random", ratio=0.4, seed=8).compute_masks(small_dm)
    assert all(torch.equal(again[n], masks["random"][n]) for n in again)
    assert any(not torch.equal(other[n], masks["random"][n]) for n in other)


@pytest.mark.parametrize("params, match", [
    ({"mask": "foo"}, "'mask' of method 'wagle' must be one of " + ", ".join(MASKS) + "; got 'foo'"),
    ({"ratio": 0}, r"'ratio' of method 'wagle' must be \(0, 1\], got 0"),
    ({"ratio": 1.5}, r"'ratio' of method 'wagle' must be \(0, 1\], got 1.5"),
    ({"gamma": 0}, "gamma"),
    ({"inner": "wagle"}, "cannot wrap itself"),
    ({"inner_params": {"lambda_retain": 0.5}, "lambda_retain": 1.0}, "both directly and in inner_params"),
    # Loop settings WAGLE runs itself would be silently ignored inside the inner method.
    ({"inner_params": {"lr": 1e-4}},
     r"inner_params \['lr'\] is a shared training-loop setting .* set lr at the top level"),
    ({"inner_params": {"epochs": 2, "grad_clip": 0.5}},
     r"\['epochs', 'grad_clip'\] are shared .* set epochs, grad_clip at the top"),
    ({"inner_params": {"batch_size": 8}}, "batch_size at the top level"),
    ({"inner_params": {"k_random": 2}}, "k_random at the top level"),
])
def test_bad_options(untrained, params, match):
    with pytest.raises(ValueError, match=match):
        _build(untrained, **params)


def test_unknown_inner_names_the_known_methods(untrained):
    from unlearnbench.registry import RegistryError

    with pytest.raises(RegistryError, match="Known methods: .*grad_diff"):
        WAGLE(untrained["model"], inner="nope")


def test_top_per_row_by_hand():
    s = torch.tensor([[3.0, 1.0, 2.0, 0.5],
                      [1.0, 1.0, 1.0, 4.0]])
    # keep round(0.5·4) = 2 per row: row 0 keeps 3 and 2; row 1 keeps 4 and, of the tied 1s,
    # the last (Wanda's stable ascending sort prunes the lower column indices first).
    assert top_per_row(s, 0.5).tolist() == [[True, False, True, False], [False, False, True, True]]
    # ratio 0.9 of 10 columns keeps 9: int(10·(1 − 0.9)) would prune 0 through float rounding
    assert int(top_per_row(torch.arange(10.0)[None], 0.9).sum()) == 9


def test_wanda_scores_rows_of_decoder_linears_with_input_norms(untrained, small_dm):
    """‖X_j‖₂ of q_proj's input = input_layernorm(hidden state entering the block), over the
    non-padding tokens, computed here from output_hidden_states; then each row of q_proj
    keeps its top ratio of |W|·‖X‖ — and the other tensors are not masked."""

    method = _build(untrained, mask="wanda", ratio=0.6)
    masks = method.compute_masks(small_dm)
    model = method.model
    batch = small_dm.collator(extras=False)([small_dm.forget_set[i] for i in range(len(small_dm.forget_set))])
    got, seen = input_norms(model, [(batch, 1.0)], "cpu")
    assert seen == int(batch["attention_mask"].sum())
    with torch.no_grad():
        hs = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                   output_hidden_states=True).hidden_states
        keep = batch["attention_mask"].bool()
        for i, layer in enumerate(model.model.layers):
            x = layer.input_layernorm(hs[i])[keep]  # [tokens, d]
            want = x.pow(2).sum(0).sqrt()
            name = f"model.layers.{i}.self_attn.q_proj.weight"
            assert torch.allclose(got[name], want, rtol=1e-4), name
            score = layer.self_attn.q_proj.weight.abs() * want
            m = masks[name]
            assert (m.sum(1) == round(0.6 * m.shape[1])).all()
            for row in range(m.shape[0]):  # within each row the kept scores are the highest
                assert score[row][m[row]].min() >= score[row][~m[row]].max() - 1e-6
    # embeddings (tied to lm_head in the tiny models) and norms: never compared, always updated
    assert masks["model.embed_tokens.weight"].all() and masks["model.norm.weight"].all()
    stats = method.mask_stats
    assert stats["compared_density"] == pytest.approx(0.6, abs=0.01) and stats["density"] > 0.6


def test_inner_params_keep_the_inner_loss_weights(untrained):
    gd = _build(untrained, inner="grad_diff", mask="dense", inner_params={"lambda_retain": 0.25})
    assert gd.inner.lambda_retain == 0.25


# --------------------------------------------------------------------------- FSDP2 (2 gloo processes)
_SHARDED_SCRIPT = r"""
import os, sys, torch, torch.distributed as dist

def main(rank, world, out, port):
    from unlearnbench.methods.wagle_masks import row_block, top_fraction_sharded

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    full = torch.load(os.path.join(out, "scores.pt"))
    res = {}
    for ratio in (0.1, 0.37, 0.5, 0.9, 1.0):
        local = top_fraction_sharded({n: row_block(s, rank, world) for n, s in full.items()}, ratio)
        res[ratio] = local
    torch.save(res, os.path.join(out, f"rank{rank}.pt"))
    dist.destroy_process_group()

if __name__ == "__main__":
    import torch.multiprocessing as mp
    mp.spawn(main, args=(2, sys.argv[1], int(sys.argv[2])), nprocs=2)
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_script(tmp_path, text: str, *args) -> str:
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "script.py"
    script.write_text(text)
    env = {k: v for k, v in os.environ.items()
           if k not in ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    repo = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([repo] + [p for p in [env.get("PYTHONPATH")] if p])
    proc = subprocess.run([sys.executable, str(script), *map(str, args)], cwd=tmp_path, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:]
    return proc.stdout


def test_top_fraction_sharded_equals_top_fraction_over_two_ranks(tmp_path):
    """Row blocks of uneven sizes (5 rows: 3 + 2; 1 row: rank 1 empty), many ties (small
    integers, exact zeros): the two ranks' masks put together are top_fraction's."""
    gen = torch.Generator().manual_seed(0)
    full = {"a": torch.randint(0, 4, (5, 3), generator=gen).float(),
            "b": torch.randint(0, 4, (1, 7), generator=gen).float(),
            "c": torch.zeros(4),
            "d": torch.rand(6, 2, generator=gen)}
    torch.save(full, tmp_path / "scores.pt")
    _run_script(tmp_path, _SHARDED_SCRIPT, tmp_path, _free_port())
    parts = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for ratio, want in ((r, top_fraction(full, r)) for r in parts[0]):
        got = {n: torch.cat([parts[0][ratio][n], parts[1][ratio][n]]) for n in full}
        for n in full:
            assert torch.equal(got[n], want[n]), (ratio, n, got[n], want[n])


_FSDP_SCRIPT = r"""
import json, sys

if __name__ == "__main__":
    from unlearnbench.runner.train import unlearn
    from unlearnbench.models.specs import ModelSpec

    unlearn("wagle", ModelSpec.from_name("tiny-test"), split="forget10", out_dir=sys.argv[1],
            strategy="fsdp", devices=2, params=json.loads(sys.argv[2]), start=sys.argv[3])
"""
# γ where both terms of the score matter, so that gradients off by the world size (FSDP2
# averages over ranks) would change the mask: on the untrained tiny-test model (seed 0, forget10,
# ratio 0.5) halving both gradients changes 11296 of the 115008 mask entries at γ = 0.04, and
# none at γ = 1e-6, where only |g_r·g_f| counts. (On the trained target: 8788 and 2.)
FSDP_PARAMS = {"inner": "ga", "mask": "wagle", "ratio": 0.5, "gamma": 0.04, "lr": 1e-3, "epochs": 1,
               "batch_size": 16, "warmup_epochs": 0.0, "save_masks": True}


@pytest.mark.parametrize("mask", ["wagle", "wanda"])
def test_fsdp2_masks_equal_single_process_and_masked_out_weights_stay(untrained, tmp_path, mask):
    """WAGLE under FSDP2 (Lightning ModelParallelStrategy, 2 gloo processes on CPU), as
    tests/test_distributed.py runs FSDP2: the mask from sharded gradients (wagle) or sharded
    activation norms (wanda) equals the single-process mask of the same target and data, and
    after training every masked-out weight of the saved model is bit-identical to the target."""
    import json as _json

    from safetensors.torch import load_file

    from unlearnbench.benchmarks.tofu import TofuSynthBenchmark
    from unlearnbench.data.collate import Encoder
    from unlearnbench.models.specs import load_tokenizer

    spec, target = untrained["spec"], untrained["model"]
    dm = TofuSynthBenchmark().datamodule("forget10", Encoder(load_tokenizer(target, spec), spec.template),
                                         batch_size=16, seed=42)
    dm.setup("fit")
    params = {**FSDP_PARAMS, "mask": mask}
    single = _build(untrained, **{k: v for k, v in params.items() if k != "inner"})
    want = {n: m.cpu() for n, m in single.compute_masks(dm).items()}

    run_dir = tmp_path / "fsdp"
    _run_script(tmp_path, _FSDP_SCRIPT, run_dir, _json.dumps(params), target)
    got = load_file(str(run_dir / "wagle_masks.safetensors"))
    assert set(got) == set(want)
    for n in want:
        assert torch.equal(got[n], want[n]), (n, int((got[n] ^ want[n]).sum()))
    stats = _json.loads((run_dir / "wagle_mask.json").read_text())
    assert stats["mask"] == mask and stats["density"] == pytest.approx(single.mask_density, abs=1e-9)
    assert abs(stats["compared_density"] - 0.5) <= 1e-3
    _check_frozen(untrained, run_dir)
