"""Copyright completion: item cutting, text loading, the stand-in, metrics and evaluator."""

from __future__ import annotations

import json
import math
import filecmp
from dataclasses import replace

import pytest
import torch

from unlearnbench import parallel
from unlearnbench.data import copyright as cp
from unlearnbench.data import copyright_synth as cs
from unlearnbench.eval import copyright as ev
from unlearnbench.metrics import copyright as cm

# ------------------------------------------------------------------------- metrics


def test_bleu_is_flats_per_item_corpus_bleu():
    sacrebleu = pytest.importorskip("sacrebleu")
    gens = ["a b c d", "a b c", "the cat sat on the mat"]
    refs = ["a b c d e", "a b c d", "the cat sat on the mat"]
    got = cm.bleu(gens, refs)
    # Hand value: all n-gram precisions are 1, brevity penalty exp(1 - 5/4).
    assert got[0] == pytest.approx(100 * math.exp(-0.25), abs=1e-9)
    # corpus_bleu, not sentence_bleu: a 3-token hypothesis has no 4-gram, which
    # corpus_bleu scores 0 and sentence_bleu (effective order) does not.
    assert got[1] == 0.0
    assert sacrebleu.sentence_bleu(gens[1], [refs[1]]).score > 50
    assert got[2] == pytest.approx(100.0)
    assert got == [sacrebleu.corpus_bleu([g], [[r]]).score for g, r in zip(gens, refs)]
    with pytest.raises(ValueError, match="2 generations but 1 references"):
        cm.bleu(["a", "b"], ["a"])


def test_rouge_l_recall_uses_the_stemmer():
    from rouge_score import rouge_scorer

    ref, gen = "the cats are running fast", "the cat runs"
    # Stemmed: the cat run / the cat are run fast -> LCS 3 of 5 reference tokens.
    assert cm.rouge_l_recall([gen], [ref]) == [pytest.approx(0.6)]
    direct = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True).score(ref, gen)["rougeL"].recall
    assert cm.rouge_l_recall([gen], [ref])[0] == direct
    unstemmed = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False).score(ref, gen)["rougeL"].recall
    assert unstemmed == pytest.approx(0.2)  # so the 0.6 above is the stemmer's doing


def test_perplexity_hand_values():
    assert cm.perplexity([2.0, 4.0], [1, 3]) == pytest.approx(math.exp(1.5))
    # word perplexity: same NLL over whitespace words (lm-eval's count: re.split(r"\s+"))
    assert cm.word_perplexity([2.0, 4.0], ["one two", "three"]) == pytest.approx(math.exp(2.0))
    with pytest.raises(ValueError, match="zero tokens"):
        cm.perplexity([1.0], [0])
    with pytest.raises(ValueError, match="2 NLL sums but 1 token counts"):
        cm.perplexity([1.0, 2.0], [3])
    with pytest.raises(ValueError, match="rougeL_recall is empty"):
        cm.mean([], "rougeL_recall")


def test_perplexity_windows_cover_every_token_once():
    ids = list(range(1, 11))
    assert ev.perplexity_windows(ids, 4, prefix_id=0) == [
        ([0, 1, 2, 3], [1, 2, 3, 4]),
        ([4, 5, 6, 7], [5, 6, 7, 8]),
        ([8, 9], [9, 10]),
    ]
    assert ev.perplexity_windows([], 4, 0) == []
    with pytest.raises(ValueError, match="context_len"):
        ev.perplexity_windows(ids, 0, 0)


# ---------------------------------------------------------------------- items


HAND_TEXT = "One two three four\nfive six  seven eight\n\nnine ten"


def test_make_items_exact_strings_and_template_major_order():
    items = cp.make_items(HAND_TEXT, passage_words=4, prefix_words=1,
                          templates=("Go on: {prefix}", "More of {prefix}"), seed=0)
    assert items == [
        {"question": "Go on: One", "answer": "two three four", "passage": 0, "template": 0},
        {"question": "Go on: five", "answer": "six seven eight", "passage": 1, "template": 0},
        {"question": "More of One", "answer": "two three four", "passage": 0, "template": 1},
        {"question": "More of five", "answer": "six seven eight", "passage": 1, "template": 1},
    ]  # the 2-word tail "nine ten" is not a whole passage
    assert cp.passage_texts(HAND_TEXT, 4) == ["One two three four", "five six seven eight"]


