"""The TOFU evaluation suite on the tiny-test family: summary, records, batching,
distributed evaluation, the reference cache, the CLI and the family cache."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch
from scipy import stats

from unlearnbench.eval.tofu import TASKS, evaluate_tofu, summarise

MAX_ITEMS = 6
MAX_NEW = 12
RECORD_FIELDS = ("task", "index", "question", "answer", "generation", "rougeL_recall",
                 "probability", "truth_ratio", "avg_nll", "avg_nll_paraphrased",
                 "avg_nll_perturbed")
FAKE_RETAIN_TR = [0.2, 0.4, 0.6, 0.8, 1.0, 1.2]


def _load(checkpoint: str):
    from unlearnbench.data.collate import Encoder
    from unlearnbench.models.specs import load_model, load_tokenizer

    tok = load_tokenizer(checkpoint)
    model = load_model(checkpoint, device="cpu")
    return model, Encoder(tok, "phi")


def _bench():
    from unlearnbench.benchmarks.tofu import TofuSynthBenchmark

    return TofuSynthBenchmark()


@pytest.fixture(scope="module")
def family(request):
    """``tiny_family``, built (when this module is the first to need it) and used with one
    torch thread: on 2 shared, busy cores a 2-thread intra-op pool is ~5x slower for
    these tiny matmuls. The thread count is restored after the module."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield request.getfixturevalue("tiny_family")
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def target(family):
    model, enc = _load(family["target"])
    return model, enc, _bench()


@pytest.fixture(scope="module")
def target_eval(target):
    model, enc, bench = target
    return evaluate_tofu(model, enc, bench, "forget10", retain_truth_ratios=FAKE_RETAIN_TR,
                         max_items=MAX_ITEMS, max_new_tokens=MAX_NEW, batch_size=8)


def test_summary_has_every_task_in_range(target_eval):
    summary, records = target_eval
    for task in TASKS:
        s = summary[task]
        assert s["n_items"] == MAX_ITEMS
        for key in ("probability", "rougeL_recall", "truth_ratio", "exact_memorisation",
                    "extraction_strength"):
            assert 0.0 <= s[key] <= 1.0, (task, key, s[key])
    assert 0.0 <= summary["model_utility"] <= 1.0
    assert 0.0 <= summary["forget_quality"] <= 1.0
    assert summary["log10_forget_quality"] == pytest.approx(math.log10(summary["forget_quality"]))
    assert set(summary["mia"]) == {"loss", "zlib", "min_k", "min_k_plus_plus"}
    assert all(0.0 <= v <= 1.0 for v in summary["mia"].values())
    assert summary["cost"]["tokens"] > 0 and summary["cost"]["world_size"] == 1
    # Records come in dataset order, task by task, holdout last.
    assert [(r["task"], r["index"]) for r in records] == \
        [(t, i) for t in TASKS + ("holdout",) for i in range(MAX_ITEMS)]
    # Without retain truth ratios there is no forget quality.
    assert "forget_quality" not in summarise(records)


def test_records_have_the_per_item_fields(target_eval):
    _, records = target_eval
    for r in records:
        if r["task"] == "holdout":
            assert {"avg_nll", "mia_loss", "mia_min_k"} <= set(r)
            continue
        assert set(RECORD_FIELDS) <= set(r), set(RECORD_FIELDS) - set(r)
        assert isinstance(r["generation"], str)
        assert 0.0 <= r["rougeL_recall"] <= 1.0
        assert r["probability"] == pytest.approx(math.exp(-r["avg_nll"]))
        n_wrong = 5 if r["task"] in ("forget", "retain") else 3
        assert len(r["avg_nll_perturbed"]) == n_wrong
        ref = r["avg_nll_paraphrased"] if r["task"] in ("forget", "retain") else r["avg_nll"]
        assert ref is not None
        if r["task"] in ("real_authors", "world_facts"):
            assert r["avg_nll_paraphrased"] is None
        # R = exp(avgNLL(ref) - mean_j avgNLL(wrong_j))
        assert r["truth_ratio"] == pytest.approx(math.exp(ref - np.mean(r["avg_nll_perturbed"])))
        assert r["truth_ratio"] > 0
    forget = [r for r in records if r["task"] == "forget"]
    assert all("mia_min_k_plus_plus" in r for r in forget)


