"""MUSE loaders, the muse-synth generator and evaluate_muse (on a random tiny model)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch

from unlearnbench.data import muse
from unlearnbench.data.muse_synth import (LAYOUT, MuseSynthConfig, general_texts, generate,
                                          tiny_texts, tiny_tokenizer, write)
from unlearnbench.data.tofu import SchemaError

SMALL = MuseSynthConfig(fold_size=4, n_retain1=3, n_retain2=4, n_holdout=5, n_background=3,
                        n_knowmem=6, n_icl=3, n_privleak=4)
EVAL_KW = dict(benchmark="muse-synth", batch_size=4, verbmem_tokens=6, knowmem_tokens=6)


# --------------------------------------------------------------------------- hand-made hub layout
def _write_hub_dir(root: Path, files: dict[tuple[str, str], list[dict]]) -> Path:
    """A directory in the hub's layout, written by hand (no generator involved)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    header = ["---", "configs:"]
    subsets: dict[str, list[str]] = {}
    for (subset, split), rows in files.items():
        path = root / subset / f"{split}-00000-of-00001.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        columns = {k: [r[k] for r in rows] for k in rows[0]} if rows else {"text": pa.array([], pa.string())}
        pq.write_table(pa.table(columns), path)
        subsets.setdefault(subset, []).append(split)
    for subset, splits in subsets.items():
        header += [f"- config_name: {subset}", "  data_files:"]
        header += [line for s in splits for line in (f"  - split: {s}", f"    path: {subset}/{s}-*")]
    (root / "README.md").write_text("\n".join(header + ["---", ""]))
    return root


def test_hand_written_hub_layout_loads(tmp_path):
    d = _write_hub_dir(tmp_path / "mirror", {
        ("knowmem", "forget_qa"): [{"question": "Who?", "answer": "Ann"},
                                   {"question": "Where?", "answer": "Paris"}],
        ("raw", "forget"): [{"text": "First article."}, {"text": "Second article."}],
    })
    rows = muse.load_split(d, "knowmem", "forget_qa")
    assert rows.num_rows == 2 and rows[1] == {"question": "Where?", "answer": "Paris"}
    assert list(muse.load_split(d, "raw", "forget")["text"]) == ["First article.", "Second article."]
    assert muse.has_subset(d, "raw") and not muse.has_subset(d, "scal")


def test_missing_subset_and_split_name_what_exists(tmp_path):
    d = _write_hub_dir(tmp_path / "m", {("raw", "forget"): [{"text": "a"}, {"text": "b"}],
                                        ("raw", "retain1"): [{"text": "c"}]})
    with pytest.raises(SchemaError, match=r"has no subset 'scal' \(it has raw\).*MUSE-Books"):
        muse.load_split(d, "scal", "forget_1")
    with pytest.raises(SchemaError, match=r"split 'holdout' does not exist .*forget, retain1"):
        muse.load_split(d, "raw", "holdout")
    with pytest.raises(SchemaError, match=r"unknown MUSE subset 'bogus'"):
        muse.load_split(d, "bogus", "forget")
    with pytest.raises(SchemaError, match=r"unknown split 'forget_qa' of MUSE subset 'raw'.*holdout"):
        muse.load_split(d, "raw", "forget_qa")


@pytest.mark.parametrize("rows, message", [
    ([{"question": "Who?"}], r"lacks field\(s\) \['answer'\]"),
    ([{"question": "Who?", "answer": "Ann"}, {"question": "Where?", "answer": " "}],
     r"row 1: field 'answer' is an empty string"),
    ([{"question": "Who?", "answer": 3}], r"row 0: field 'answer' should be str, got int"),
])
def test_schema_errors_name_path_subset_split_field_row(tmp_path, rows, message):
    d = _write_hub_dir(tmp_path / "m", {("knowmem", "retain_qa"): rows})
    with pytest.raises(SchemaError, match=message) as err:
        muse.load_split(d, "knowmem", "retain_qa")
    assert f"MUSE {d} subset 'knowmem' split 'retain_qa'" in str(err.value)


def test_empty_split_is_a_schema_error(tmp_path):
    d = _write_hub_dir(tmp_path / "m", {("privleak", "holdout"): []})
    with pytest.raises(SchemaError, match=r"split 'holdout' is empty"):
        muse.load_split(d, "privleak", "holdout")


def test_hub_books_has_no_scal_or_sust():
    assert not muse.has_subset(muse.HUB["muse-books"], "scal")
    assert not muse.has_subset(muse.HUB["muse-books"], "sust")
    assert muse.has_subset(muse.HUB["muse-news"], "sust")


