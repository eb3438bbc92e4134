"""The seed methods LLMU, FLAT and RMU: end-to-end runs on ``tiny-test`` and fidelity checks.

Every run unlearns the ``forget01`` split of the stand-in (one author, 20 rows) so that a
run is a few optimiser steps; runs are memoised per module so one run serves several
checks. Every run starts from the ``untrained`` fixture's random ``tiny-test`` model
(tests/conftest.py): these checks are about what each loss does to a model's weights and
outputs, not about a model that has learnt the stand-in.
"""

from __future__ import annotations

import csv

import pytest
import torch

from unlearnbench.methods import losses
from unlearnbench.runner.train import unlearn

SPLIT = "forget01"  # 20 forget rows
SEED = 42
BASE = {"lr": 1e-3, "epochs": 1, "batch_size": 16}
# Fidelity runs: full lr from step 0 (no warm-up) and a few more steps.
FAST = {"batch_size": 8, "warmup_epochs": 0.0}

COLUMNS = {
    "llmu": {"step", "loss", "forget", "mismatch", "kl", "forget_nll"},
    "flat": {"step", "loss", "forget", "p_template", "p_forget"},
    "rmu": {"step", "loss", "forget", "retain"},
}


@pytest.fixture(scope="module")
def run(untrained, tmp_path_factory):
    """``run(key, method, **params)`` -> (info, history rows as floats, saved model dir)."""
    done = {}

    def _run(key, method, **params):
        if key not in done:
            out = tmp_path_factory.mktemp(f"seed-{key}")
            info = unlearn(method, untrained["spec"], split=SPLIT, out_dir=out, seed=SEED, start=untrained["model"],
                           params={**BASE, **params})
            with open(out / "history.csv") as f:
                hist = [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]
            done[key] = (info, hist, out / "model")
        return done[key]

    return _run


def _load(path):
    from unlearnbench.models.specs import load_model

    return load_model(str(path), dtype=torch.float32).eval()


def _encoder(untrained):
    from unlearnbench.data.collate import Encoder
    from unlearnbench.models.specs import load_tokenizer

    return Encoder(load_tokenizer(untrained["model"]), untrained["spec"].template)


def _datamodule(untrained, needs, batch_size, k_random=5):
    """The same data module (same seed, same extras) the driver builds."""
    from unlearnbench.benchmarks.tofu import TofuSynthBenchmark

    dm = TofuSynthBenchmark().datamodule(SPLIT, _encoder(untrained), batch_size=batch_size,
                                         seed=SEED, needs=needs, k_random=k_random)
    dm.setup("fit")
    return dm


def _check_run(info, hist, model_dir, method, n_steps):
    assert info["steps"] == n_steps == len(hist)
    assert set(hist[0]) == COLUMNS[method]
    assert all(torch.isfinite(torch.tensor(row["loss"])) for row in hist)
    model = _load(model_dir)
    ids = torch.tensor([[1, 5, 6, 7]])
    assert torch.isfinite(model(input_ids=ids).logits).all()


# ----------------------------------------------------------------------------- 1. end to end


def test_llmu_end_to_end_and_huge_threshold_does_not_stop(run):
    info, hist, model_dir = run("llmu", "llmu", k_random=2, stop_threshold=1e9, batch_size=8)
    _check_run(info, hist, model_dir, "llmu", n_steps=3)  # full epoch: ceil(20 / 8)
    row = hist[0]
    assert row["forget"] == pytest.approx(-0.5 * row["forget_nll"], rel=1e-5)
    assert row["kl"] == pytest.approx(0.0, abs=1e-6)  # θ = ref at step 0
    assert row["loss"] == pytest.approx(row["forget"] + row["mismatch"] + row["kl"], rel=1e-5)


@pytest.mark.parametrize("divergence", ["kl", "js", "pearson", "tv"])
def test_flat_end_to_end(run, divergence):
    info, hist, model_dir = run(f"flat-{divergence}", "flat", divergence=divergence)
    _check_run(info, hist, model_dir, "flat", n_steps=2)
    p_e, p_f = torch.tensor(hist[0]["p_template"]), torch.tensor(hist[0]["p_forget"])
    assert 0 < p_e < 1 and 0 < p_f < 1


def test_flat_rejects_unknown_divergence(untrained):
    from unlearnbench.methods.flat import FLAT

    with pytest.raises(ValueError, match="kl, js, pearson, tv"):
        FLAT(model_path=untrained["model"], divergence="hellinger")


def test_rmu_end_to_end_default_layers(run, untrained):
    info, hist, model_dir = run("rmu", "rmu")
    _check_run(info, hist, model_dir, "rmu", n_steps=2)
    assert hist[0]["retain"] == pytest.approx(0.0, abs=1e-6)  # θ = ref at step 0
    # tiny-test has 2 layers: 7/32 of the depth is layer 0 (rmu.default_layers), and only
    # its MLP down projection moves, as WMDP's param_ids=[6]; everything else stays.
    before, after = _load(untrained["model"]).state_dict(), _load(model_dir).state_dict()
    for name in before:
        same = torch.equal(before[name], after[name])
        assert same == (name != "model.layers.0.mlp.down_proj.weight"), name


# ----------------------------------------------------------------------------- 2. fidelity


