"""lm-evaluation-harness agrees with our multiple-choice scorer on every item.

A tiny randomly initialised Llama (saved with ``save_pretrained``) is evaluated by the
harness's own ``hf`` model on task files pointing at a local wmdp-synth stand-in, and by
``evaluate_wmdp``: same context string, same prediction on every item, log-likelihoods
within 1e-4, same accuracies (the harness's size-weighted ``mmlu`` group included).
"""

from __future__ import annotations

import pytest
import torch

lm_eval = pytest.importorskip("lm_eval", reason="lm-evaluation-harness not installed "
                              "(pip install 'unlearnbench[lm-eval]')")

from unlearnbench.bridges import lm_eval as bridge  # noqa: E402
from unlearnbench.data import wmdp, wmdp_synth  # noqa: E402
from unlearnbench.eval import multiple_choice as mc  # noqa: E402

SMALL = wmdp_synth.WmdpSynthConfig(n_entities=5, docs_per_entity=1, practice_variants=1)
SUBJECTS = ("college_biology", "high_school_geography")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from unlearnbench.models.specs import TinyConfig
    from unlearnbench.models.tiny import new_model, train_tokenizer

    base = tmp_path_factory.mktemp("bridge")
    root = wmdp_synth.write(SMALL, base / "synth")
    answers = [f"Answer: {x}" for x in "ABCD"] * 50
    tok = train_tokenizer(wmdp_synth.tiny_texts(root, "tokenizer") + answers, 400, base / "tok")
    tiny = TinyConfig(vocab_size=400, hidden_size=32, intermediate_size=64, num_layers=2,
                      num_heads=2, max_len=256)
    model = new_model(tiny, tok, seed=1).eval()
    # Large random weights, so that predictions depend on the question (at the default
    # init scale every item gets the same letter, and agreement would prove little).
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 2:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    model.save_pretrained(base / "model")
    tok.save_pretrained(base / "model")
    tasks = bridge.write_synth_tasks(base / "tasks", root)
    theirs = bridge.run_harness(base / "model", tasks, include_path=base / "tasks", batch_size=4,
                                include_defaults=False)
    sets = wmdp.eval_sets(str(root), wmdp_configs=("wmdp-bio",), mmlu_subjects=SUBJECTS)
    ours = mc.evaluate_wmdp(model, tok, sets, batch_size=4)
    return {"tasks": tasks, "theirs": theirs, "ours": ours, "sets": sets, "root": root, "model": base / "model",
            "loaded": (model, tok), "task_dir": base / "tasks"}


def test_task_files_cover_the_stand_in(setup):
    assert setup["tasks"] == {"wmdp_bio": "ub_wmdp_bio", "mmlu_college_biology": "ub_mmlu_college_biology",
                              "mmlu_high_school_geography": "ub_mmlu_high_school_geography",
                              "mmlu": "ub_mmlu"}


def test_harness_and_ours_agree_item_by_item(setup):
    (_, theirs), (_, ours) = setup["theirs"], setup["ours"]
    compared = 0
    for name in ("wmdp_bio", "mmlu_college_biology", "mmlu_high_school_geography"):
        t = [r for r in theirs if r["set"] == name]
        o = [r for r in ours if r["set"] == name]
        assert len(t) == len(o) == len(setup["sets"][name]) > 0
        topic = mc.wmdp_topic("wmdp-bio") if name == "wmdp_bio" else mc.mmlu_topic
        for row, a, b in zip(setup["sets"][name], t, o):
            assert a["context"] == mc.mc_prompt(topic(row), row["question"], row["choices"])
            assert a["question"] == b["question"] and a["gold"] == b["gold"]
            assert a["prediction"] == b["prediction"]
            assert a["loglikelihoods"] == pytest.approx(b["loglikelihoods"], abs=1e-4)
            compared += 1
    assert compared == len(setup["sets"]["mmlu"]) + len(setup["sets"]["wmdp_bio"])
    # A random model must not answer everything alike, or agreement would prove little.
    assert len({r["prediction"] for r in ours}) >= 3


def test_harness_and_ours_agree_on_accuracy(setup):
    (their_sum, _), (our_sum, _) = setup["theirs"], setup["ours"]
    assert their_sum["harness_version"] == lm_eval.__version__
    for name in ("wmdp_bio", "mmlu_college_biology", "mmlu_high_school_geography", "mmlu"):
        assert their_sum[name]["accuracy"] == pytest.approx(our_sum[name]["accuracy"], abs=1e-12)
        assert their_sum[name]["n_items"] == our_sum[name]["n_items"]


def test_cli_eval_with_the_harness_writes_the_same_schema(setup, tmp_path):
    import json

    from unlearnbench.cli import main

    out = tmp_path / "harness"
    assert main(["eval", "--harness", "lm-eval", "--benchmark", "wmdp-synth", "--data-dir", str(setup["root"]),
                 "--model", str(setup["model"]), "--tasks", "wmdp_bio,mmlu", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["harness"] == "lm-eval" and summary["harness_version"] == lm_eval.__version__
    assert summary["wmdp_bio"]["accuracy"] == pytest.approx(setup["theirs"][0]["wmdp_bio"]["accuracy"])
    assert main(["eval", "--harness", "lm-eval", "--benchmark", "wmdp-synth", "--data-dir", str(setup["root"]),
                 "--model", str(setup["model"]), "--tasks", "wmdp_cyber"]) == 2  # not a set of the stand-in


def test_zero_shot_on_an_in_memory_model_averages_the_tasks_accuracies(setup):
    # The copyright benchmark's utility (FLAT's nine tasks on a real model) goes through
    # this path; here on local task files, against our own scorer.
    model, tok = setup["loaded"]
    names = ["ub_wmdp_bio", "ub_mmlu_college_biology"]
    out = bridge.zero_shot(model, tok, names, batch_size=4, include_path=setup["task_dir"], include_defaults=False)
    ours = setup["ours"][0]
    assert out["zero_shot"] == pytest.approx({"ub_wmdp_bio": ours["wmdp_bio"]["accuracy"],
                                              "ub_mmlu_college_biology": ours["mmlu_college_biology"]["accuracy"]})
    assert out["zero_shot_accuracy"] == pytest.approx((ours["wmdp_bio"]["accuracy"]
                                                       + ours["mmlu_college_biology"]["accuracy"]) / 2)
    assert out["harness_version"] == lm_eval.__version__


def test_missing_harness_gives_the_install_hint(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "lm_eval", None)
    with pytest.raises(ImportError, match=r"pip install 'unlearnbench\[lm-eval\]'"):
        bridge.run_harness("nowhere", ["ub_wmdp_bio"])