# --------------------------------------------------------------------------- generator
@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return write(SMALL, tmp_path_factory.mktemp("synth") / "d")


def test_generator_is_deterministic(synth, tmp_path):
    again = write(SMALL, tmp_path / "again")
    files = sorted(p.relative_to(synth) for p in synth.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert len(files) == sum(map(len, LAYOUT.values())) + 2  # + README + general texts
    for f in files:
        assert (synth / f).read_bytes() == (again / f).read_bytes(), f
    other = generate(MuseSynthConfig(**{**SMALL.__dict__, "seed": 1}))
    assert other[("raw", "forget")] != generate(SMALL)[("raw", "forget")]


def test_every_split_loads_with_the_real_schema(synth):
    for subset, splits in muse.SUBSETS.items():
        assert set(splits) == set(LAYOUT[subset]), subset
        for split in splits:
            assert muse.load_split(synth, subset, split).num_rows > 0


def _texts(d, subset, split):
    return list(muse.load_split(d, subset, split)["text"])


def test_scal_nested_sust_disjoint_and_train_is_their_union(synth):
    scal = [_texts(synth, "scal", f"forget_{k}") for k in range(1, 5)]
    sust = [_texts(synth, "sust", f"forget_{k}") for k in range(1, 5)]
    forget = _texts(synth, "raw", "forget")
    assert scal[0] == sust[0] == forget
    for k in range(1, 4):
        assert set(scal[k - 1]) < set(scal[k])
        assert len(scal[k]) == sum(map(len, sust[: k + 1]))
    for i in range(4):
        for j in range(i + 1, 4):
            assert not set(sust[i]) & set(sust[j])
    assert set(scal[3]) == set().union(*map(set, sust)) == set(_texts(synth, "train", "forget"))


def test_splits_hold_the_right_documents(synth):
    forget, retain2 = _texts(synth, "raw", "forget"), _texts(synth, "raw", "retain2")
    holdout = _texts(synth, "raw", "holdout")
    trained = set(tiny_texts(synth, "target"))
    assert set(tiny_texts(synth, "retrain")) == set(_texts(synth, "raw", "retain1")) | set(retain2)
    assert not set(holdout) & trained
    # PrivLeak texts are chunks (prose, or Q/A section) of their split's articles.
    for split, docs in (("forget", forget), ("retain", retain2), ("holdout", holdout)):
        chunks = _texts(synth, "privleak", split)
        assert len(chunks) == SMALL.n_privleak and len(set(chunks)) == len(chunks)
        for c in chunks:
            assert sum(c in d for d in docs if not d.startswith("Question: ")) == 1, (split, c)
            assert not any(c in d for d in trained) or split != "holdout"
    for row in muse.load_split(synth, "verbmem", "forget"):
        assert row["prompt"] + " " + row["gt"] in forget
    # Every KnowMem pair is in the Q/A section of exactly one article of its split, and in
    # that split's news-quiz documents (the documents made of Q/A pairs only).
    for split, docs in (("forget_qa", forget), ("forget_qa_icl", forget), ("retain_qa", retain2),
                        ("retain_qa_icl", retain2)):
        articles = [d for d in docs if not d.startswith("Question: ")]
        quizzes = [d for d in docs if d.startswith("Question: ")]
        assert len(articles) == (SMALL.fold_size if split.startswith("forget") else SMALL.n_retain2)
        for row in muse.load_split(synth, "knowmem", split):
            line = f"Question: {row['question']}\nAnswer: {row['answer']}"
            has = lambda d: d.endswith(line) or f"{line}\n\n" in d  # noqa: E731
            assert sum(map(has, articles)) == 1, row
            assert sum(map(has, quizzes)) == SMALL.quiz_repeats, row


def test_general_texts_share_no_entity_with_the_benchmark(synth):
    general = " ".join(general_texts(SMALL))
    assert "Question: " in general and "\nAnswer: " in general
    towns = {m for t in tiny_texts(synth, "target") + _texts(synth, "raw", "holdout")
             for m in re.findall(r" in ([A-Z][a-z]+)[ ,.]", t)}
    assert towns and not [t for t in towns if re.search(rf"\b{t}\b", general)]
    assert tiny_texts(synth, "base") == general_texts(SMALL)
    with pytest.raises(ValueError, match="unknown tiny role"):
        tiny_texts(synth, "teacher")


def test_tokenizer_makes_the_knowmem_prompt_a_prefix_of_its_training_line(synth, tmp_path):
    tok = tiny_tokenizer(tiny_texts(synth, "tokenizer"), 300, tmp_path / "tok")
    line = tok("Question: Who won?\nAnswer: Ann Lee")["input_ids"]
    prompt = tok("Question: Who won?\nAnswer: ")["input_ids"]
    assert line[: len(prompt)] == prompt and line[0] == tok.bos_token_id


# --------------------------------------------------------------------------- evaluate_muse
@pytest.fixture(scope="module")
def tiny(synth, tmp_path_factory):
    """A randomly initialised Llama and the stand-in's tokenizer, saved for subprocesses."""
    from transformers import LlamaConfig, LlamaForCausalLM

    out = tmp_path_factory.mktemp("tiny")
    tok = tiny_tokenizer(tiny_texts(synth, "tokenizer"), 300, out)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)
    model = LlamaForCausalLM(cfg).eval()
    model.save_pretrained(out)
    return model, tok, out


