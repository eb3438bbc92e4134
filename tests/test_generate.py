"""The one generation path (eval.generate) against an independent reference: Hugging Face
``generate`` on one unpadded prompt at a time, on every stand-in's prompts as its evaluator
builds them (TOFU questions, MUSE VerbMem and KnowMem prompts, copyright book prefixes).
Batched, left-padded, length-sorted generation must give the same text for every row."""

from __future__ import annotations

import pytest
import torch

from unlearnbench.data.collate import Encoder
from unlearnbench.metrics.cost import CostTracker


def _one_at_a_time(model, tok, ids: list[int], n: int, stops=()) -> str:
    """Greedy continuation of one prompt alone (no padding), cut as the old evaluators cut it."""
    from transformers import StoppingCriteriaList

    from unlearnbench.eval.generate import StopOnStrings

    x = torch.tensor([ids])
    crit = StoppingCriteriaList([StopOnStrings(tok, len(ids), stops)]) if stops else None
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    out = model.generate(input_ids=x, attention_mask=torch.ones_like(x), do_sample=False, max_new_tokens=n,
                         pad_token_id=pad, eos_token_id=tok.eos_token_id, stopping_criteria=crit,
                         temperature=None, top_p=None, top_k=None)
    return tok.decode(out[0, len(ids):], skip_special_tokens=True)


@pytest.fixture(scope="module")
def target(tiny_family):
    from unlearnbench.models.specs import load_model, load_tokenizer

    spec = tiny_family["spec"]
    model = load_model(tiny_family["target"], spec).eval()
    return model, load_tokenizer(tiny_family["target"], spec), spec


def test_tofu_generations_equal_one_prompt_at_a_time(target):
    from unlearnbench.benchmarks.tofu import TofuSynthBenchmark
    from unlearnbench.eval.generate import generate_greedy

    model, tok, spec = target
    bench = TofuSynthBenchmark()
    rows = list(bench.config("forget10_perturbed"))[:12] + list(bench.config("real_authors_perturbed"))[:4]
    enc = Encoder(tok, bench.template_for(spec))
    questions = [r["question"] for r in rows]
    done = []
    got = generate_greedy(model, enc, questions, batch_size=5, max_new_tokens=40, progress=done.append)
    want = [_one_at_a_time(model, tok, enc.prompt_ids(q), 40).strip() for q in questions]
    assert got == want
    assert sum(done) == len(questions) and len(done) == 4  # one progress call per batch
    # The trained target answers and stops at its end token well before the limit.
    assert sum(len(tok(g)["input_ids"]) < 38 for g in got) >= len(got) // 2


def test_muse_generations_equal_one_prompt_at_a_time(target, tmp_path):
    from unlearnbench.data import muse_synth
    from unlearnbench.data.muse import load_split
    from unlearnbench.eval import muse as ev
    from unlearnbench.metrics import muse as metrics

    model, tok, _ = target
    cfg = muse_synth.MuseSynthConfig(fold_size=4, n_retain1=3, n_retain2=4, n_holdout=5, n_background=3,
                                     n_knowmem=6, n_icl=3, n_privleak=4)
    path = muse_synth.write(cfg, tmp_path / "muse")
    verb = [dict(r, _index=i) for i, r in enumerate(load_split(path, "verbmem", "forget"))][:6]
    with CostTracker() as cost:
        recs = ev._verbmem_records(model, tok, verb, 24, 4, False, cost)
        icl = list(load_split(path, "knowmem", "forget_qa_icl"))
        qa = [dict(r, _index=i) for i, r in enumerate(load_split(path, "knowmem", "forget_qa"))][:6]
        know = ev._knowmem_records(model, tok, "knowmem_f", qa, icl, 16, 4, cost)
    assert [r["generation"] for r in recs] == [
        _one_at_a_time(model, tok, tok(r["prompt"])["input_ids"], 24) for r in verb]
    pairs = [(q["question"], q["answer"]) for q in icl]
    assert [r["raw_generation"] for r in know] == [
        _one_at_a_time(model, tok, tok(metrics.knowmem_prompt(pairs, r["question"]))["input_ids"], 16,
                       metrics.STOP_STRINGS) for r in qa]


def test_copyright_generations_equal_one_prompt_at_a_time(target, tmp_path):
    from unlearnbench.data import copyright as cp
    from unlearnbench.data import copyright_synth as cs
    from unlearnbench.eval import copyright as ev

    model, tok, _ = target
    cfg = cs.CopyrightSynthConfig(n_passages=4, n_countries=4, n_animals=2, general_docs=12, heldout_docs=4)
    d = cs.write(cfg, tmp_path / "cs")
    book = (d / "book.txt").read_text(encoding="utf-8")
    items = cp.test_items(book, passage_words=cfg.passage_words, prefix_words=cfg.prefix_words, seed=0,
                          templates_per_passage=2)[:8]
    prompts = [it["question"] for it in items]
    gens, n_tokens = ev._generate(model, tok, prompts, 20, 3)
    singles = [_one_at_a_time(model, tok, tok(p)["input_ids"], 20) for p in prompts]
    assert gens == [s.strip() for s in singles]
    assert n_tokens >= sum(len(tok(p)["input_ids"]) for p in prompts) + len(prompts)