def test_summary_recomputed_by_hand(target_eval):
    summary, records = target_eval
    by = {t: [r for r in records if r["task"] == t] for t in TASKS}
    R = np.array([r["truth_ratio"] for r in by["forget"]])
    assert summary["forget"]["truth_ratio"] == pytest.approx(np.mean(np.minimum(R, 1 / R)))
    for t in ("retain", "real_authors", "world_facts"):
        R = np.array([r["truth_ratio"] for r in by[t]])
        assert summary[t]["truth_ratio"] == pytest.approx(np.mean(np.maximum(0, 1 - R)))
    for t in ("forget", "retain"):
        p = np.mean([math.exp(-r["avg_nll"]) for r in by[t]])
        assert summary[t]["probability"] == pytest.approx(p)
    for t in ("real_authors", "world_facts"):
        ratios = []
        for r in by[t]:
            pa = math.exp(-r["avg_nll"])
            ratios.append(pa / (pa + sum(math.exp(-x) for x in r["avg_nll_perturbed"])))
        assert summary[t]["probability"] == pytest.approx(np.mean(ratios))
    for t in TASKS:
        assert summary[t]["rougeL_recall"] == pytest.approx(np.mean([r["rougeL_recall"] for r in by[t]]))
    nine = [summary[t][m] for t in ("retain", "real_authors", "world_facts")
            for m in ("probability", "rougeL_recall", "truth_ratio")]
    with warnings.catch_warnings(), np.errstate(divide="ignore"):
        warnings.simplefilter("ignore")
        expected = 0.0 if min(nine) == 0 else float(stats.hmean(nine))
    assert summary["model_utility"] == pytest.approx(expected)
    # Model utility by hand on made-up numbers, zero included.
    fake = [dict(r) for r in records]
    for r in fake:
        if r["task"] in ("real_authors", "world_facts"):
            r["rougeL_recall"] = 0.5
    s2 = summarise(fake)
    nine2 = [s2[t][m] for t in ("retain", "real_authors", "world_facts")
             for m in ("probability", "rougeL_recall", "truth_ratio")]
    if min(nine2) > 0:
        assert s2["model_utility"] == pytest.approx(stats.hmean(nine2))
    # Forget quality is the KS p-value against the given retain truth ratios.
    forget_R = [r["truth_ratio"] for r in by["forget"]]
    assert summary["forget_quality"] == pytest.approx(stats.ks_2samp(forget_R, FAKE_RETAIN_TR).pvalue)


def test_forget_quality_against_itself_is_one(target_eval):
    _, records = target_eval
    own = [r["truth_ratio"] for r in records if r["task"] == "forget"]
    assert summarise(records, retain_truth_ratios=own)["forget_quality"] == pytest.approx(1.0)


def test_privleak_from_records(target_eval):
    summary, records = target_eval
    auc = summary["mia"]["min_k"]
    s = summarise(records, retain_mia_auc=0.5)
    assert s["privleak"] == pytest.approx(((1 - auc) - 0.5) / 0.5 * 100)
    # A retain AUC of 1 (possible on a few items) leaves PrivLeak undefined, not a crash.
    assert summarise(records, retain_mia_auc=1.0)["privleak"] is None


def test_max_items_limits_every_task(target):
    model, enc, dm = target
    summary, records = evaluate_tofu(model, enc, dm, "forget10", max_items=5, max_new_tokens=4)
    for task in TASKS + ("holdout",):
        assert sum(r["task"] == task for r in records) == 5, task
    assert all(summary[t]["n_items"] == 5 for t in TASKS)


def test_batched_scoring_equals_unbatched(target):
    from unlearnbench.eval.scoring import score_pairs

    model, enc, dm = target
    rows = list(dm.config("forget10_perturbed"))[:2] + list(dm.config("world_facts_perturbed"))[:2]
    pairs = [(r["question"], a) for r in rows
             for a in [r["answer"], r.get("paraphrased_answer")] + r["perturbed_answer"] if a]
    assert len({len(enc.encode(q, a)[0]) for q, a in pairs}) > 3  # lengths vary: padding happens
    one = score_pairs(model, enc, pairs, batch_size=1, with_stats=True)
    seven = score_pairs(model, enc, pairs, batch_size=7, with_stats=True)
    for a, b in zip(one, seven):
        assert a.n_tokens == b.n_tokens and a.labels == b.labels
        assert abs(a.avg_nll - b.avg_nll) < 1e-5
        assert np.allclose(a.token_logprobs, b.token_logprobs, atol=1e-4)
        assert np.allclose(a.mu, b.mu, atol=1e-4) and np.allclose(a.sigma, b.sigma, atol=1e-4)