@pytest.fixture(scope="module")
def evaluated(tiny, synth):
    from unlearnbench.eval.muse import evaluate_muse

    model, tok, _ = tiny
    return evaluate_muse(model, tok, synth, retrain_auc=0.4, **EVAL_KW)


def test_evaluate_muse_records_reproduce_the_summary(evaluated, tiny):
    import numpy as np
    from rouge_score import rouge_scorer
    from sklearn.metrics import roc_auc_score

    from unlearnbench.metrics.muse import cut_answer

    summary, records = evaluated
    _, tok, _ = tiny
    assert summary["n_items"] == {"verbmem_f": 4, "knowmem_f": 6, "knowmem_r": 6, "privleak_forget": 4,
                                  "privleak_holdout": 4, "privleak_retain": 4}
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    for task in ("verbmem_f", "knowmem_f", "knowmem_r"):
        rs = [r for r in records if r["task"] == task]
        for r in rs:
            assert r["score"] == scorer.score(r["reference"], r["generation"])["rougeL"].fmeasure
            if task != "verbmem_f":
                assert r["generation"] == cut_answer(r["raw_generation"])
            else:  # the ground truth is cut to verbmem_tokens text tokens
                assert len(tok(r["reference"], add_special_tokens=False)["input_ids"]) <= 6
        assert summary[task] == pytest.approx(np.mean([r["score"] for r in rs]))
    forget = [r["mia_min_k"] for r in records if r["task"] == "privleak_forget"]
    holdout = [r["mia_min_k"] for r in records if r["task"] == "privleak_holdout"]
    auc = roc_auc_score([0] * len(forget) + [1] * len(holdout), forget + holdout)
    assert summary["mia"]["min_k"] == pytest.approx(auc)
    assert summary["privleak"] == pytest.approx(((1 - auc) - 0.6) / 0.6 * 100)
    assert [r["index"] for r in records if r["task"] == "knowmem_r"] == list(range(6))


def test_min_k_record_is_the_lowest_40_percent_of_the_texts_log_probs(evaluated, tiny, synth):
    import numpy as np

    _, records = evaluated
    model, tok, _ = tiny
    rec = next(r for r in records if r["task"] == "privleak_holdout" and r["index"] == 2)
    ids = tok(_texts(synth, "privleak", "holdout")[2], add_special_tokens=True)["input_ids"]
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0, :-1].float(), -1)
    lp = logp.gather(-1, torch.tensor(ids[1:])[:, None])[:, 0].numpy()
    assert rec["n_tokens"] == len(ids) - 1  # BOS unscored, no EOS appended
    k = max(1, math.floor(0.4 * len(lp)))
    assert rec["mia_min_k"] == pytest.approx(-np.mean(np.sort(lp)[:k]), abs=1e-5)
    assert rec["mia_loss"] == pytest.approx(-lp.mean(), abs=1e-5)


def test_privleak_is_left_out_without_a_retrain_auc_never_half(tiny, synth):
    from unlearnbench.eval.muse import evaluate_muse

    model, tok, _ = tiny
    summary, _ = evaluate_muse(model, tok, synth, max_items=2, **EVAL_KW)
    assert "privleak" not in summary and "retrain" in summary["privleak_note"]
    assert summary["retrain_auc"] is None and summary["n_items"]["knowmem_f"] == 2


