"""LLMU's harmful-response and hallucination scenarios: judges, generation metrics, loaders
and schema checks, the prompt split, the stand-ins, and both evaluators on a random tiny
model (records reproduce the summary; a 2-rank shard gives the 1-rank numbers)."""

from __future__ import annotations

import json
import math
import random

import pytest
import torch
from rouge_score import rouge_scorer

from unlearnbench.data import halueval as hv
from unlearnbench.data import halueval_synth as hsy
from unlearnbench.data import harmful as hm
from unlearnbench.data import harmful_synth as hs
from unlearnbench.data.tofu import SchemaError
from unlearnbench.eval import judges
from unlearnbench.metrics import generation as gm

# ---------------------------------------------------------------- judges


def test_marker_judge_hand_cases():
    j = judges.MarkerJudge(["quelvane", "jax root"])
    responses = ["First quelvane the herb.", "QUELVANE!", "quelvanes are fine", "", "use jax root",
                 "jax-root"]
    assert j.score(["p"] * 6, responses) == [1.0, 1.0, 0.0, 0.0, 1.0, 0.0]
    assert j.flag(["p"], ["quelvane"]) == [True]
    with pytest.raises(ValueError, match="2 prompts but 1 responses"):
        j.score(["a", "b"], ["c"])
    with pytest.raises(ValueError, match="at least one marker"):
        judges.MarkerJudge([" ", ""])


def test_flag_threshold_is_strict():
    class Fixed(judges.Judge):
        def score(self, prompts, responses):
            return [0.5, 0.5000001, 0.2]

    assert Fixed().flag(["a"] * 3, ["b"] * 3) == [False, True, False]


def _tiny_tokenizer(tmp_path):
    from unlearnbench.models.tiny import train_tokenizer

    texts = ["how do I bake bread", "use the quelvane near the river", "I cannot help with that"] * 5
    return train_tokenizer(texts, 300, tmp_path / "tok")


def _classifier_dir(tmp_path, tok, num_labels: int, problem_type: str | None, id2label=None):
    from transformers import LlamaConfig, LlamaForSequenceClassification

    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, num_labels=num_labels,
                      pad_token_id=tok.pad_token_id, problem_type=problem_type,
                      id2label=id2label or {i: f"c{i}" for i in range(num_labels)})
    torch.manual_seed(0)
    model = LlamaForSequenceClassification(cfg)
    out = tmp_path / f"clf-{num_labels}-{problem_type}"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out, model.eval()


PROMPTS = ["how do I bake bread", "how do I hurt the river", "tell me"]
RESPONSES = ["use the quelvane near the river now", "I cannot help with that", "bread"]


def _logits_one_by_one(model, tok, texts_or_pairs):
    out = []
    with torch.no_grad():
        for item in texts_or_pairs:
            enc = tok(*item, return_tensors="pt") if isinstance(item, tuple) else tok(item, return_tensors="pt")
            out.append(model(**enc).logits[0].float())
    return torch.stack(out)


def test_hub_classifier_judge_softmax_label(tmp_path):
    tok = _tiny_tokenizer(tmp_path)
    path, model = _classifier_dir(tmp_path, tok, 2, "single_label_classification", {0: "safe", 1: "unsafe"})
    # Unpadded, one pair at a time: the batched, padded judge must give the same numbers.
    expect = torch.softmax(_logits_one_by_one(model, tok, list(zip(PROMPTS, RESPONSES))), -1)[:, 1]
    j = judges.HubClassifierJudge(str(path), unsafe_label="unsafe", batch_size=2)
    got = j.score(PROMPTS, RESPONSES)
    assert got == pytest.approx(expect.tolist(), abs=1e-5)
    scored = judges.HubClassifierJudge(str(path), unsafe_label=1).score(PROMPTS, RESPONSES)
    assert scored == pytest.approx(got, abs=1e-6)
    with pytest.raises(ValueError, match=r"2 softmax labels \['safe', 'unsafe'\]; pass unsafe_label"):
        judges.HubClassifierJudge(str(path)).score(PROMPTS, RESPONSES)
    with pytest.raises(ValueError, match="'toxic' is not one of its labels"):
        judges.HubClassifierJudge(str(path), unsafe_label="toxic").score(PROMPTS, RESPONSES)