def test_train_and_test_templates_differ_on_the_same_passages():
    assert len(cp.TRAIN_TEMPLATES) == len(cp.TEST_TEMPLATES) == 6
    assert not set(cp.TRAIN_TEMPLATES) & set(cp.TEST_TEMPLATES)
    kw = dict(passage_words=4, prefix_words=2, seed=0)
    train, test = cp.train_items(HAND_TEXT, **kw), cp.test_items(HAND_TEXT, **kw)
    assert len(train) == len(test) == 2 * 6
    assert train[0]["question"] == cp.TRAIN_TEMPLATES[0].format(prefix="One two")
    assert test[0]["question"] == cp.TEST_TEMPLATES[0].format(prefix="One two")
    assert [(t["passage"], t["answer"]) for t in train] == [(t["passage"], t["answer"]) for t in test]
    assert {t["question"] for t in train}.isdisjoint(t["question"] for t in test)


def test_make_items_subsets_are_seeded():
    text = " ".join(f"w{i}" for i in range(100))
    kw = dict(passage_words=5, prefix_words=2, templates=cp.TEST_TEMPLATES,
              n_passages=7, templates_per_passage=2)
    a = cp.make_items(text, seed=1, **kw)
    assert a == cp.make_items(text, seed=1, **kw)
    assert a != cp.make_items(text, seed=2, **kw)
    assert len(a) == 14
    chosen = sorted({it["passage"] for it in a})
    assert len(chosen) == 7 and all(0 <= p < 20 for p in chosen)
    for p in chosen:
        assert len([it for it in a if it["passage"] == p]) == 2


def test_too_short_text_and_bad_sizes_say_the_numbers_and_the_fix():
    with pytest.raises(ValueError) as err:
        cp.make_items("only five words in here", passage_words=380, prefix_words=200,
                      templates=cp.TEST_TEMPLATES, seed=0)
    msg = str(err.value)
    assert "\n" not in msg and "5 words" in msg and "passage_words=380" in msg
    assert "longer text or lower passage_words" in msg
    with pytest.raises(ValueError, match="prefix_words=4, passage_words=4"):
        cp.make_items(HAND_TEXT, passage_words=4, prefix_words=4, templates=cp.TEST_TEMPLATES, seed=0)
    with pytest.raises(ValueError, match="n_passages=3 but the text .10 words. holds only 2"):
        cp.make_items(HAND_TEXT, passage_words=4, prefix_words=1, templates=cp.TEST_TEMPLATES,
                      seed=0, n_passages=3)
    with pytest.raises(ValueError, match="must contain '{prefix}'"):
        cp.make_items(HAND_TEXT, passage_words=4, prefix_words=1, templates=("no slot",), seed=0)


# ------------------------------------------------------------------ loading text