def test_parity_needs_fp32_a_known_benchmark_and_no_retrain_auc(tiny, synth):
    import copy

    from unlearnbench.eval.muse import evaluate_muse

    model, tok, _ = tiny
    kw = {**EVAL_KW, "max_items": 1}
    with pytest.raises(ValueError, match="muse_bench's constant retrain AUC"):
        evaluate_muse(model, tok, synth, parity=True, retrain_auc=0.5, **{**kw, "benchmark": "muse-news"})
    with pytest.raises(ValueError, match="no muse_bench retrain AUC for benchmark 'muse-synth'"):
        evaluate_muse(model, tok, synth, parity=True, **kw)
    with pytest.raises(ValueError, match="fp32"):
        evaluate_muse(copy.deepcopy(model).to(torch.bfloat16), tok, synth, parity=True,
                      **{**kw, "benchmark": "muse-news"})
    summary, _ = evaluate_muse(model, tok, synth, parity=True, **{**kw, "benchmark": "muse-news"})
    assert summary["settings"]["batch_size"] == 1 and summary["retrain_auc"] == pytest.approx(0.5228)
    assert summary["privleak"] == pytest.approx(((1 - summary["mia"]["min_k"]) - 0.4772) / 0.4772 * 100)


# --------------------------------------------------------------------------- distributed
def _dist_worker(rank: int, world: int, init: str, model_dir: str, data_dir: str, out: str) -> None:
    import torch.distributed as dist
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from unlearnbench.eval.muse import evaluate_muse

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        model = AutoModelForCausalLM.from_pretrained(model_dir)
        tok = AutoTokenizer.from_pretrained(model_dir)
        summary, records = evaluate_muse(model, tok, data_dir, retrain_auc=0.4, **EVAL_KW)
        if rank == 0:
            Path(out).write_text(json.dumps({"summary": summary, "records": records}))
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


def test_two_process_evaluation_matches_one_process(evaluated, tiny, synth, tmp_path):
    import torch.multiprocessing as mp

    _, _, model_dir = tiny
    out = tmp_path / "rank0.json"
    mp.spawn(_dist_worker, args=(2, f"file://{tmp_path / 'pg'}", str(model_dir), str(synth), str(out)),
             nprocs=2, join=True)
    blob = json.loads(out.read_text())
    one, two = evaluated[0], blob["summary"]
    assert two["cost"]["world_size"] == 2
    flat1 = _flatten({k: v for k, v in one.items() if k != "cost"})
    flat2 = _flatten({k: v for k, v in two.items() if k != "cost"})
    assert flat1.keys() == flat2.keys()
    for k in flat1:
        if isinstance(flat1[k], float):
            assert abs(flat1[k] - flat2[k]) < 1e-6, (k, flat1[k], flat2[k])
        else:
            assert flat1[k] == flat2[k], k
    recs1, recs2 = evaluated[1], blob["records"]
    assert [(r["task"], r["index"]) for r in recs1] == [(r["task"], r["index"]) for r in recs2]
    for a, b in zip(recs1, recs2):
        assert a.get("generation") == b.get("generation")


def test_tiny_recipe_is_a_tiny_config_whose_context_holds_every_document(tmp_path):
    from unlearnbench.data.muse_synth import TINY_RECIPE, generate
    from unlearnbench.metrics.muse import knowmem_prompt
    from unlearnbench.models.specs import TinyConfig

    tiny = TinyConfig(**TINY_RECIPE)
    data = generate()
    texts = data["_general"] + [r["text"] for k, rows in data.items() if k != "_general"
                                for r in rows if "text" in r]
    tok = tiny_tokenizer(texts, tiny.vocab_size, tmp_path / "tok")
    longest = max(len(tok(t)["input_ids"]) + 1 for t in texts)  # + EOS
    icl = [(r["question"], r["answer"]) for r in data[("knowmem", "forget_qa_icl")]]
    prompts = [knowmem_prompt(icl, r["question"]) for r in data[("knowmem", "forget_qa")]]
    longest_prompt = max(len(tok(p)["input_ids"]) for p in prompts)
    assert longest <= tiny.max_len and longest_prompt + 32 <= tiny.max_len, (longest, longest_prompt)