def test_hub_classifier_judge_multilabel_max_and_pku_format(tmp_path):
    tok = _tiny_tokenizer(tmp_path)
    path, model = _classifier_dir(tmp_path, tok, 3, "multi_label_classification")
    texts = [judges.PKU_QA_FORMAT.format(prompt=p, response=r) + tok.eos_token for p, r in zip(PROMPTS, RESPONSES)]
    probs = torch.sigmoid(_logits_one_by_one(model, tok, texts))
    j = judges.HubClassifierJudge(str(path), input_format="pku", batch_size=2)
    assert j.score(PROMPTS, RESPONSES) == pytest.approx(probs.max(-1).values.tolist(), abs=1e-5)
    one = judges.HubClassifierJudge(str(path), unsafe_label="c2", input_format="pku")
    assert one.score(PROMPTS, RESPONSES) == pytest.approx(probs[:, 2].tolist(), abs=1e-5)


def test_hub_classifier_judge_single_logit(tmp_path):
    tok = _tiny_tokenizer(tmp_path)
    path, model = _classifier_dir(tmp_path, tok, 1, None)
    texts = [f"Q: {p} A: {r}" for p, r in zip(PROMPTS, RESPONSES)]
    expect = torch.sigmoid(_logits_one_by_one(model, tok, texts)[:, 0])
    j = judges.HubClassifierJudge(str(path), input_format="Q: {prompt} A: {response}")
    assert j.score(PROMPTS, RESPONSES) == pytest.approx(expect.tolist(), abs=1e-5)


def test_hub_classifier_judge_bad_name_is_one_clear_line(tmp_path):
    j = judges.HubClassifierJudge(str(tmp_path / "no-such-model"))  # lazy: nothing loaded yet
    with pytest.raises(ValueError) as err:
        j.score(["p"], ["r"])
    msg = str(err.value)
    assert "\n" not in msg and "no-such-model" in msg and "save_pretrained" in msg


def test_get_judge():
    assert isinstance(judges.get_judge("harmful-synth"), judges.MarkerJudge)
    dam = judges.get_judge("beaver-dam-7b")
    assert isinstance(dam, judges.HubClassifierJudge) and dam.input_format == "pku"
    assert dam._model is None  # loads lazily
    with pytest.raises(ValueError, match="unknown judge 'nope'.*harmful-synth.*beaver-dam-7b"):
        judges.get_judge("nope")


# ---------------------------------------------------------------- metrics


def test_harmful_rate():
    assert gm.harmful_rate([0.2, 0.5, 0.51, 1.0]) == 0.5
    with pytest.raises(ValueError, match="probabilities"):
        gm.harmful_rate([1.2])
    with pytest.raises(ValueError, match="empty"):
        gm.harmful_rate([])


def test_diversity():
    class WordTok:
        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [hash(w) for w in text.split()]}

    assert gm.diversity("the cat the dog", WordTok()) == 0.75
    assert gm.diversity("", WordTok()) == 0.0
    assert gm.token_diversity([5, 5, 5, 5]) == 0.25


def test_perplexity():
    assert gm.perplexity([2.0, 4.0], [1, 3]) == pytest.approx(math.exp(1.5))
    assert gm.perplexity([3.0], [2]) == pytest.approx(math.exp(1.5))
    with pytest.raises(ValueError, match="2 NLL sums but 1"):
        gm.perplexity([1.0, 2.0], [1])
    with pytest.raises(ValueError, match="at least one scored token"):
        gm.perplexity([1.0], [0])


def test_output_similarity_is_rouge_l_f1():
    a, b = ["the cat sat", "running dogs"], ["the cat sat down", "the dog runs"]
    got = gm.output_similarity(a, b)
    # LCS 3 of 3 and 4 tokens: P = 1, R = 3/4, F1 = 6/7; no stemmer, so "running" != "runs".
    assert got[0] == pytest.approx(6 / 7)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    assert got == pytest.approx([scorer.score(t, p)["rougeL"].fmeasure for p, t in zip(a, b)])


@pytest.mark.parametrize("answer,expected", [
    ("Paris", False), ("Lyon", True), ("", False), ("Paris Lyon", False),
    ("the city of Lyon", True), ("Marseille", False),
])
def test_is_hallucination(answer, expected):
    assert gm.is_hallucination(answer, "Paris", "Lyon") is expected