# --------------------------------------------------------------------------- distributed
def _dist_worker(rank: int, world: int, init: str, checkpoint: str, out: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        model, enc = _load(checkpoint)
        summary, records = evaluate_tofu(model, enc, _bench(), "forget10", max_items=MAX_ITEMS,
                                         max_new_tokens=MAX_NEW, batch_size=8,
                                         retain_truth_ratios=FAKE_RETAIN_TR)
        if rank == 0:
            with open(out, "w") as f:
                json.dump({"summary": summary, "records": records}, f)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _assert_close_records(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        assert set(ra) == set(rb)
        for k in ra:
            va, vb = ra[k], rb[k]
            if isinstance(va, float):
                assert abs(va - vb) < 1e-5, (ra["task"], ra["index"], k, va, vb)
            elif isinstance(va, list) and va and isinstance(va[0], float):
                assert np.allclose(va, vb, atol=1e-5), (ra["task"], ra["index"], k)
            else:
                assert va == vb, (ra["task"], ra["index"], k, va, vb)


def test_two_process_evaluation_matches_one_process(family, target_eval, tmp_path):
    import torch.multiprocessing as mp

    out = tmp_path / "rank0.json"
    init = f"file://{tmp_path / 'pg-init'}"
    mp.spawn(_dist_worker, args=(2, init, family["target"], str(out)), nprocs=2, join=True)
    blob = json.loads(out.read_text())
    summary1, records1 = target_eval
    summary2, records2 = blob["summary"], blob["records"]
    assert summary2["cost"]["world_size"] == 2
    flat1 = _flatten({k: v for k, v in summary1.items() if k != "cost"})
    flat2 = _flatten({k: v for k, v in summary2.items() if k != "cost"})
    assert flat1.keys() == flat2.keys()
    for k in flat1:
        assert abs(flat1[k] - flat2[k]) < 1e-6, (k, flat1[k], flat2[k])
    _assert_close_records(records1, records2)


# --------------------------------------------------------------------------- caches and CLI
CLI_KW = {"batch_size": 32, "max_new_tokens": 20, "max_items": 5}


def test_cached_eval_second_call_does_not_evaluate(family, monkeypatch):
    from unlearnbench.eval import references

    spec = family["spec"]
    bench = _bench()
    calls = []
    real = references.evaluate_checkpoint

    def counting(*a, **k):
        calls.append(a[0])
        return real(*a, **k)

    monkeypatch.setattr(references, "evaluate_checkpoint", counting)
    # The same call the CLI makes for its reference, so the CLI test below reuses it.
    first = references.compare_reference(bench, spec, "forget10", CLI_KW)

    def refuse(*a, **k):
        raise AssertionError("a cached evaluation must not run the evaluator again")

    monkeypatch.setattr(references, "evaluate_checkpoint", refuse)
    second = references.compare_reference(bench, spec, "forget10", CLI_KW)
    assert json.dumps(second, sort_keys=True) == json.dumps(first, sort_keys=True)
    assert second[0]["reference_key"] == first[0]["reference_key"]
    assert len([r for r in second[1] if r["task"] == "forget"]) == CLI_KW["max_items"]
    assert calls in ([], [family["retain"]])  # [] if an earlier test filled the cache
    # Other settings are another cache entry.
    with pytest.raises(AssertionError, match="must not run"):
        references.cached_eval(family["retain"], spec, bench, "forget10",
                               options={**CLI_KW, "max_items": 4})


def test_cached_eval_of_an_overwritten_directory_is_recomputed(family, monkeypatch, tmp_path):
    import os
    import shutil

    from unlearnbench.eval import references

    ckpt = tmp_path / "model"
    shutil.copytree(family["target"], ckpt)
    bench = _bench()
    kw = {"max_items": 2, "max_new_tokens": 2}
    calls = []
    real = references.evaluate_checkpoint

    def counting(*a, **k):
        calls.append(a[0])
        return real(*a, **k)

    monkeypatch.setattr(references, "evaluate_checkpoint", counting)
    first = references.cached_eval(str(ckpt), family["spec"], bench, "forget10", options=kw)
    again = references.cached_eval(str(ckpt), family["spec"], bench, "forget10", options=kw)
    assert len(calls) == 1 and again[1] == first[1]
    # The same directory overwritten with another model must not return the stale result.
    weights = ckpt / "model.safetensors"
    st = weights.stat()
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    references.cached_eval(str(ckpt), family["spec"], bench, "forget10", options=kw)
    assert len(calls) == 2


def test_a_cached_evaluation_runs_on_the_pinned_thread_count(family, monkeypatch, tmp_path):
    # `unlearnbench eval` runs on torch's default thread count; what it caches, a grid job reads.
    from unlearnbench.eval import references

    monkeypatch.delenv("UNLEARNBENCH_NATIVE_CPU", raising=False)
    monkeypatch.setenv("UNLEARNBENCH_CPU_THREADS", "1")
    seen = []
    monkeypatch.setattr(references, "evaluate_checkpoint",
                        lambda *a, **k: seen.append(torch.get_num_threads()) or ({}, []))
    torch.set_num_threads(2)
    try:
        references.cached_eval(str(tmp_path / "a-model"), family["spec"], _bench(), "forget10",
                               options={"max_items": 1})
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)


def test_cli_eval_writes_summary_and_items(family, tmp_path, capsys):
    from unlearnbench.cli import main

    out = tmp_path / "eval-out"
    rc = main(["eval", "--model", "tiny-test", "--benchmark", "tofu-synth", "--split", "forget10",
               "--out", str(out), "--set", "max_items=5", "--set", "max_new_tokens=20"])
    assert rc == 0
    assert "summary.json" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"] == "tiny-test" and summary["role"] == "target"
    assert summary["checkpoint"] == family["target"]
    for task in TASKS:
        assert summary[task]["n_items"] == 5
    assert 0.0 <= summary["forget_quality"] <= 1.0  # from the harness's own retain model
    assert "model_utility" in summary and "mia" in summary and "privleak" in summary
    items = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
    assert len(items) == 5 * (len(TASKS) + 1)
    for r in items:
        if r["task"] != "holdout":
            assert set(RECORD_FIELDS) <= set(r)


def test_second_family_build_is_a_cache_hit(family, monkeypatch):
    from unlearnbench.models import finetune
    from unlearnbench.models.specs import ModelSpec

    def no_training(*a, **k):
        raise AssertionError("a cached family must not train again")

    monkeypatch.setattr(finetune, "fit_causal_lm", no_training)
    spec = ModelSpec.from_name("tiny-test")
    bench = _bench()
    # No timing assertion: the refusal to train above is what proves a cache hit.
    assert bench.checkpoint(spec, "target", "forget10") == family["target"]
    assert bench.checkpoint(spec, "retain", "forget10", 0) == family["retain"]
    # Another recipe is another cache entry (it would train: refused here).
    other = ModelSpec.from_name("tiny-test", tiny={"finetune_epochs": 3})
    with pytest.raises(AssertionError, match="must not train"):
        bench.checkpoint(other, "target", "forget10")


def test_reference_and_gradnorm_attacks_are_wired_from_records(target):
    """The Reference attack scores L_model − L_retain per item (the retain model's losses come
    from its own records), GradNorm one backward pass per text; both AUCs recompute by hand."""
    from sklearn.metrics import roc_auc_score

    from unlearnbench.data.collate import pad_right
    from unlearnbench.metrics import mia

    model, enc, bench = target
    n = 4
    fake_retain = {(t, i): 1.0 + 0.3 * i for t in ("forget", "holdout") for i in range(n)}
    summary, records = evaluate_tofu(model, enc, bench, "forget10", max_items=n, max_new_tokens=2,
                                     retain_losses=fake_retain, gradnorm=True)
    forget = [r for r in records if r["task"] == "forget"]
    holdout = [r for r in records if r["task"] == "holdout"]
    score = lambda rs, t: [r["mia_loss"] - fake_retain[(t, r["index"])] for r in rs]  # noqa: E731
    y = [0] * n + [1] * n
    assert summary["mia"]["reference"] == pytest.approx(
        roc_auc_score(y, score(forget, "forget") + score(holdout, "holdout")), abs=1e-12)
    assert summary["mia"]["gradnorm"] == pytest.approx(
        roc_auc_score(y, [r["mia_gradnorm"] for r in forget + holdout]), abs=1e-12)
    one = forget[1]
    batch = pad_right([enc.encode(one["question"], one["answer"])], enc.pad_id)
    assert one["mia_gradnorm"] == pytest.approx(mia.gradnorm_scores(model, [batch])[0], rel=1e-4)
    # Without the retain model's losses there is no Reference attack, never a made-up one.
    assert "reference" not in evaluate_tofu(model, enc, bench, "forget10", max_items=n, max_new_tokens=2)[0]["mia"]


def test_gradnorm_pass_scores_the_forget_and_holdout_answers_as_the_scoring_pass_does(target):
    """With GradNorm on, the forget and holdout answers are scored from the GradNorm pass's own
    forward instead of a second one: every record value equals the evaluation without GradNorm
    (whose answers score_items scores) within float noise, the Min-K%++ statistics included."""
    model, enc, bench = target
    plain = evaluate_tofu(model, enc, bench, "forget10", max_items=6, max_new_tokens=2)[1]
    fused = evaluate_tofu(model, enc, bench, "forget10", max_items=6, max_new_tokens=2, gradnorm=True)[1]
    assert [(r["task"], r["index"]) for r in plain] == [(r["task"], r["index"]) for r in fused]
    for a, b in zip(plain, fused):
        assert ("mia_gradnorm" in b) == (b["task"] in ("forget", "holdout"))
        b.pop("mia_gradnorm", None)
        assert a.keys() == b.keys()
        for key, value in a.items():
            if isinstance(value, float) or isinstance(value, list) and value and isinstance(value[0], float):
                assert b[key] == pytest.approx(value, rel=1e-5, abs=1e-7), (a["task"], key)
            else:
                assert b[key] == value, (a["task"], key)


def test_validation_and_test_parts_partition_the_items(target_eval, target):
    """A sweep selects on a quarter of the items (validation) and the leaderboard reports the others."""
    from unlearnbench.benchmarks.base import is_validation

    _, _, bench = target
    summary, records = target_eval
    ref = (summary, records)  # the model as its own reference: forget quality 1 on each part
    val = bench.summarise_records(records, ref, "validation")
    test = bench.summarise_records(records, ref, "test")
    for task in TASKS:
        n = len([r for r in records if r["task"] == task])
        n_val = len([r for r in records if r["task"] == task and is_validation(r["index"])])
        assert val[task]["n_items"] == n_val and test[task]["n_items"] == n - n_val
    assert val["forget_quality"] == test["forget_quality"] == 1.0
    whole = bench.summarise_records(records, None, None)
    assert whole["model_utility"] == pytest.approx(summary["model_utility"], abs=1e-12)
    forget_val = [r["rougeL_recall"] for r in records if r["task"] == "forget" and is_validation(r["index"])]
    assert val["forget"]["rougeL_recall"] == pytest.approx(sum(forget_val) / len(forget_val))


def test_open_unlearning_parity_is_wired_from_the_option_to_every_token_metric(target):
    """``eval: {parity: open-unlearning}`` reaches each record: Min-K, Min-K++, EM, ES and
    GradNorm score the answer without its EOS, zlib the decoded labels; LOSS and probability
    are unchanged (the conventions themselves are checked by hand in test_eval_conventions)."""
    import zlib

    from unlearnbench.data.collate import IGNORE, pad_right
    from unlearnbench.eval.scoring import score_items
    from unlearnbench.metrics import mia, tofu

    model, enc, bench = target
    opts = bench.check_eval_options({"parity": "open-unlearning", "max_items": 3, "max_new_tokens": 1})
    theirs, recs = bench.evaluate(model, enc, "forget10", **opts)
    ours, base = evaluate_tofu(model, enc, bench, "forget10", max_items=3, max_new_tokens=1, gradnorm=True)
    assert theirs["parity"] == "open-unlearning" and ours["parity"] is False
    r, b = recs[0], base[0]
    assert r["task"] == b["task"] == "forget" and r["avg_nll"] == b["avg_nll"] and r["mia_loss"] == b["mia_loss"]
    s = score_items(model, enc, [(r["question"], [r["answer"]])], with_stats=True)[0][0]
    assert s.labels[-1] == enc.eos_id
    assert r["mia_min_k"] == pytest.approx(mia.min_k_score(s.token_logprobs[:-1]), abs=1e-6)
    assert b["mia_min_k"] == pytest.approx(mia.min_k_score(s.token_logprobs), abs=1e-6)
    assert r["mia_min_k_plus_plus"] == pytest.approx(
        mia.min_k_plus_plus_score(s.token_logprobs[:-1], s.mu[:-1], s.sigma[:-1]), rel=1e-4)
    assert r["exact_memorisation"] == pytest.approx(tofu.exact_memorisation(s.preds[:-1], s.labels[:-1]))
    assert r["extraction_strength"] == pytest.approx(
        tofu.extraction_strength_open_unlearning(s.preds[:-1], s.labels[:-1]))
    text = enc.tokenizer.decode(s.labels, skip_special_tokens=True)
    assert r["mia_zlib"] == pytest.approx(b["mia_loss"] / len(zlib.compress(text.encode())), rel=1e-9)
    # GradNorm (tofu-synth turns it on): the same loss without the EOS position.
    ids, labels = enc.encode(r["question"], r["answer"])
    last = max(i for i, t in enumerate(labels) if t != IGNORE)
    batch = pad_right([(ids, labels[:last] + [IGNORE])], enc.pad_id)
    assert r["mia_gradnorm"] == pytest.approx(mia.gradnorm_scores(model, [batch])[0], rel=1e-4)
    assert r["mia_gradnorm"] != pytest.approx(b["mia_gradnorm"], rel=1e-4)
