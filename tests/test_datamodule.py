"""The shared data module: extra answers drawn afresh per batch (methods.md), raw-text chunks."""

from __future__ import annotations

import pytest

from unlearnbench.data.collate import IGNORE, Encoder
from unlearnbench.data.datamodule import QACollator, chunk_texts
from unlearnbench.data.refusals import REFUSALS


@pytest.fixture(scope="module")
def enc():
    from unlearnbench.benchmarks.tofu import TofuSynthBenchmark
    from unlearnbench.models.specs import ModelSpec
    from unlearnbench.models.tiny import TinyFamily, _load_tokenizer

    fam = TinyFamily(ModelSpec.from_name("tiny-test"), TofuSynthBenchmark().recipe())
    return Encoder(_load_tokenizer(fam.tokenizer_dir()), "tiny-qa")


ROWS = [{"index": i, "question": f"Who is person {i}?", "answer": f"Person {i} is a baker."} for i in range(6)]
NORMAL = [f"Normal answer number {i}." for i in range(30)]


def _answers(enc, batch, key) -> list[str]:
    sub = batch[key]
    return [enc.tokenizer.decode([t for t in row.tolist() if t != IGNORE], skip_special_tokens=True).strip()
            for row in sub["labels"]]


def test_refusals_and_random_answers_are_drawn_afresh_for_every_batch(enc):
    coll = QACollator(enc, ("idk", "random_normal", "template"), normal_answers=NORMAL, k_random=2, seed=7)
    first, second = coll(ROWS), coll(ROWS)  # the same rows in two batches (two epochs)
    idk1, idk2 = _answers(enc, first, "idk"), _answers(enc, second, "idk")
    assert all(a in REFUSALS for a in idk1 + idk2)
    assert idk1 != idk2  # not fixed per row for the whole run
    rnd1, rnd2 = _answers(enc, first, "random"), _answers(enc, second, "random")
    assert len(rnd1) == 2 * len(ROWS) and set(rnd1) <= set(NORMAL) and rnd1 != rnd2
    # Seeded: a new collator with the same seed draws the same sequence, another seed does not.
    again = QACollator(enc, ("idk", "random_normal", "template"), normal_answers=NORMAL, k_random=2, seed=7)
    assert _answers(enc, again(ROWS), "idk") == idk1
    other = QACollator(enc, ("idk", "random_normal", "template"), normal_answers=NORMAL, k_random=2, seed=8)
    assert _answers(enc, other(ROWS), "idk") != idk1


def test_training_loader_draws_per_rank_and_reproducibly(enc):
    from unlearnbench.benchmarks.tofu import TofuSynthBenchmark

    def epoch_refusals(rank: int) -> list[str]:
        dm = TofuSynthBenchmark().datamodule("forget01", enc, batch_size=8, seed=3, needs=("idk",))
        dm.setup("fit")
        dm.trainer = type("T", (), {"global_rank": rank})()
        loader = dm.train_dataloader()
        return [a for _ in range(2) for b in loader for a in _answers(enc, b, "idk")]

    r0 = epoch_refusals(0)
    assert r0 == epoch_refusals(0)
    assert r0 != epoch_refusals(1)
    n = len(r0) // 2
    assert r0[:n] != r0[n:]  # the second epoch draws anew


def test_text_chunks_cover_each_document_and_score_every_token(enc):
    texts = ["alpha beta gamma delta " * 30, "short text."]
    chunks = chunk_texts(enc, texts, max_len=16)
    ids0 = enc.tokenizer(texts[0])["input_ids"] + [enc.eos_id]
    ids1 = enc.tokenizer(texts[1])["input_ids"] + [enc.eos_id]
    assert all(2 <= len(c["input_ids"]) <= 16 for c in chunks)
    n0 = -(-len(ids0) // 16)
    assert [t for c in chunks[:n0] for t in c["input_ids"]] == ids0  # contiguous, nothing lost
    assert chunks[n0]["input_ids"] == ids1  # a chunk never spans two documents
    for c in (chunks[0], chunks[n0]):  # a document's first chunk: BOS not scored, the rest is
        assert c["labels"][0] == IGNORE and c["labels"][1:] == c["input_ids"][1:]
    assert chunks[1]["labels"] == chunks[1]["input_ids"]  # later chunks: every token scored


def test_extras_need_question_answer_data(enc):
    from unlearnbench.benchmarks.base import Benchmark

    class Text(Benchmark):
        name, shape, splits = "t", "text", ("s",)

        def default_path(self):
            return "x"

    with pytest.raises(ValueError, match="extra answers"):
        Text().datamodule("s", enc, needs=("idk",))
    with pytest.raises(ValueError, match="unknown data need"):
        QACollator(enc, ("nope",))