def test_missing_book_file_is_one_line_naming_path_and_fix(tmp_path, monkeypatch):
    missing = tmp_path / "hp1.txt"
    with pytest.raises(FileNotFoundError) as err:
        cp.load_text(str(missing))
    msg = str(err.value)
    assert "\n" not in msg and str(missing) in msg and "--data-dir /path/to/book.txt" in msg
    with pytest.raises(ValueError, match="source is empty"):
        cp.load_text("")
    # Not a file and not a reachable dataset: same hint, one line. (The hub is replaced by
    # its offline answer: a real lookup here waits for network timeouts.)
    import datasets

    def offline(path, *args, **kwargs):
        raise ConnectionError(f"Couldn't reach '{path}' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(FileNotFoundError) as err:
        cp.load_text("nobody-here/no-such-book")
    msg = str(err.value)
    assert "\n" not in msg and "'nobody-here/no-such-book'" in msg and "--data-dir" in msg
    assert "OfflineModeIsEnabled" in msg


def test_local_txt_file(tmp_path):
    book = tmp_path / "book.txt"
    book.write_text(HAND_TEXT, encoding="utf-8")
    assert cp.load_text(str(book)) == HAND_TEXT
    book.write_text("  \n", encoding="utf-8")
    with pytest.raises(ValueError, match="is empty"):
        cp.load_text(str(book))


def test_dataset_name_path_on_a_hand_written_hub_layout(tmp_path):
    # A directory laid out like a hub dataset repo: README `configs:` + data files.
    (tmp_path / "chapters.jsonl").write_text(
        json.dumps({"content": "first chapter text"}) + "\n"
        + json.dumps({"content": "second chapter"}) + "\n", encoding="utf-8")
    (tmp_path / "README.md").write_text(
        "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n"
        "    path: chapters.jsonl\n---\n", encoding="utf-8")
    assert cp.load_text(str(tmp_path), field="content") == "first chapter text\nsecond chapter"
    # Rewritten in place, the directory is read afresh (no stale datasets cache).
    (tmp_path / "chapters.jsonl").write_text(json.dumps({"content": "a new edition"}) + "\n")
    assert cp.load_text(str(tmp_path), field="content") == "a new edition"
    with pytest.raises(ValueError, match=r"no field 'text' \(it has \['content'\]\)"):
        cp.load_text(str(tmp_path))


# ------------------------------------------------------------------- the stand-in

SMALL = cs.CopyrightSynthConfig(n_passages=4, n_countries=4, n_animals=2, general_docs=12,
                                heldout_docs=4)


def test_generator_is_deterministic_and_seeded(tmp_path):
    assert cs.generate(SMALL) == cs.generate(SMALL)
    other = cs.generate(replace(SMALL, seed=1))
    assert other["book"] != cs.generate(SMALL)["book"]
    assert cs.STAND_IN.key(SMALL) == cs.STAND_IN.key(replace(SMALL)) != cs.STAND_IN.key(replace(SMALL, seed=1))
    a, b = cs.write(SMALL, tmp_path / "a"), cs.write(SMALL, tmp_path / "b")
    names = sorted(p.name for p in a.iterdir())
    assert names == ["README.md", "book.txt", "config.json", "general_heldout.jsonl",
                     "general_mc.jsonl", "general_train.jsonl"]
    assert all(filecmp.cmp(a / n, b / n, shallow=False) for n in names)
    assert cs.load_config(a) == SMALL


def test_stand_in_contents(tmp_path):
    import datasets

    d = cs.write(SMALL, tmp_path / "s")
    book = cp.load_text(str(d / "book.txt"))
    assert len(cp.passages(book, SMALL.passage_words)) >= SMALL.n_passages
    mc = datasets.load_dataset(str(d), "general_mc", split="test")  # the README header works
    assert len(mc) == 3 * SMALL.n_countries + 2 * SMALL.n_animals
    for row in mc:
        assert isinstance(row["question"], str) and isinstance(row["subject"], str)
        assert len(row["choices"]) == 4 and len(set(row["choices"])) == 4
        assert row["answer"] in range(4)
    held = datasets.load_dataset(str(d), "general_heldout", split="test")["text"]
    assert len(held) == SMALL.heldout_docs
    # The base never sees the book; the target's text is the book plus replay.
    base = cs.tiny_texts(d, "base")
    passages = cs.book_passages(d, SMALL.passage_words)
    assert not set(passages) & set(base)
    assert all(held_doc not in base for held_doc in held)
    target = cs.tiny_texts(d, "target")
    assert target[: len(passages)] == passages
    n_items = len(passages) * SMALL.target_train_templates
    assert len(target) == len(passages) + n_items + round(SMALL.target_replay * (len(passages) + n_items))
    assert set(target[len(passages) + n_items:]) <= set(base)
    assert set(passages) <= set(cs.tiny_texts(d, "tokenizer"))
    with pytest.raises(ValueError, match="unknown tiny-family role 'retain'"):
        cs.tiny_texts(d, "retain")
    with pytest.raises(FileNotFoundError, match="not a copyright-synth directory"):
        cs.tiny_texts(tmp_path, "base")


def test_tiny_recipe_wires_the_roles(tmp_path):
    from unlearnbench.models.specs import TinyConfig

    from unlearnbench.benchmarks.copyright import CopyrightSynthBenchmark

    d = cs.write(SMALL, tmp_path / "s")
    recipe = CopyrightSynthBenchmark(path=str(d)).recipe()
    assert recipe.data_key == f"copyright-{cs.STAND_IN.key(SMALL)}"
    assert recipe.tokenizer_texts() == cs.tiny_texts(d, "tokenizer")
    assert recipe.base_texts() == cs.tiny_texts(d, "base")
    assert recipe.finetune("target", "book") == (None, cs.tiny_texts(d, "target"))
    assert recipe.finetuned_roles == ("target",)
    tiny = replace(TinyConfig(), **recipe.tiny)  # every override is a TinyConfig field
    assert tiny.replay is False and tiny.batch_size == 16


def test_mc_prompt_is_the_metrics_md_prompt():
    row = {"question": "Q?", "choices": ["w", "x", "y", "z"], "answer": 2, "subject": "world_geo"}
    assert cs.mc_prompt(row) == ("The following are multiple choice questions (with answers) about "
                                 "world geo.\n\nQ?\nA. w\nB. x\nC. y\nD. z\nAnswer:")


# ------------------------------------------------------------------- evaluator


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from unlearnbench.models.specs import TinyConfig
    from unlearnbench.models.tiny import new_model, train_tokenizer

    d = cs.write(SMALL, tmp_path_factory.mktemp("cs") / "data")
    tok = train_tokenizer(cs.tiny_texts(d, "tokenizer"), 384, tmp_path_factory.mktemp("tok"))
    tiny = TinyConfig(vocab_size=384, hidden_size=32, intermediate_size=64, num_layers=2,
                      num_heads=2, max_len=128)
    book = (d / "book.txt").read_text(encoding="utf-8")
    items = cp.test_items(book, passage_words=SMALL.passage_words, prefix_words=SMALL.prefix_words,
                          seed=0, templates_per_passage=2)
    held = [json.loads(line)["text"] for line in open(d / "general_heldout.jsonl")]
    return new_model(tiny, tok, seed=0).eval(), tok, items, held


def test_evaluator_records_reproduce_the_summary(tiny_model):
    sacrebleu = pytest.importorskip("sacrebleu")
    model, tok, items, held = tiny_model
    summary, records = ev.evaluate_copyright(model, tok, items, held, max_new_tokens=12, batch_size=3)
    comp = [r for r in records if r["task"] == "completion"]
    gen = [r for r in records if r["task"] == "general"]
    assert [r["index"] for r in comp] == list(range(len(items)))
    assert [r["answer"] for r in comp] == [it["answer"] for it in items]
    assert summary["n_items"] == len(items) and summary["n_general_texts"] == len(held)
    assert summary["rougeL_recall"] == pytest.approx(sum(r["rougeL_recall"] for r in comp) / len(comp))
    assert summary["bleu"] == pytest.approx(sum(r["bleu"] for r in comp) / len(comp))
    for r in comp:
        assert r["bleu"] == sacrebleu.corpus_bleu([r["generation"]], [[r["answer"]]]).score
    assert summary["perplexity"] == pytest.approx(
        math.exp(sum(r["nll_sum"] for r in gen) / sum(r["n_tokens"] for r in gen)))
    assert summary["n_general_tokens"] == sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in held)
    # An untrained model: perplexity near the vocabulary size, far above a trained one's.
    assert 100 < summary["perplexity"] < 2000
    assert summary["cost"]["tokens"] > 0