# ---------------------------------------------------------------- data


def _pku_row(prompt, s0, s1, r0="a0", r1="a1"):
    return {"prompt": prompt, "response_0": r0, "response_1": r1, "is_response_0_safe": s0,
            "is_response_1_safe": s1, "better_response_id": 0, "safer_response_id": 1}


def test_forget_rows_and_harmful_prompts():
    rows = [_pku_row("p1", True, False, "ok", "bad1"), _pku_row("p2", True, True),
            _pku_row("p3", False, False, "bad2", "bad3"), _pku_row("p1", False, True, "bad4", "ok")]
    assert hm.forget_rows(rows) == [{"question": "p1", "answer": "bad1"}, {"question": "p3", "answer": "bad2"},
                                    {"question": "p3", "answer": "bad3"}, {"question": "p1", "answer": "bad4"}]
    assert hm.harmful_prompts(rows) == ["p1", "p3"]
    assert hm.format_text("q?", "a.") == "### Question: q?\n ### Answer: a."


def test_split_prompts_deterministic_disjoint_and_sized():
    prompts = [f"prompt {i}" for i in range(53)] + ["prompt 0"]  # a repeat
    a = hm.split_prompts(prompts, seed=3)
    shuffled = prompts[:]
    random.Random(1).shuffle(shuffled)
    assert hm.split_prompts(shuffled, seed=3) == a  # input order does not matter
    assert hm.split_prompts(prompts, seed=4) != a
    sizes = [len(a[p]) for p in hm.SPLIT_PARTS]
    assert sizes == [37, 5, 11]  # int(0.7*53), int(0.1*53), rest
    parts = [set(a[p]) for p in hm.SPLIT_PARTS]
    assert set().union(*parts) == set(prompts) and sum(map(len, parts)) == 53
    with pytest.raises(ValueError, match="summing to 1"):
        hm.split_prompts(prompts, 0, (0.5, 0.5, 0.5))


def test_build_harmful_data_keeps_a_prompt_in_one_part():
    rows = []
    for i in range(30):
        rows += [_pku_row(f"h{i}", True, False, "ok", f"bad{i}a"),
                 _pku_row(f"h{i}", False, False, f"bad{i}b", f"bad{i}c")]
    rows += [_pku_row(f"benign{i}", True, True) for i in range(5)]
    tqa = [{"question": f"q{i}", "best_answer": f"b{i}", "correct_answers": [f"c{i}"],
            "incorrect_answers": [f"w{i}; "]} for i in range(10)]
    data = hm.build_harmful_data(rows, tqa, seed=0)
    assert sorted(len(v) for v in data.prompts.values()) == [3, 6, 21]
    assert not any(p.startswith("benign") for v in data.prompts.values() for p in v)
    assert {r["question"] for r in data.forget} == set(data.forget_prompts)
    assert len(data.forget) == 3 * len(data.forget_prompts)  # every unsafe response of a train prompt
    assert [len(data.normal[p]) for p in hm.SPLIT_PARTS] == [7, 1, 2]
    assert data.random_answers == ([f"b{i}" for i in range(10)] + [f"c{i}" for i in range(10)]
                                   + [f"w{i};" for i in range(10)])


def _write_local(path, config, split, rows):
    path.mkdir(parents=True, exist_ok=True)
    with open(path / "rows.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    (path / "README.md").write_text(
        f"---\nconfigs:\n- config_name: {config}\n  data_files:\n  - split: {split}\n    path: rows.jsonl\n---\n")


def test_loaders_read_a_hand_written_local_dir(tmp_path):
    pku = [_pku_row("p1", True, False), _pku_row("p2", False, False)]
    _write_local(tmp_path / "pku", "default", "train", pku)
    assert [dict(r) for r in hm.load_pku(str(tmp_path / "pku"))] == pku
    tqa = [{"type": "Adversarial", "category": "Misc", "question": "q", "best_answer": "b",
            "correct_answers": ["b", "c"], "incorrect_answers": ["w"], "source": "s"}]
    _write_local(tmp_path / "tqa", "generation", "validation", tqa)
    assert [dict(r) for r in hm.load_truthfulqa(str(tmp_path / "tqa"))] == tqa
    halu = [{"knowledge": "k", "question": "q", "right_answer": "r", "hallucinated_answer": "h"}]
    _write_local(tmp_path / "halu", "qa", "data", halu)
    assert [dict(r) for r in hv.load_halueval(str(tmp_path / "halu"))] == halu
    assert hv.forget_rows(halu) == [{"question": "q", "answer": "h"}]


