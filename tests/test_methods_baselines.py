"""The baseline unlearning methods end to end on ``tiny-test`` (docs/methods.md).

One unlearning run per method (forget10, lr 1e-3, one epoch, batch 16 → a handful of
steps) is cached for the module and shared by the end-to-end and fidelity checks.
Torch runs single-threaded here: on a small shared CPU, OpenMP threads spinning against
other processes make a tiny model's step ~50x slower.
"""

from __future__ import annotations

import csv
import inspect
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from unlearnbench.methods import losses
from unlearnbench.methods.base import NonFiniteLossError, UnlearningMethod
from unlearnbench.methods.settings import declared
from unlearnbench.runner.train import build_method, unlearn
from unlearnbench.registry import methods

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
PARAMS = {"lr": 1e-3, "epochs": 1, "batch_size": 16}
# name -> (class name, needs, needs_reference, logged terms besides "loss", default γ)
METHODS = {
    "grad_diff": ("GradDiff", ("retain",), False, {"forget", "retain"}, 1.0),
    "ga_kl": ("GAKL", ("retain",), True, {"forget", "kl"}, 1.0),
    "idk": ("IdkPO", ("idk", "retain"), False, {"forget", "retain"}, 1.0),
    "dpo": ("IdkDPO", ("idk", "retain"), True, {"forget", "retain"}, 1.0),
    "npo": ("NPO", (), True, {"forget"}, 1.0),
    "npo_rt": ("NPORT", ("retain",), True, {"forget", "retain"}, 1.0),
    "simnpo": ("SimNPO", ("retain",), False, {"forget", "retain"}, 0.125),
}
TWO_OVER_BETA_LOG2 = (2 / 0.1) * math.log(2)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def family(untrained, _isolated_cache):
    """What every check here starts from: the untrained ``tiny-test`` model (``model``), its
    ``spec`` and the test session's ``cache``. The checks are about what each loss does to a
    model's weights and outputs, not about a model that has learnt the stand-in."""
    return {"spec": untrained["spec"], "model": untrained["model"], "cache": _isolated_cache}


@pytest.fixture(scope="module")
def run_method(family, tmp_path_factory):
    """``run(name)`` -> (out_dir, info, history rows); each method is unlearned once."""
    done: dict[str, tuple] = {}

    def run(name: str):
        if name not in done:
            out = tmp_path_factory.mktemp(f"unlearn-{name}")
            info = unlearn(name, family["spec"], start=family["model"], out_dir=out, params=dict(PARAMS))
            done[name] = (out, info, _read_history(out / "history.csv"))
        return done[name]

    return run


@pytest.fixture(scope="module")
def encoder(family):
    from unlearnbench.data.collate import Encoder
    from unlearnbench.models.specs import load_tokenizer

    return Encoder(load_tokenizer(family["model"]), family["spec"].template)