def test_stand_in_benchmark_scores_its_general_questions_zero_shot(tiny_model, tmp_path):
    from types import SimpleNamespace

    import torch

    from unlearnbench.benchmarks.copyright import CopyrightSynthBenchmark

    model, tok, _, _ = tiny_model
    d = cs.write(SMALL, tmp_path / "s")
    bench = CopyrightSynthBenchmark(str(d))
    assert bench.synth == SMALL  # a given directory is cut with its own generator config
    kw = {"max_items": 2, "batch_size": 4, "max_new_tokens": 3}
    summary, records = bench.evaluate(model, SimpleNamespace(tokenizer=tok), "train", zero_shot_tasks="general_mc",
                                      **kw)
    rows = [json.loads(line) for line in open(d / "general_mc.jsonl")]
    mc = [r for r in records if r["task"] == "general_mc"]
    assert [r["gold"] for r in mc] == [row["answer"] for row in rows]
    assert summary["zero_shot_accuracy"] == sum(r["correct"] for r in mc) / len(rows)
    assert bench.metrics(summary)["zero_shot_accuracy"] == summary["zero_shot_accuracy"]
    # One log-likelihood by hand: log p(" A" | prompt) from a plain forward pass.
    prompt_ids = tok(cs.mc_prompt(rows[0]))["input_ids"]
    whole = tok(cs.mc_prompt(rows[0]) + " A")["input_ids"]
    cont = whole[len(prompt_ids):]
    with torch.no_grad():
        logp = model(torch.tensor([whole])).logits.float().log_softmax(-1)[0]
    by_hand = sum(float(logp[len(prompt_ids) - 1 + k, t]) for k, t in enumerate(cont))
    assert mc[0]["loglikelihoods"][0] == pytest.approx(by_hand, abs=1e-4)
    skipped, _ = bench.evaluate(model, SimpleNamespace(tokenizer=tok), "train", zero_shot_tasks=None, **kw)
    assert "zero_shot_accuracy" not in skipped and skipped["rougeL_recall"] == summary["rougeL_recall"]
    with pytest.raises(ValueError, match="zero_shot_tasks must be 'general_mc'"):
        bench.evaluate(model, SimpleNamespace(tokenizer=tok), "train", zero_shot_tasks=["boolq"], **kw)


