"""FLAT on raw text (MUSE): each forget chunk is paired with a random general-text chunk, the
"good" text FLAT's public code pairs Harry Potter passages with (random C4 documents)."""

from __future__ import annotations

import gzip
import json

import pytest
import torch

from unlearnbench.benchmarks.muse import MuseSynthBenchmark
from unlearnbench.data.collate import IGNORE, Encoder
from unlearnbench.data.datamodule import UnlearnDataModule, chunk_texts
from unlearnbench.data.general import general_rows
from unlearnbench.data.muse_synth import MuseSynthConfig, general_texts, tiny_texts, tiny_tokenizer, write

SMALL = MuseSynthConfig(fold_size=4, n_retain1=3, n_retain2=4, n_holdout=5, n_background=3,
                        n_knowmem=6, n_icl=3, n_privleak=4)


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    from transformers import LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("flat-text")
    data = write(SMALL, root / "d")
    tok = tiny_tokenizer(tiny_texts(data, "tokenizer"), 300, root / "tok")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    return MuseSynthBenchmark(str(data)), Encoder(tok, "phi", max_len=512), LlamaForCausalLM(cfg).eval()


def _batches(bench, enc, seed, n=3):
    dm = UnlearnDataModule(bench, "forget", enc, batch_size=4, seed=seed, needs=("template",), chunk_len=48)
    dm.setup()
    return dm, [b for b, _ in zip(dm.train_dataloader(), range(n))]


def test_each_forget_chunk_gets_a_general_chunk_every_token_scored(setting):
    bench, enc, _ = setting
    dm, batches = _batches(bench, enc, seed=0)
    pieces = {tuple(c["input_ids"]): c["labels"] for c in chunk_texts(enc, general_texts(SMALL), 48)}
    forget = {tuple(c["input_ids"]) for c in chunk_texts(enc, [r["text"] for r in bench.forget_rows("forget")], 48)}
    for batch in batches:
        t = batch["template"]
        assert t["input_ids"].shape[0] == batch["input_ids"].shape[0]
        for ids, labels, mask in zip(t["input_ids"], t["labels"], t["attention_mask"]):
            n = int(mask.sum())
            key = tuple(ids[:n].tolist())
            assert key in pieces and key not in forget  # a general chunk, never forget text
            assert labels[:n].tolist() == pieces[key]  # every token scored but a leading BOS
            assert (labels[n:] == IGNORE).all()
    # The forget and retain batches themselves are unchanged by the extra.
    assert set(batches[0]) == {"input_ids", "attention_mask", "labels", "index", "template"}
    assert "template" not in next(iter(dm.retain_loader(0)))


def test_general_draws_follow_the_seed(setting):
    bench, enc, _ = setting
    ids = [[b["template"]["input_ids"].tolist() for b in _batches(bench, enc, seed)[1]] for seed in (0, 0, 1)]
    assert ids[0] == ids[1] and ids[0] != ids[2]


def test_flat_loss_on_text_matches_an_independent_computation(setting):
    from unlearnbench.methods.flat import FLAT

    bench, enc, model = setting
    batch = _batches(bench, enc, seed=0, n=1)[1][0]
    method = FLAT(model=model, divergence="kl")
    out = method.loss(batch)

    def mean_prob(sub):  # (1/|y|) Σ_t p(y_t | y_<t) over the scored tokens of each row
        with torch.no_grad():
            logits = model(input_ids=sub["input_ids"], attention_mask=sub["attention_mask"]).logits
        probs = torch.softmax(logits[:, :-1].double(), -1)
        labels = sub["labels"][:, 1:]
        rows = []
        for p, y in zip(probs, labels):
            keep = y != IGNORE
            rows.append(p[keep.nonzero().squeeze(1), y[keep]].mean())
        return torch.stack(rows)

    pf, pe = mean_prob(batch), mean_prob(batch["template"])
    expected = (-pe + torch.exp(pf - 1)).mean()  # KL: g*(v) = v, f*(u) = exp(u − 1)
    assert float(out["loss"].detach()) == pytest.approx(float(expected), rel=1e-5)


def test_flat_applies_where_a_text_benchmark_offers_general_text():
    from unlearnbench.report.schema import Kind
    from unlearnbench.runner.jobs import Job
    from unlearnbench.runner.run import not_applicable

    def job(bench, method="flat"):
        return Job(Kind.CELL, {"cell_id": "x", "kind": "cell", "benchmark": bench, "method": method,
                               "label": method, "params": {}})

    assert not_applicable(job("muse-synth")) is None
    assert not_applicable(job("muse-news")) is None
    reason = not_applicable(job("wmdp-synth"))
    assert reason and "template" in reason and "wmdp-synth" in reason
    assert "does not train" in not_applicable(job("muse-synth", "idk"))


def _c4_shard(root, docs):
    path = root / "en" / "c4-train.00000-of-01024.json.gz"
    path.parent.mkdir(parents=True)
    with gzip.open(path, "wt") as f:
        for d in docs:
            f.write(json.dumps(d) + "\n")
    return ("en/c4-train.00000-of-01024.json.gz")


def test_general_rows_read_c4s_format_when_the_benchmark_has_none(tmp_path):
    docs = [{"text": f"document {i}", "timestamp": "2019-04-25T12:57:54Z", "url": f"https://x/{i}"} for i in range(5)]
    files = _c4_shard(tmp_path / "c4", docs)
    bench_dir = tmp_path / "muse"
    bench_dir.mkdir()
    assert general_rows(str(bench_dir), n=3, c4=(str(tmp_path / "c4"), files)) == \
        [{"text": "document 0"}, {"text": "document 1"}, {"text": "document 2"}]
    (bench_dir / "extras").mkdir()
    (bench_dir / "extras" / "general.jsonl").write_text(json.dumps({"text": "own"}) + "\n")
    assert general_rows(str(bench_dir), c4=(str(tmp_path / "c4"), files)) == [{"text": "own"}]


def test_general_text_without_a_text_field_is_named(tmp_path):
    files = _c4_shard(tmp_path / "c4", [{"content": "x"}])
    with pytest.raises(ValueError, match="no 'text' field"):
        general_rows(str(tmp_path), c4=(str(tmp_path / "c4"), files))


def test_a_cell_once_not_applicable_runs_when_its_method_now_applies(tmp_path):
    """results/muse-synth recorded FLAT 'not applicable' before FLAT trained on raw text: a
    resumed grid re-runs it (and attacks on it) instead of keeping the old record."""
    from unlearnbench.runner.run import cell_state

    def state(method, kind="cell", **extra):
        cell = {"cell_id": method, "kind": kind, "benchmark": "muse-synth", "method": method, "label": method,
                "params": {}, **extra}
        d = tmp_path / f"{method}-{kind}"
        d.mkdir()
        (d / "result.json").write_text(json.dumps({"status": "not_applicable", "config": cell}))
        return cell_state(cell, d)

    assert state("flat") == "stale"
    assert state("flat", "attack", parent_kind="cell", attack="relearn") == "stale"
    assert state("idk") == "done"  # still not applicable: the record stands
