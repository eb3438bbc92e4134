"""The six open-unlearning methods in the shared loop: single, LoRA, WAGLE, ddp/fsdp, references,
AltPO's alternate answers, PDU's constraint, shapes and grid-time parameter checks."""

from __future__ import annotations

import csv
import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from unlearnbench.runner.train import unlearn
from unlearnbench.registry import methods

REPO = Path(__file__).resolve().parents[1]
NEW = ("undial", "satimp", "wga", "ceu", "pdu", "altpo")
FAST = {"lr": 1e-3, "epochs": 1, "batch_size": 16, "max_steps": 2, "warmup_epochs": 0}


def _history(path: Path) -> list[dict]:
    with open(path) as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def _weights(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(Path(path) / "model.safetensors"))


# PDU and AltPO train single-process in their own tests below.
@pytest.mark.parametrize("name", ("undial", "satimp", "wga", "ceu"))
def test_trains_single_and_moves_weights(untrained, tmp_path, name):
    unlearn(name, untrained["spec"], out_dir=tmp_path, params=dict(FAST), start=untrained["model"])
    hist = _history(tmp_path / "history.csv")
    assert len(hist) == 2 and all(math.isfinite(v) for row in hist for v in row.values())
    before, after = _weights(untrained["model"]), _weights(tmp_path / "model")
    assert any(not torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("name", NEW)
def test_lora_trains_adapters_only(untrained, tmp_path, name):
    from unlearnbench.runner.train import build_method

    m = build_method(name, untrained["model"], 0, {"lora": {"r": 2}})
    assert m.ref_model is None  # the reference (where one is needed) is the base, adapters off
    assert all("lora_" in n for n, p in m.model.named_parameters() if p.requires_grad)
    unlearn(name, untrained["spec"], out_dir=tmp_path, params={**FAST, "lora": {"r": 2, "alpha": 4}},
            start=untrained["model"])
    hist = _history(tmp_path / "history.csv")
    assert all(math.isfinite(v) for row in hist for v in row.values())
    before, after = _weights(untrained["model"]), _weights(tmp_path / "model")
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    assert moved and all("proj" in k for k in moved)


@pytest.mark.parametrize("name", NEW)
def test_inside_wagle_masked_out_weights_stay(untrained, tmp_path, name):
    from safetensors.torch import load_file

    unlearn("wagle", untrained["spec"], out_dir=tmp_path, start=untrained["model"],
            params={**FAST, "inner": name, "ratio": 0.5, "mask": "random", "save_masks": True})
    masks = load_file(str(tmp_path / "wagle_masks.safetensors"))
    before, after = _weights(untrained["model"]), _weights(tmp_path / "model")
    assert all(torch.equal(after[k][~m], before[k][~m]) for k, m in masks.items())
    assert any(not torch.equal(after[k][m], before[k][m]) for k, m in masks.items())


def test_altpo_cached_reference_equals_resident(untrained, tmp_path):
    runs = {}
    for mode in ("cached", "resident"):
        unlearn("altpo", untrained["spec"], out_dir=tmp_path / mode, params={**FAST, "reference": mode},
                start=untrained["model"])
        runs[mode] = _history(tmp_path / mode / "history.csv")
    # θ = ref at the first step: the DPO term is (2/β)·log 2
    assert runs["cached"][0]["forget"] == pytest.approx(2 / 0.1 * math.log(2), abs=1e-4)
    for a, b in zip(runs["cached"], runs["resident"]):
        for k in a:
            assert a[k] == pytest.approx(b[k], rel=1e-6, abs=1e-6), k


@pytest.mark.slow
def test_ddp_and_fsdp_two_processes_agree(untrained, tmp_path):
    """Two gloo processes launched as torchrun would (Lightning sees LOCAL_RANK and does not
    spawn); each process trains every new method under ddp, then under fsdp."""
    code = (
        "import sys, torch; torch.set_num_threads(1)\n"
        "from unlearnbench.models.specs import ModelSpec\n"
        "from unlearnbench.runner.train import unlearn\n"
        "spec = ModelSpec.from_name('tiny-test')\n"
        "for strategy in ('ddp', 'fsdp'):\n"
        "    for name in sys.argv[3:]:\n"
        "        unlearn(name, spec, out_dir=f'{sys.argv[1]}/{strategy}-{name}', strategy=strategy, devices=2,\n"
        f"                params={FAST!r}, start=sys.argv[2])\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank in (0, 1):
        env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": "2",
               "RANK": str(rank), "LOCAL_RANK": str(rank), "NODE_RANK": "0", "PYTHONPATH": str(REPO)}
        procs.append(subprocess.Popen([sys.executable, "-c", code, str(tmp_path), untrained["model"], *NEW], cwd=REPO,
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    logs = [p.communicate(timeout=900)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), logs[0][-3000:] + logs[1][-3000:]
    for name in NEW:
        ddp, fsdp = (_history(tmp_path / f"{s}-{name}" / "history.csv") for s in ("ddp", "fsdp"))
        assert len(ddp) == len(fsdp) == 2
        for a, b in zip(ddp, fsdp):
            for k in a:
                assert a[k] == pytest.approx(b[k], rel=1e-5, abs=1e-6), (name, k)
        assert (tmp_path / f"fsdp-{name}" / "model" / "model.safetensors").exists()


# --------------------------------------------------------------------------- AltPO's data


def test_real_tofu_reads_alternates_kept_in_a_local_data_directory(tmp_path):
    """A local directory in TOFU's layout (here the stand-in's files, as a rehearsal uses them)
    gives AltPO the alternates under extras/; without them the error says where to put them."""
    import shutil

    from unlearnbench.benchmarks.base import BenchmarkError, get_benchmark

    standin = get_benchmark("tofu-synth")
    want = standin.alternate_answers("forget10")
    assert get_benchmark("tofu", standin.path).alternate_answers("forget10") == want
    bare = tmp_path / "tofu"
    shutil.copytree(standin.path, bare, ignore=shutil.ignore_patterns("extras"))
    with pytest.raises(BenchmarkError, match=r"alternate_file=PATH, or put it at .*extras/forget10_alternate\.json"):
        get_benchmark("tofu", str(bare)).alternate_answers("forget10")
    assert get_benchmark("tofu", str(bare)).alternate_answers("forget10", standin.path + "/extras/"
                                                             "forget10_alternate.json") == want


def test_alternates_read_open_unlearning_format(tmp_path):
    from unlearnbench.data.alternates import align, read_alternates
    from unlearnbench.data.schema import SchemaError

    rows = [{"question": "Q1", "answer": "A1", "alternate": "B1"},
            {"question": "Q1", "answer": "A1", "alternate": "C1"},
            {"question": "Q2", "answer": "A2", "alternate": "B2"}]
    lines = tmp_path / "alt5_seed_0.json"
    lines.write_text("".join(json.dumps(r) + "\n" for r in rows))
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps(rows))
    forget = [{"question": "Q2", "answer": "A2"}, {"question": "Q1", "answer": "A1"}]
    assert align(forget, read_alternates(lines), "x") == [["B2"], ["B1", "C1"]]
    assert align(forget, read_alternates(listed), "x") == [["B2"], ["B1", "C1"]]
    with pytest.raises(SchemaError, match="no alternate for the forget question 'Q3'"):
        align([{"question": "Q3", "answer": "A3"}], read_alternates(lines), "x")
    (tmp_path / "bad.json").write_text('{"question": "Q1"}\n')
    with pytest.raises(SchemaError, match=r"row 0: field\(s\) \['alternate'\]"):
        read_alternates(tmp_path / "bad.json")


def test_stand_in_alternates_are_plausible_wrong_and_not_the_eval_answers():
    from unlearnbench.benchmarks.tofu import TofuBenchmark, TofuSynthBenchmark
    from unlearnbench.data import tofu_synth

    bench = TofuSynthBenchmark()
    forget = bench.forget_rows("forget10")
    perturbed = [dict(r) for r in bench.config("forget10_perturbed")]
    alts = bench.alternate_answers("forget10")
    assert len(alts) == len(forget)
    for row, p, a in zip(forget, perturbed, alts):
        assert len(a) == tofu_synth.N_ALTERNATES and len(set(a)) == len(a)
        assert row["answer"] not in a and not set(a) & set(p["perturbed_answer"])
        # same wording as the answer, one value changed: a shared prefix or suffix
        assert any(x.split()[:2] == row["answer"].split()[:2] or x.split()[-2:] == row["answer"].split()[-2:]
                   for x in a)
    assert (Path(bench.path) / "extras" / "forget10_alternate.json").exists()
    # Real TOFU on the stand-in's files (a rehearsal) reads the same file from extras/.
    assert TofuBenchmark(bench.path).alternate_answers("forget10") == alts


# --------------------------------------------------------------------------- PDU


def test_pdu_measures_eps_and_moves_the_dual_after_warm_up(untrained, tmp_path):
    from unlearnbench.runner.train import build_method

    unlearn("pdu", untrained["spec"], out_dir=tmp_path / "w", params={**FAST, "dual_warmup_epochs": 1},
            start=untrained["model"])
    warm = _history(tmp_path / "w" / "history.csv")
    assert [r["dual"] for r in warm] == [1.0, 1.0]  # still warming up: μ stays at λ
    unlearn("pdu", untrained["spec"], out_dir=tmp_path / "d", start=untrained["model"],
            params={**FAST, "dual_warmup_epochs": 0, "retain_loss_ratio": 0.5})
    hist = _history(tmp_path / "d" / "history.csv")
    eps = hist[0]["eps"]
    # ε = 0.5 × the starting model's retain NLL (measured over the whole retain set before step 0)
    assert 0 < eps < hist[0]["retain"]
    assert hist[1]["dual"] == pytest.approx(max(0.0, 1.0 + (hist[0]["retain"] - eps)), rel=1e-5)
    with pytest.raises(ValueError, match="'retain_loss_ratio' of method 'pdu' must be > 0"):
        build_method("pdu", "/nonexistent", 0, {"retain_loss_ratio": 0})


# --------------------------------------------------------------------------- shapes, grids


def test_altpo_is_not_applicable_on_raw_text_the_others_are():
    for name in NEW:
        assert methods.get(name).supports("text") is (name != "altpo"), name
        assert methods.get(name).supports("qa")
        assert "minimise" in methods.get(name).__doc__.splitlines()[0]


def test_a_typo_in_a_new_method_parameter_fails_at_grid_read_time():
    from unlearnbench.errors import UserError
    from unlearnbench.runner.grid import parse_grid

    raw = {"name": "t", "benchmark": "tofu-synth", "models": ["tiny-test"],
           "methods": [{"name": "satimp", "params": {"beta_1": 4.0}}]}
    with pytest.raises(UserError, match=r"unknown parameter 'beta_1' for method 'satimp' \(did you mean 'beta1'\?\)"):
        parse_grid(raw)
    raw["methods"] = [{"name": "wagle", "label": "wagle[pdu]", "params": {"inner": "pdu", "retain_loss_ration": 2}}]
    with pytest.raises(UserError, match="'retain_loss_ration'.*did you mean 'retain_loss_ratio'"):
        parse_grid(raw)
    raw["methods"] = [{"name": "wagle", "label": "wagle[pdu]", "params": {"inner": "pdu", "retain_loss_ratio": 2}},
                      {"name": "altpo", "params": {"alternate_file": None, "max_steps": 2}}]
    assert len(parse_grid(raw).cells) == 2