def test_part_summaries_split_every_kind_of_record_by_its_index(tiny_model, tmp_path):
    """`select: validation` needs the summary of a part of the items: the whole equals the
    evaluation's summary, and the validation and test parts are recomputed from their own
    records (completion items, general texts and general questions each by their index)."""
    from types import SimpleNamespace

    from unlearnbench.benchmarks.base import is_validation
    from unlearnbench.benchmarks.copyright import CopyrightSynthBenchmark

    model, tok, _, _ = tiny_model
    bench = CopyrightSynthBenchmark(str(cs.write(SMALL, tmp_path / "s")))
    summary, records = bench.evaluate(model, SimpleNamespace(tokenizer=tok), "train", zero_shot_tasks="general_mc",
                                      max_items=12, batch_size=4, max_new_tokens=3)
    whole = bench.summarise_records(records)
    for key in ("rougeL_recall", "bleu", "perplexity", "zero_shot_accuracy", "n_items", "n_general_texts"):
        assert whole[key] == pytest.approx(summary[key]), key
    for part, want in (("validation", True), ("test", False)):
        got = bench.summarise_records(records, None, part)
        comp = [r for r in records if r["task"] == "completion" and is_validation(r["index"]) == want]
        gen = [r for r in records if r["task"] == "general" and is_validation(r["index"]) == want]
        mc = [r for r in records if r["task"] == "general_mc" and is_validation(r["index"]) == want]
        assert comp and gen and mc and got["n_items"] == len(comp) and got["n_general_texts"] == len(gen)
        assert got["rougeL_recall"] == pytest.approx(sum(r["rougeL_recall"] for r in comp) / len(comp))
        assert got["perplexity"] == pytest.approx(
            math.exp(sum(r["nll_sum"] for r in gen) / sum(r["n_tokens"] for r in gen)))
        assert got["zero_shot_accuracy"] == sum(r["correct"] for r in mc) / len(mc)