def test_llmu_early_stop_triggers_on_ascended_loss(run):
    # The forget NLL is positive (~6 on the untrained model), so a low threshold stops after step 1;
    # the public code's sign bug (comparing −NLL) would never stop.
    info, hist, _ = run("llmu-stop", "llmu", k_random=1, stop_threshold=1e-3, batch_size=8)
    assert info["steps"] == len(hist) == 1 < 3
    assert hist[0]["forget_nll"] > 1e-3


def test_llmu_rejects_non_positive_threshold(untrained):
    from unlearnbench.methods.llmu import LLMU

    with pytest.raises(ValueError, match="stop_threshold"):
        LLMU(model_path=untrained["model"], stop_threshold=-5.0)


def test_flat_kl_step0_loss_matches_independent_computation(run, untrained):
    _, hist, _ = run("flat-kl", "flat", divergence="kl")
    batch = next(iter(_datamodule(untrained, ("template",), BASE["batch_size"]).train_dataloader()))
    model = _load(untrained["model"])

    def mean_prob(sub):
        with torch.no_grad():
            logits = model(input_ids=sub["input_ids"], attention_mask=sub["attention_mask"]).logits
        probs = torch.softmax(logits.double(), dim=-1)
        out = []
        for i in range(len(logits)):
            pos = [t for t in range(1, logits.shape[1]) if sub["labels"][i, t] != -100]
            out.append(sum(probs[i, t - 1, sub["labels"][i, t]] for t in pos) / len(pos))
        return torch.stack(out)

    p_e, p_f = mean_prob(batch["template"]), mean_prob(batch)
    expected = (-p_e + torch.exp(p_f - 1)).mean().item()
    assert hist[0]["loss"] == pytest.approx(expected, abs=1e-5)
    assert hist[0]["p_template"] == pytest.approx(p_e.mean().item(), abs=1e-5)
    assert hist[0]["p_forget"] == pytest.approx(p_f.mean().item(), abs=1e-5)


def _layer_out(model, layer, sub):
    """Output of decoder layer ``layer`` via a hook of the test's own, [B, T, D]."""
    got = []
    h = model.model.layers[layer].register_forward_hook(
        lambda m, i, o: got.append(o[0] if isinstance(o, tuple) else o))
    with torch.no_grad():
        model(input_ids=sub["input_ids"], attention_mask=sub["attention_mask"])
    h.remove()
    return got[0]


def _mse(a, b, mask):
    m = mask.bool()
    return ((a - b) ** 2)[m].mean().item()


def test_rmu_moves_forget_activations_to_control_and_keeps_retain(run, untrained):
    """Run with layer 1 and only layer 1's MLP down projection updated (default c = 20,
    α = 100): forget MSE to c·u/‖u‖ decreases; retain activations stay close to the
    reference; every other parameter is unchanged."""
    from unlearnbench.methods.rmu import RMU

    _, hist, model_dir = run("rmu-l1", "rmu", layer=1, update_layers=[1], **FAST)
    control = RMU(model_path=untrained["model"], seed=SEED, layer=1).control
    g = torch.Generator().manual_seed(SEED)
    assert torch.equal(control, losses.rmu_control_vector(control.numel(), 20.0, g))
    assert control.norm().item() == pytest.approx(20.0, rel=1e-5)

    dm = _datamodule(untrained, ("retain",), 20)
    forget = next(iter(dm.train_dataloader()))
    retain = next(iter(dm.retain_loader(0)))
    ref, new = _load(untrained["model"]), _load(model_dir)
    f_before = _mse(_layer_out(ref, 1, forget), control, forget["attention_mask"])
    f_after = _mse(_layer_out(new, 1, forget), control, forget["attention_mask"])
    r_drift = _mse(_layer_out(new, 1, retain), _layer_out(ref, 1, retain), retain["attention_mask"])
    assert f_after < f_before, (f_before, f_after)
    assert r_drift < 0.1 * (f_before - f_after), (f_before, f_after, r_drift)

    # 3. Parameters outside update_layers are bit-for-bit unchanged.
    before, after = ref.state_dict(), new.state_dict()
    moved = {n for n in before if not torch.equal(before[n], after[n])}
    assert moved == {"model.layers.1.mlp.down_proj.weight"}, moved


def test_llmu_fixed_step_budget_cycles_the_forget_data(untrained, tmp_path):
    """LLMU's recipe is a step budget, not epochs: 7 steps over 3 forget batches per epoch."""
    info = unlearn("llmu", untrained["spec"], split=SPLIT, out_dir=tmp_path, seed=SEED, start=untrained["model"],
                   params={"lr": 1e-4, "batch_size": 8, "epochs": 1, "steps": 7, "warmup_epochs": 0,
                           "k_random": 1})
    with open(tmp_path / "history.csv") as f:
        hist = list(csv.DictReader(f))
    assert info["steps"] == len(hist) == 7  # one epoch is 3 steps: the budget wins


def test_shipped_grids_run_llmu_with_its_paper_recipe_on_real_models():
    from pathlib import Path

    from unlearnbench.methods.llmu import PAPER_DEFAULTS
    from unlearnbench.runner.grid import load_grid

    seen = 0
    for path in sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("*.yaml")):
        for cell in load_grid(path, model="llama2-7b").cells:  # `make bench MODEL=llama2-7b`
            if cell.method == "llmu":
                swept = cell.label.partition("[")[2]  # a tuning grid's swept keys vary on purpose
                want = {k: v for k, v in PAPER_DEFAULTS.items() if f"{k}=" not in swept}
                assert {k: cell.params[k] for k in want} == want, (path.name, cell.params)
                seen += 1
    assert seen