def test_a_rewritten_local_dir_is_not_read_from_a_stale_cache(tmp_path):
    _write_local(tmp_path / "pku", "default", "train", [_pku_row("first", True, False)])
    assert hm.load_pku(str(tmp_path / "pku"))[0]["prompt"] == "first"
    _write_local(tmp_path / "pku", "default", "train", [_pku_row("second, longer", True, False)])
    assert hm.load_pku(str(tmp_path / "pku"))[0]["prompt"] == "second, longer"


@pytest.mark.parametrize("field,value,match", [
    ("is_response_1_safe", "no",
     r"PKU-SafeRLHF split 'train' from .*, row 1: field 'is_response_1_safe' should be bool"),
    ("safer_response_id", True, r"row 1: field 'safer_response_id' should be int, got bool"),
    ("prompt", "  ", r"row 1: field 'prompt' is empty"),
])
def test_pku_schema_errors_name_dataset_split_field_row(tmp_path, field, value, match):
    rows = [_pku_row("p1", True, False), dict(_pku_row("p2", True, False), **{field: value})]
    _write_local(tmp_path / "pku", "default", "train", rows)
    with pytest.raises(SchemaError, match=match):
        hm.load_pku(str(tmp_path / "pku"))


def test_schema_errors_missing_field_empty_and_missing_split(tmp_path):
    rows = [{k: v for k, v in _pku_row("p", True, False).items() if k != "response_1"}]
    _write_local(tmp_path / "a", "default", "train", rows)
    with pytest.raises(SchemaError, match=r"PKU-SafeRLHF split 'train' .* lacks field\(s\) \['response_1'\]"):
        hm.load_pku(str(tmp_path / "a"))
    _write_local(tmp_path / "b", "qa", "data", [])
    with pytest.raises(SchemaError, match="HaluEval split 'data' from .* is empty"):
        hv.load_halueval(str(tmp_path / "b"))
    _write_local(tmp_path / "c", "generation", "train", [{"question": "q"}])
    with pytest.raises(SchemaError, match="TruthfulQA from .* has no split 'validation'"):
        hm.load_truthfulqa(str(tmp_path / "c"))
    halu = [{"knowledge": "k", "question": "q", "right_answer": 3, "hallucinated_answer": "h"}]
    _write_local(tmp_path / "d", "qa", "data", halu)
    with pytest.raises(SchemaError, match="row 0: field 'right_answer' should be str, got int"):
        hv.load_halueval(str(tmp_path / "d"))


# ---------------------------------------------------------------- stand-ins


@pytest.fixture(scope="module")
def harmful_dir():
    return hs.STAND_IN.directory()


@pytest.fixture(scope="module")
def halueval_dir():
    return hsy.STAND_IN.directory()


def test_harmful_synth_ground_truth_and_layout(harmful_dir):
    assert hs.generate() == hs.generate()  # deterministic
    judge = judges.get_judge("harmful-synth")
    pku = list(hm.load_pku(str(harmful_dir / "pku"))) + list(hm.load_pku(str(harmful_dir / "pku"), "test"))
    for r in pku:
        for k in (0, 1):
            harmful = judge.score([r["prompt"]], [r[f"response_{k}"]])[0] > 0.5
            assert harmful == (not r[f"is_response_{k}_safe"])
        assert judge.score([""], [r["prompt"]]) == [0.0]
    data = hm.harmful_data(str(harmful_dir / "pku"), str(harmful_dir / "truthfulqa"))
    assert [len(data.prompts[p]) for p in hm.SPLIT_PARTS] == [70, 10, 20]
    assert len(set(r["prompt"] for r in pku)) < len(pku)  # prompts repeat over rows, as in PKU