def _read_history(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _forget_rows() -> list[dict]:
    from unlearnbench.data.tofu import load_config
    from unlearnbench.data.tofu_synth import STAND_IN

    return [dict(r) for r in load_config(str(STAND_IN.directory()), "forget10")]


def _load(path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(path)).eval()


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    files = sorted(Path(model_dir).glob("*.safetensors"))
    assert files, f"no safetensors in {model_dir}"
    out = {}
    for f in files:
        out.update(load_file(str(f)))
    return out


# --------------------------------------------------------------------------- static contract


@pytest.mark.parametrize("name", sorted(METHODS))
def test_class_contract(name):
    cls_name, needs, needs_ref, _, gamma = METHODS[name]
    cls = methods.get(name)
    assert cls.__name__ == cls_name and cls.name == name
    assert cls.__bases__ == (UnlearningMethod,), "each method subclasses UnlearningMethod directly"
    assert tuple(cls.needs) == needs and cls.needs_reference is needs_ref
    doc = inspect.getdoc(cls).splitlines()[0]
    assert "minimise" in doc and (any(c.isdigit() for c in doc) or "TOFU" in doc), doc
    defaults = {k: default for k, (_, default) in declared(cls).items()}  # the settings it declares
    if "beta" in defaults:
        assert defaults["beta"] == (4.5 if name == "simnpo" else 0.1)
    if name == "simnpo":
        assert defaults["delta"] == 0.0 and defaults["gamma_forget"] == gamma


@pytest.mark.parametrize("name, kw, param", [
    ("npo", {"beta": 0.0}, "beta"), ("npo_rt", {"beta": -1.0}, "beta"),
    ("dpo", {"beta": 0.0}, "beta"), ("simnpo", {"beta": 0.0}, "beta"),
    ("simnpo", {"delta": float("nan")}, "delta"), ("grad_diff", {"lambda_retain": -1.0}, "lambda_retain"),
    ("idk", {"gamma_forget": -0.5}, "gamma_forget"), ("ga_kl", {"lambda_retain": float("nan")}, "lambda_retain"),
])
def test_bad_hyper_parameters_name_method_and_parameter(name, kw, param):
    # Validation happens before any model is loaded, so no checkpoint is needed.
    with pytest.raises(ValueError, match=rf"'{name}'.*{param}"):
        methods.get(name)(model_path="/nonexistent", **kw)


def test_unknown_hyper_parameter_is_a_value_error():
    with pytest.raises(ValueError, match=r"unknown parameter 'betta' for method 'npo' \(did you mean 'beta'\?\)"):
        build_method("npo", "/nonexistent", 42, {"betta": 0.2})


# --------------------------------------------------------------------------- 1. end to end


@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_trains_end_to_end(name, run_method, family):
    out, info, history = run_method(name)
    _, _, _, terms, gamma = METHODS[name]
    n_forget = len(_forget_rows())
    assert info["steps"] == math.ceil(n_forget / PARAMS["batch_size"]) >= 2
    assert len(history) == info["steps"]
    assert [r["step"] for r in history] == list(range(info["steps"]))
    assert set(history[0]) == {"step", "loss"} | terms
    for row in history:
        assert all(math.isfinite(v) for v in row.values()), row
        other = sum(v for k, v in row.items() if k in terms - {"forget"})
        if name == "idk":  # TOFU's one token mean over both batches: a weighted mean of the two means
            lo, hi = sorted((row["forget"], row["retain"]))
            assert lo - 1e-6 <= row["loss"] <= hi + 1e-6, row
        else:  # the total is γ·forget + λ·(the other term), λ = 1
            assert row["loss"] == pytest.approx(gamma * row["forget"] + other, rel=1e-5, abs=1e-6)
    model = _load(out / "model")
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(str(out / "model")) is not None
    target = _weights(Path(family["model"]))  # the model it started from
    after = {k: v for k, v in model.state_dict().items() if k in target}
    assert after and all(torch.isfinite(v).all() for v in after.values())
    assert any(not torch.equal(after[k], target[k]) for k in after), "no weight moved"


# --------------------------------------------------------------------------- 2. fidelity


@pytest.mark.parametrize("name", ["npo", "npo_rt", "dpo"])
def test_first_preference_loss_is_two_over_beta_log2(name, run_method):
    # θ = ref at step 0, so the log-ratio (NPO) or the margin (DPO) is exactly 0.
    _, _, history = run_method(name)
    assert history[0]["forget"] == pytest.approx(TWO_OVER_BETA_LOG2, abs=1e-4)
    if name == "npo":
        assert history[0]["loss"] == pytest.approx(TWO_OVER_BETA_LOG2, abs=1e-4)
    assert history[-1]["forget"] < history[0]["forget"]


def test_ga_kl_first_kl_is_zero(run_method):
    _, _, history = run_method("ga_kl")
    assert abs(history[0]["kl"]) < 1e-6
    assert max(r["kl"] for r in history) > 1e-6  # the model then moves away from the reference


# --------------------------------------------------------------------------- 3. frozen reference


@pytest.mark.parametrize("name", ["npo", "dpo", "ga_kl"])
def test_reference_model_is_frozen_and_not_optimised(name, family):
    import lightning as L

    from unlearnbench.benchmarks.tofu import TofuSynthBenchmark
    from unlearnbench.data.collate import Encoder
    from unlearnbench.models.specs import load_tokenizer

    L.seed_everything(0, verbose=False)
    # A resident reference (NPO and IdkDPO cache theirs by default and then drop the model).
    method = build_method(name, family["model"], 0, {"lr": 1e-3, "batch_size": 8, "reference": "resident"})
    assert method.ref_model is not None
    ref_before = {k: v.detach().clone() for k, v in method.ref_model.state_dict().items()}
    model_before = {k: v.detach().clone() for k, v in method.model.state_dict().items()}
    enc = Encoder(load_tokenizer(family["model"]), family["spec"].template)
    dm = TofuSynthBenchmark().datamodule("forget10", enc, batch_size=8, seed=0, needs=method.needs)
    trainer = L.Trainer(max_steps=2, accelerator="cpu", devices=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(method, datamodule=dm)
    assert trainer.global_step == 2

    for k, v in method.ref_model.state_dict().items():
        assert torch.equal(v, ref_before[k]), f"reference weight {k} changed"
    for p in method.ref_model.parameters():
        assert not p.requires_grad and p.grad is None
    optimised = {id(p) for g in trainer.optimizers[0].param_groups for p in g["params"]}
    assert not optimised & {id(p) for p in method.ref_model.parameters()}
    assert optimised == {id(p) for p in method.model.parameters()}
    assert any(not torch.equal(v, model_before[k]) for k, v in method.model.state_dict().items())


# --------------------------------------------------------------------------- 4. determinism


def test_same_seed_same_history_and_weights(run_method, family, tmp_path):
    out1, _, hist1 = run_method("grad_diff")
    unlearn("grad_diff", family["spec"], start=family["model"], out_dir=tmp_path, params=dict(PARAMS))
    assert _read_history(tmp_path / "history.csv") == hist1
    w1, w2 = _weights(out1 / "model"), _weights(tmp_path / "model")
    assert w1.keys() == w2.keys()
    for k in w1:
        assert torch.equal(w1[k], w2[k]), k


# --------------------------------------------------------------------------- 5. NaN guard


class NaNMethod(UnlearningMethod):
    """NaN test: a loss that is NaN at the first step (checks the guard)."""

    name = "nan_test"

    def loss(self, batch):
        f = self.sub(batch)
        nll = losses.mean_nll(self.forward_logits(self.model, f), f["labels"])
        return {"loss": nll * float("nan"), "forget": nll}


def test_nan_loss_stops_with_named_error_and_no_model(family, tmp_path):
    if "nan_test" not in methods:
        methods.register("nan_test", NaNMethod)
    with pytest.raises(NonFiniteLossError) as err:
        unlearn("nan_test", family["spec"], start=family["model"], out_dir=tmp_path, params=dict(PARAMS))
    msg = str(err.value)
    assert "'nan_test'" in msg and "step 0" in msg, msg
    assert not (tmp_path / "model").exists()


# --------------------------------------------------------------------------- 6. plugin via the CLI


PLUGIN = '''
"""A test plugin: gradient ascent registered from outside the package."""

from unlearnbench.methods import losses
from unlearnbench.methods.base import UnlearningMethod
from unlearnbench.registry import methods


@methods.register("plugin_ga")
class PluginGA(UnlearningMethod):
    """Plugin GA: minimise -l(y_f|x_f) (test plugin)."""

    name = "plugin_ga"

    def loss(self, batch):
        f = self.sub(batch)
        forget = losses.ga_loss(self.forward_logits(self.model, f), f["labels"])
        return {"loss": forget, "forget": forget}
'''


def _cli(args, cache, timeout=300):
    env = {**os.environ, "UNLEARNBENCH_CACHE": str(cache), "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run([sys.executable, "-m", "unlearnbench.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_plugin_method_via_cli(family, tmp_path):
    plugin = tmp_path / "my_ga_plugin.py"
    plugin.write_text(textwrap.dedent(PLUGIN))
    out = tmp_path / "run"
    r = _cli(["--plugin", str(plugin), "train", "--model", family["model"], "--method", "plugin_ga",
              "--set", "epochs=1", "--set", "lr=1e-3", "--out", str(out)], family["cache"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert (out / "model" / "config.json").is_file() and (out / "history.csv").is_file()
    _load(out / "model")

    r = _cli(["--plugin", str(plugin), "ls", "methods"], family["cache"], timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = {ln.split()[0]: ln for ln in r.stdout.splitlines() if ln.strip()}
    assert "Plugin GA" in lines["plugin_ga"]
    for name in METHODS:  # the built-ins still load and show their objective
        assert "minimise" in lines[name] and "[broken]" not in lines[name], lines[name]

    r = _cli(["--plugin", str(plugin), "train", "--model", family["model"], "--method", "plugin_gaa",
              "--out", str(tmp_path / "bad")], family["cache"], timeout=120)
    assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
    assert "did you mean" in r.stderr.lower() and "'plugin_ga'" in r.stderr, r.stderr[-3000:]


@pytest.mark.parametrize("name", ["npo", "dpo"])
def test_cached_reference_equals_resident_at_every_step(name, family, tmp_path):
    """S_ref scored once before training (the default) gives the same losses, step by step, as
    scoring it on every batch with a resident reference model, which it then frees."""
    from unlearnbench.runner.train import unlearn

    hist = {}
    for mode in ("resident", "cached"):
        out = tmp_path / mode
        unlearn(name, family["spec"], start=family["model"], split="forget10", out_dir=out, seed=3,
                params={"lr": 1e-3, "batch_size": 16, "epochs": 2, "reference": mode})
        hist[mode] = _read_history(out / "history.csv")
    assert len(hist["cached"]) == len(hist["resident"]) == 10
    for a, b in zip(hist["cached"], hist["resident"]):
        for key in ("loss", "forget"):
            assert abs(a[key] - b[key]) <= 1e-6 * max(1.0, abs(b[key])), (a["step"], key, a[key], b[key])


def test_cached_reference_is_dropped_before_training(family):
    import lightning as L

    from unlearnbench.benchmarks.tofu import TofuSynthBenchmark
    from unlearnbench.data.collate import Encoder
    from unlearnbench.models.specs import load_tokenizer

    method = build_method("dpo", family["model"], 0, {"lr": 1e-3, "batch_size": 8})
    assert method.reference_mode == "cached" and method.ref_model is not None
    enc = Encoder(load_tokenizer(family["model"]), family["spec"].template)
    dm = TofuSynthBenchmark().datamodule("forget10", enc, batch_size=8, seed=0, needs=method.needs)
    L.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False,
              enable_progress_bar=False, enable_model_summary=False).fit(method, datamodule=dm)
    assert method.ref_model is None and "ref_model" not in dict(method.named_children())
    assert method._ref_table["idk"].shape == (80, 52)  # every forget row x every refusal
    with pytest.raises(ValueError, match="'reference' of method 'npo' must be one of cached, resident"):
        build_method("npo", family["model"], 0, {"reference": "nope"})
    # Methods whose reference term is a KL keep the model: the option does not apply to them.
    assert build_method("ga_kl", family["model"], 0, {"reference": "cached"}).reference_mode == "resident"


def test_cached_reference_on_raw_text_chunks(family):
    """NPO on a raw-text benchmark: the table holds S_ref of every text chunk, by row index."""
    from unlearnbench.benchmarks.base import Benchmark
    from unlearnbench.data.collate import Encoder
    from unlearnbench.methods.losses import sequence_nll
    from unlearnbench.methods.reference import reference_table
    from unlearnbench.models.specs import load_model, load_tokenizer

    class Text(Benchmark):
        name, shape, splits = "t", "text", ("s",)
        data_options = {"chunk_len": 16}

        def default_path(self):
            return "x"

        def forget_rows(self, split):
            return [{"text": f"document {i} " + "words and more words " * (3 + i)} for i in range(5)]

        retain_rows = forget_rows

    enc = Encoder(load_tokenizer(family["model"]), family["spec"].template)
    dm = Text().datamodule("s", enc, batch_size=2, chunk_len=16)
    dm.setup()
    model = load_model(family["model"])
    table, tokens = reference_table(model, dm, (), 2, "cpu")
    assert table["answer"].shape == (len(dm.forget_set),) and len(dm.forget_set) > 5  # chunked
    one = dm.collator(extras=False)([dm.forget_set[3]])
    with torch.no_grad():
        want = sequence_nll(model(input_ids=one["input_ids"]).logits, one["labels"])[0]
    assert float(table["answer"][3]) == pytest.approx(float(want), rel=1e-5)