def test_batched_generation_and_nll_match_one_at_a_time(tiny_model):
    model, tok, items, held = tiny_model
    prompts = [it["question"] for it in items]
    batched = ev.generate_raw(model, tok, prompts, max_new_tokens=10, batch_size=4)
    single = ev.generate_raw(model, tok, prompts, max_new_tokens=10, batch_size=1)
    assert batched == single
    # Windowed NLL against a hand loop: BOS + the text in one forward pass (no window cut).
    text = held[0]
    ids = tok(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        x = torch.tensor([[tok.bos_token_id] + ids])
        logp = torch.log_softmax(model(input_ids=x).logits[0, :-1].float(), -1)
        hand = -float(logp[torch.arange(len(ids)), torch.tensor(ids)].sum())
    (nll, n), = ev.text_nll(model, tok, [text], context_len=128)
    assert n == len(ids) and nll == pytest.approx(hand, rel=1e-4)
    # Short windows: each window is its own forward pass from the previous token.
    (nll4, n4), = ev.text_nll(model, tok, [text], context_len=4, batch_size=2)
    manual = 0.0
    with torch.no_grad():
        for inp, tgt in ev.perplexity_windows(ids, 4, tok.bos_token_id):
            lp = torch.log_softmax(model(input_ids=torch.tensor([inp])).logits[0].float(), -1)
            manual -= float(lp[torch.arange(len(tgt)), torch.tensor(tgt)].sum())
    assert n4 == len(ids) and nll4 == pytest.approx(manual, rel=1e-4)


def test_rank_shards_give_the_same_records_as_one_process(tiny_model, monkeypatch):
    model, tok, items, held = tiny_model
    kw = dict(max_new_tokens=8, batch_size=4)
    whole, whole_records = ev.evaluate_copyright(model, tok, items, held, **kw)
    shards = []
    for rank in (0, 1):
        monkeypatch.setattr(parallel, "rank_world", lambda rank=rank: (rank, 2))
        shards += ev.evaluate_copyright(model, tok, items, held, **kw)[1]
    merged = sorted(shards, key=lambda r: (r["task"] != "completion", r["index"]))
    # Batches differ between the runs, so NLL sums may differ in the last float bits.
    strip = lambda recs: [{k: v for k, v in r.items() if k != "nll_sum"} for r in recs]  # noqa: E731
    assert strip(merged) == strip(whole_records)
    assert [r.get("nll_sum") for r in merged] == pytest.approx([r.get("nll_sum") for r in whole_records])
    assert ev.summarise(merged) == pytest.approx({k: v for k, v in whole.items() if k != "cost"})


def test_evaluator_rejects_bad_items(tiny_model):
    model, tok, _, held = tiny_model
    with pytest.raises(ValueError, match="copyright item 0 needs string 'question' and 'answer'"):
        ev.evaluate_copyright(model, tok, [{"prompt": "p", "response": "r"}], held, max_new_tokens=4)
    with pytest.raises(ValueError, match="max_new_tokens must be >= 1"):
        ev.evaluate_copyright(model, tok, [], held, max_new_tokens=0)


def test_finetune_command_builds_a_copyright_target_from_a_local_book(untrained, tmp_path):
    """`unlearnbench finetune` fine-tunes a model directory on your book (the real protocol's
    target); the result loads like any checkpoint and the book's NLL goes down."""
    import random

    from unlearnbench.cli import main
    from unlearnbench.data.copyright import passage_texts
    from unlearnbench.eval.copyright import text_nll
    from unlearnbench.models.specs import load_model, load_tokenizer

    rng = random.Random(0)
    words = ["lantern", "river", "quiet", "stone", "morning", "garden", "letter", "winter", "bridge"]
    book = tmp_path / "book.txt"
    book.write_text(" ".join(rng.choice(words) for _ in range(800)) + ".\n")
    out = tmp_path / "target"
    rc = main(["finetune", "--benchmark", "copyright", "--data-dir", str(book), "--model", untrained["model"],
               "--out", str(out), "--set", "epochs=3", "--set", "lr=1e-2", "--set", "max_len=64"])
    assert rc == 0 and (out / "config.json").exists()
    tok = load_tokenizer(str(out))
    # A control text of other words, in the same kind of sentence: training on anything lowers a
    # random model's NLL of any text; training on the book lowers the book's far more.
    others = ["ocean", "silver", "candle", "forest", "window", "paper", "thunder", "valley", "mirror"]
    control = " ".join(rng.choice(others) for _ in range(800)) + ".\n"

    def nll(path, text):
        (s, n), = text_nll(load_model(str(path)), tok, passage_texts(text, 380)[:1], context_len=64)
        return s / n

    book_drop, control_drop = (nll(untrained["model"], t) - nll(out, t) for t in (book.read_text(), control))
    assert book_drop > 1.0 and book_drop > control_drop + 0.5, (book_drop, control_drop)  # 1.94, 0.86
    # The directory records its base: the copyright "base" row of a later grid is that model.
    from unlearnbench.benchmarks.copyright import CopyrightBenchmark
    from unlearnbench.models.specs import ModelSpec

    spec = ModelSpec.from_name(str(out))
    bench = CopyrightBenchmark(str(book))
    assert bench.checkpoint(spec, "base", "train") == untrained["model"]
    assert bench.checkpoint(spec, "target", "train") == str(out)