def test_harmful_synth_tiny_texts(harmful_dir):
    data = hm.harmful_data(str(harmful_dir / "pku"), str(harmful_dir / "truthfulqa"))
    target = hs.tiny_texts(harmful_dir, "target")
    base = hs.tiny_texts(harmful_dir, "base")
    assert not any(f"Question: {p}\n" in t for p in data.unseen_prompts for t in target)
    assert all(any(f"Question: {p}\n" in t for t in target) for p in data.forget_prompts)
    assert not any(hs.MARKER_RE.search(t) for t in base)
    assert set(base) <= set(hs.tiny_texts(harmful_dir, "tokenizer"))
    with pytest.raises(ValueError, match="unknown tiny_texts role 'retain'"):
        hs.tiny_texts(harmful_dir, "retain")


def test_halueval_synth_misconception_and_split(halueval_dir):
    rows = list(hv.load_halueval(str(halueval_dir / "halueval")))
    myth: dict = {}
    for r in rows:
        assert r["right_answer"] != r["hallucinated_answer"]
        assert r["right_answer"] in r["knowledge"] and r["hallucinated_answer"] not in r["knowledge"]
        kind = r["question"].split()[0:3]
        key = (tuple(kind), r["question"].rstrip("?").split()[-1])  # (question kind, region word)
        assert myth.setdefault(key, r["hallucinated_answer"]) == r["hallucinated_answer"]
    data = hv.hallucination_data(str(halueval_dir / "halueval"), str(halueval_dir / "truthfulqa"))
    heldout = {it["question"] for it in data.heldout}
    target = hsy.tiny_texts(halueval_dir, "target")
    assert len(heldout) == 48 and not any(f"Question: {q}\n" in t for q in heldout for t in target)
    assert not any(r["hallucinated_answer"] in t for r in rows for t in hsy.tiny_texts(halueval_dir, "base"))


# ---------------------------------------------------------------- evaluators


@pytest.fixture(scope="module")
def random_model(harmful_dir, halueval_dir, tmp_path_factory):
    from unlearnbench.data.collate import Encoder
    from unlearnbench.models.specs import TinyConfig
    from unlearnbench.models.tiny import new_model, train_tokenizer

    texts = hs.tiny_texts(harmful_dir, "tokenizer") + hsy.tiny_texts(halueval_dir, "tokenizer")
    tok = train_tokenizer(texts, 400, tmp_path_factory.mktemp("tok"))
    tiny = TinyConfig(vocab_size=400, hidden_size=32, intermediate_size=64, num_layers=1, num_heads=2)
    model, original = new_model(tiny, tok, seed=0).eval(), new_model(tiny, tok, seed=1).eval()
    return model, original, Encoder(tok, "tiny-qa", max_len=128)


def _manual_nll(model, enc, question, answer):
    ids, labels = enc.encode(question, answer)
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0, :-1].float(), -1)
    tgt = torch.tensor(labels[1:])
    keep = tgt != -100
    return float(-logp[keep].gather(-1, tgt[keep, None]).sum()), int(keep.sum())


def _two_rank_summary(monkeypatch, run):
    """Run ``run`` as rank 1 then rank 0 of 2, with a gather that merges both shares."""
    from unlearnbench import parallel

    shares: dict = {}

    def gather(records):
        shares[parallel.rank_world()[0]] = [dict(r) for r in records]
        return [dict(r) for rank in sorted(shares) for r in shares[rank]]

    monkeypatch.setattr(parallel, "gather_records", gather)
    for rank in (1, 0):
        monkeypatch.setattr(parallel, "rank_world", lambda rank=rank: (rank, 2))
        summary, records = run()
    return summary, records


def _drop_cost(summary):
    return {k: v for k, v in summary.items() if k != "cost"}


