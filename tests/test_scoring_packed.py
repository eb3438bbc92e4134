"""score_items (an item's answers packed behind one copy of its prompt) against score_pairs
(every answer scored alone), on randomly initialised small models of each architecture."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unlearnbench.benchmarks.tofu import TofuSynthBenchmark
from unlearnbench.data.collate import Encoder
from unlearnbench.eval.scoring import PACKABLE, _pack, packable, score_items, score_pairs

ITEMS = [
    ("Where was the author born?", ["In a small town.", "She was born far away in a city by the sea.",
                                    "Nowhere.", "In a town.", "Paris", "By the river, long ago, in a hut."]),
    ("Q?", ["Yes."]),
    ("What did the writer of many long novels about the sea publish first?", ["A poem.", "", "Two short stories."]),
    ("Who?", ["Someone", "Someone else entirely, with a much longer answer than the others."]),
]


@pytest.fixture(scope="module")
def tok():
    from unlearnbench.models.specs import ModelSpec
    from unlearnbench.models.tiny import TinyFamily, _load_tokenizer

    recipe = TofuSynthBenchmark().recipe()
    return _load_tokenizer(TinyFamily(ModelSpec.from_name("tiny-test"), recipe).tokenizer_dir())


def _model(arch: str, vocab: int, attn: str = "sdpa"):
    from transformers import AutoConfig, AutoModelForCausalLM

    sizes = {"llama": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=2),
             "mistral": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                             num_key_value_heads=2),
             "qwen2": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=2),
             "phi": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4),
             "opt": dict(hidden_size=32, ffn_dim=64, num_hidden_layers=2, num_attention_heads=4,
                         word_embed_proj_dim=32),
             "gpt2": dict(n_embd=32, n_layer=2, n_head=4)}[arch]
    torch.manual_seed(0)
    config = AutoConfig.for_model(arch, vocab_size=vocab, **sizes)
    return AutoModelForCausalLM.from_config(config, attn_implementation=attn).eval()


def _assert_same(packed, alone, atol):
    flat = [s for item in packed for s in item]
    assert [len(item) for item in packed] == [len(answers) for _, answers in ITEMS]
    assert len(flat) == len(alone)
    for a, b in zip(flat, alone):
        assert a.n_tokens == b.n_tokens and a.labels == b.labels
        assert abs(a.avg_nll - b.avg_nll) <= atol
        assert np.allclose(a.token_logprobs, b.token_logprobs, atol=atol)
        assert np.allclose(a.mu, b.mu, atol=atol)
        # sigma^2 = E[logp^2] - mu^2: two numbers near 39 on a near-uniform random model, whose
        # float32 difference keeps the rounding of its operands (an ulp of 39 is 4e-6), not a
        # relative precision: sigma^2 agrees within 64 float32 roundings of E[logp^2].
        var_a, var_b, mu_sq = (np.square(np.asarray(x, dtype=np.float64)) for x in (a.sigma, b.sigma, b.mu))
        assert np.all(np.abs(var_a - var_b) <= 64 * np.finfo(np.float32).eps * (var_b + mu_sq) + atol)
        assert a.preds == b.preds


@pytest.mark.parametrize("arch", PACKABLE)
@pytest.mark.parametrize("batch_size", [1, 4, 32])
def test_packed_answers_score_as_they_do_alone(tok, arch, batch_size):
    model = _model(arch, len(tok))
    assert packable(model)
    enc = Encoder(tok, "tiny-qa")
    alone = score_pairs(model, enc, [(q, a) for q, answers in ITEMS for a in answers], batch_size=1,
                        with_stats=True)
    assert sum(s.n_tokens for s in alone) > 60  # the answers carry real tokens
    _assert_same(score_items(model, enc, ITEMS, batch_size=batch_size, with_stats=True), alone, 1e-5)


@pytest.mark.parametrize("arch, attn", [("gpt2", "sdpa"), ("llama", "eager")])
def test_unlisted_architectures_and_attention_score_pair_by_pair(tok, arch, attn):
    model = _model(arch, len(tok), attn)
    assert not packable(model)
    enc = Encoder(tok, "tiny-qa")
    alone = score_pairs(model, enc, [(q, a) for q, answers in ITEMS for a in answers], batch_size=3)
    _assert_same(score_items(model, enc, ITEMS, batch_size=3), alone, 0.0)


def test_pack_layout_by_hand():
    item = _pack([5, 6, 7], [[8, 9, 4], [10], []])
    # An answer's last token (4, 10) is no input: nothing scored is predicted from it.
    assert item["ids"] == [5, 6, 7, 8, 9]
    assert item["pos"] == [0, 1, 2, 3, 4]  # every answer starts where it would alone
    assert item["seg"] == [0, 0, 0, 1, 1]
    # 8 and 10 are predicted at the prompt's last position (2), 9 at 8's (3), 4 at 9's (4).
    assert item["src"] == [2, 3, 4, 2] and item["tgt"] == [8, 9, 4, 10]
    assert item["lengths"] == [3, 1, 0] and item["longest"] == 6
    # No prompt: nothing precedes an answer's first token, which is not scored.
    bare = _pack([], [[8, 9, 4], [10]])
    assert bare["ids"] == [8, 9] and bare["seg"] == [1, 1]
    assert bare["src"] == [0, 1] and bare["tgt"] == [9, 4] and bare["lengths"] == [2, 0]


@pytest.mark.parametrize("arch, attn", [("llama", "sdpa"), ("gpt2", "sdpa")])
def test_statistics_of_the_first_answers_only_are_those_of_all(tok, arch, attn):
    """``stats_answers=1`` (TOFU's forget task: the MIAs score the answer alone) gives each
    item's first answer the very statistics it gets when every answer has them, and the other
    answers none; the scores themselves do not change. Packed (llama) and pair by pair (gpt2)."""
    model = _model(arch, len(tok), attn)
    enc = Encoder(tok, "tiny-qa")
    every = score_items(model, enc, ITEMS, batch_size=4, with_stats=True)
    first = score_items(model, enc, ITEMS, batch_size=4, with_stats=True, stats_answers=1)
    for all_answers, first_only in zip(every, first):
        assert first_only[0].mu == all_answers[0].mu and first_only[0].sigma == all_answers[0].sigma
        assert len(first_only[0].mu) == first_only[0].n_tokens > 0
        assert all(s.mu == [] and s.sigma == [] for s in first_only[1:])
        assert [s.token_logprobs for s in first_only] == [s.token_logprobs for s in all_answers]


def test_a_batch_with_nothing_to_score_gives_empty_records(tok):
    """An item without answers beside one with answers, and a batch of such items alone: the
    answered item scores as it does alone, the empty ones give no records (no index error)."""
    model = _model("llama", len(tok))
    enc = Encoder(tok, "tiny-qa")
    assert score_items(model, enc, [("Q?", []), ("R?", [])]) == [[], []]
    mixed = score_items(model, enc, [("Q?", []), ITEMS[1]], batch_size=4)
    assert mixed[0] == [] and len(mixed[1]) == 1
    alone = score_pairs(model, enc, [(ITEMS[1][0], ITEMS[1][1][0])])[0]
    assert mixed[1][0].labels == alone.labels and np.allclose(mixed[1][0].token_logprobs, alone.token_logprobs,
                                                               atol=1e-5)