# --------------------------------------------------------------------------- parity gaps (issue 25)
def test_parity_part_summaries_use_muse_benchs_constant_like_the_cell(tiny, synth, evaluated):
    """A parity grid with ``select: validation`` takes its metrics from the part summaries:
    they must use the constant retrain AUC the cell's own summary uses, never the measured one."""
    from unlearnbench.benchmarks.muse import MuseBenchmark
    from unlearnbench.eval.muse import evaluate_muse
    from unlearnbench.metrics import mia
    from unlearnbench.runner.jobs import described
    from unlearnbench.runner.jobs import Job

    model, tok, _ = tiny
    summary, records = evaluate_muse(model, tok, synth, parity=True, **{**EVAL_KW, "benchmark": "muse-news"})
    bench = MuseBenchmark(str(synth))  # muse-news's corpus (and constant) on the stand-in's files
    compare = evaluated  # a reference with its own measured AUC, which parity must ignore
    cell = {"kind": "cell", "select": "validation", "eval": {"parity": True}}
    out = described(bench, summary, Job.from_json(cell), records, compare)
    whole = bench.summarise_records(records, compare, None, cell["eval"])
    assert whole["privleak"] == summary["privleak"] and whole["retrain_auc"] == summary["retrain_auc"] == 1 - 0.4772
    for part in ("test", "validation"):
        got = out["parts"][part]
        assert got["retrain_auc"] == 1 - 0.4772
        assert got["privleak"] == pytest.approx(((1 - got["mia"]["min_k"]) - 0.4772) / 0.4772 * 100, abs=1e-9)
    assert out["metrics"]["privleak"] == out["parts"]["test"]["privleak"]
    # Without parity the same parts are scored against the reference's measured AUC.
    measured = bench.summarise_records(records, compare, "test", {})
    ref = [r for r in compare[1] if bench.in_part(r, "test")]
    auc = mia.mia_auc([r["mia_min_k"] for r in ref if r["task"] == "privleak_forget"],
                      [r["mia_min_k"] for r in ref if r["task"] == "privleak_holdout"])
    assert measured["retrain_auc"] == auc != 1 - 0.4772


@pytest.fixture(scope="module")
def long_text_muse(synth, tmp_path_factory):
    """A MUSE layout written by hand whose one privleak forget text is over 2048 tokens, and
    a tiny Llama whose context (4096) holds it."""
    from transformers import LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("long")
    tok = tiny_tokenizer(tiny_texts(synth, "tokenizer"), 300, root / "tok")
    article = _texts(synth, "raw", "holdout")[0]
    long_text = " ".join([article] * (1 + 2300 // len(tok(article)["input_ids"])))
    qa = [{"question": "Who won?", "answer": "Ann"}, {"question": "Where?", "answer": "Paris"}]
    d = _write_hub_dir(root / "d", {
        ("verbmem", "forget"): [{"prompt": "The town", "gt": "was quiet."}],
        ("knowmem", "forget_qa"): qa, ("knowmem", "forget_qa_icl"): qa,
        ("knowmem", "retain_qa"): qa, ("knowmem", "retain_qa_icl"): qa,
        ("privleak", "forget"): [{"text": long_text}, {"text": article}],
        ("privleak", "holdout"): [{"text": _texts(synth, "raw", "holdout")[1]}, {"text": "A short note."}],
        ("privleak", "retain"): [{"text": "Another short note."}],
    })
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=4096,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)
    return LlamaForCausalLM(cfg).eval(), tok, d, long_text


def test_parity_scores_a_text_over_2048_tokens_whole_and_the_default_caps_it(long_text_muse):
    import copy

    import numpy as np

    from unlearnbench.eval.muse import evaluate_muse

    model, tok, d, long_text = long_text_muse
    ids = tok(long_text, add_special_tokens=True)["input_ids"]
    assert ids[0] == tok.bos_token_id and 2048 < len(ids) - 1 < 4095
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0, :-1].float(), -1)
    lp = logp.gather(-1, torch.tensor(ids[1:])[:, None])[:, 0].numpy()
    kw = dict(benchmark="muse-news", verbmem_tokens=4, knowmem_tokens=4)

    summary, records = evaluate_muse(model, tok, d, parity=True, **kw)
    rec = next(r for r in records if r["task"] == "privleak_forget" and r["index"] == 0)
    assert rec["n_tokens"] == len(ids) - 1 and not rec["truncated"]  # the whole text, BOS unscored
    k = max(1, int(0.4 * len(lp)))
    assert rec["mia_min_k"] == pytest.approx(-np.mean(np.sort(lp)[:k]), abs=1e-5)
    assert rec["mia_loss"] == pytest.approx(-lp.mean(), abs=1e-5)
    assert summary["mia_truncated"] == 0 and summary["settings"]["mia_max_tokens"] == 4095

    summary, records = evaluate_muse(model, tok, d, **kw)  # the default: BOS + 2048 tokens
    rec = next(r for r in records if r["task"] == "privleak_forget" and r["index"] == 0)
    assert rec["n_tokens"] == 2048 and rec["truncated"] and summary["mia_truncated"] == 1
    assert rec["mia_loss"] == pytest.approx(-lp[:2048].mean(), abs=1e-5)

    short = copy.deepcopy(model)  # a model whose recorded context is shorter than the text
    short.config.max_position_embeddings = 1024
    summary, records = evaluate_muse(short, tok, d, parity=True, **kw)
    rec = next(r for r in records if r["task"] == "privleak_forget" and r["index"] == 0)
    assert rec["n_tokens"] == 1023 and rec["truncated"] and summary["mia_truncated"] == 1