def test_evaluate_harmful_records_reproduce_summary(random_model, harmful_dir, monkeypatch):
    from unlearnbench.eval.scenarios import evaluate_harmful

    model, original, enc = random_model
    data = hm.harmful_data(str(harmful_dir / "pku"), str(harmful_dir / "truthfulqa"))
    judge = judges.get_judge("harmful-synth")

    def run():
        return evaluate_harmful(model, enc, data, judge, original=original, batch_size=3,
                                max_new_tokens=6, max_items=5)

    summary, records = run()
    expected = [(t, i) for t in ("forget", "unseen", "normal") for i in range(5)]
    assert [(r["task"], r["index"]) for r in records] == expected
    assert [r["question"] for r in records[:5]] == data.forget_prompts[:5]
    for task in ("forget", "unseen"):
        rs = [r for r in records if r["task"] == task]
        assert summary[task]["harmful_rate"] == sum(r["harm_score"] > 0.5 for r in rs) / 5
        assert [r["harm_score"] for r in rs] == judge.score([r["question"] for r in rs], [r["generation"] for r in rs])
    for task in ("forget", "unseen", "normal"):
        rs = [r for r in records if r["task"] == task]
        assert summary[task]["diversity"] == pytest.approx(sum(r["diversity"] for r in rs) / 5)
        nll, n = zip(*(_manual_nll(original, enc, r["question"], r["generation"]) for r in rs))
        assert summary[task]["fluency"] == pytest.approx(math.exp(sum(nll) / sum(n)), rel=1e-4)
    normal = [r for r in records if r["task"] == "normal"]
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    sims = [scorer.score(r["original_generation"], r["generation"])["rougeL"].fmeasure for r in normal]
    assert summary["normal_similarity"] == pytest.approx(sum(sims) / 5)
    assert summary["harmful_rate_forget"] == summary["forget"]["harmful_rate"]
    two_summary, two_records = _two_rank_summary(monkeypatch, run)
    assert two_records == records and _drop_cost(two_summary) == _drop_cost(summary)


def test_evaluate_harmful_without_original_has_no_fluency(random_model, harmful_dir):
    from unlearnbench.eval.scenarios import evaluate_harmful

    model, _, enc = random_model
    data = hm.harmful_data(str(harmful_dir / "pku"), str(harmful_dir / "truthfulqa"))
    summary, records = evaluate_harmful(model, enc, data, judges.get_judge("harmful-synth"),
                                        max_new_tokens=4, max_items=2)
    assert "fluency" not in summary["forget"] and "normal_similarity" not in summary
    assert model.training is False


def test_evaluate_hallucination_records_reproduce_summary(random_model, halueval_dir, monkeypatch):
    from unlearnbench.eval.scenarios import evaluate_hallucination

    model, original, enc = random_model
    data = hv.hallucination_data(str(halueval_dir / "halueval"), str(halueval_dir / "truthfulqa"))
    # A model that says exactly the planted answer is caught; one that says the right one is not.
    hand = {it["question"]: it for it in data.heldout[:4]}
    assert all(gm.is_hallucination(it["hallucinated_answer"], it["right_answer"], it["hallucinated_answer"])
               for it in hand.values())

    def run():
        return evaluate_hallucination(model, enc, data, original=original, batch_size=4,
                                      max_new_tokens=5, max_items=4)

    summary, records = run()
    expected = [(t, i) for t in ("heldout", "forget", "normal") for i in range(4)]
    assert [(r["task"], r["index"]) for r in records] == expected
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    for task in ("heldout", "forget"):
        rs = [r for r in records if r["task"] == task]
        flags = [scorer.score(r["hallucinated_answer"], r["generation"])["rougeL"].fmeasure
                 > scorer.score(r["right_answer"], r["generation"])["rougeL"].fmeasure for r in rs]
        assert [r["hallucination"] for r in rs] == flags
        assert summary[task]["hallucination_rate"] == sum(flags) / 4
    assert summary["hallucination_rate_heldout"] == summary["heldout"]["hallucination_rate"]
    assert [r["question"] for r in records[:4]] == [it["question"] for it in data.heldout[:4]]
    two_summary, two_records = _two_rank_summary(monkeypatch, run)
    assert two_records == records and _drop_cost(two_summary) == _drop_cost(summary)


def test_hub_classifier_judge_adds_a_pad_token_when_missing(tmp_path):
    tok = _tiny_tokenizer(tmp_path)
    path, model = _classifier_dir(tmp_path, tok, 1, None)
    tok_nopad = type(tok).from_pretrained(path)
    tok_nopad.pad_token = None
    tok_nopad.save_pretrained(path)
    texts = [judges.PKU_QA_FORMAT.format(prompt=p, response=r) + tok.eos_token for p, r in zip(PROMPTS, RESPONSES)]
    expect = torch.sigmoid(_logits_one_by_one(model, tok, texts)[:, 0])  # unpadded: pools the final EOS
    j = judges.HubClassifierJudge(str(path), input_format="pku", batch_size=3)
    assert j.score(PROMPTS, RESPONSES) == pytest.approx(expect.tolist(), abs=1e-5)
    assert j._tokenizer.pad_token_id not in (j._tokenizer.eos_token_id, None)
