"""Ghost norms (metrics.ghost_norms): per-text gradient norms from one batched backward must be
the one-text-at-a-time ``autograd`` gradients' norms, per parameter tensor, on every packed
architecture it covers; anything it does not cover must fall back to the per-row loop."""

import pytest
import torch
from torch import nn
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from unlearnbench.metrics import ghost_norms, mia
from unlearnbench.models.real_configs import REAL_CONFIGS, shrunk

from _batches import padded

# (question, answer) token ids; one answer repeats a question token (the embedding's
# same-token term) and one text holds token 0, the tiny models' padding_idx (no gradient).
TEXTS = [([1, 5, 6], [7, 8, 2]), ([1, 9], [10, 11, 12, 2]), ([1, 3, 4, 5, 6], [2]),
         ([1, 13, 14, 15, 16, 17, 18], [19, 20, 21, 22, 23, 2]), ([1, 24], [25, 24, 2]),
         ([1, 0, 30, 3], [0, 31, 2])]


def one_at_a_time(model, texts, drop_eos=False):
    """Per text: unpadded forward, loss.backward(), each parameter's squared .grad norm."""
    flags = [q.requires_grad for q in model.parameters()]
    for q in model.parameters():
        q.requires_grad_(True)
    out = []
    for q, a in texts:
        model.zero_grad()
        b = padded([(q, a)], drop_eos=drop_eos)
        model(input_ids=b["input_ids"], labels=b["labels"]).loss.backward()
        out.append(torch.stack([p.grad.double().pow(2).sum() for p in model.parameters()]))
    model.zero_grad(set_to_none=True)
    for p, f in zip(model.parameters(), flags):
        p.requires_grad_(f)
    return torch.stack(out)


def small(name, vocab=40):
    cfg = shrunk(name, hidden=32, layers=2, heads=4)
    cfg.vocab_size = vocab
    if getattr(cfg, "pad_token_id", None) is not None and cfg.pad_token_id >= vocab:
        cfg.pad_token_id = 0
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg).eval()
    with torch.no_grad():  # move every weight off its init (Gemma's norms start at 0)
        for q in model.parameters():
            q.add_(0.05 * torch.randn_like(q))
    return model


@pytest.mark.parametrize("name", [n for n in REAL_CONFIGS if REAL_CONFIGS[n].config["model_type"] != "opt"])
def test_ghost_squared_norms_equal_per_text_backward(name):
    """Every packed architecture but OPT (Llama 2/3, Mistral, Phi, Qwen2, Qwen3, Gemma 3;
    tied and untied heads, biases, LayerNorm, RMSNorm, Gemma's (1 + w) norms and scaled
    embedding), shrunk: each parameter tensor's per-text squared gradient norm from one
    batched pass equals loss.backward() on the text alone (float32, within 1e-5)."""
    model = small(name)
    planned = ghost_norms.plan(model)
    assert not isinstance(planned, str), planned
    params = list(model.parameters())
    for q in params:
        q.requires_grad_(True)
    rows = mia._cut_rows(padded(TEXTS, left=True))
    T = max(len(r[0]) for r in rows)
    ids = torch.zeros(len(rows), T, dtype=torch.long)
    labels = torch.full((len(rows), T), -100)
    for j, (i, lab) in enumerate(rows):
        ids[j, :len(i)], labels[j, :len(i)] = i, lab
    got = ghost_norms.squared_norms(model, planned, params, ids, labels).double()
    want = one_at_a_time(model, TEXTS)
    assert got.shape == want.shape
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-12), (got - want).abs().max()
    assert bool((want > 0).all())  # no parameter is trivially zero, so every rule is exercised


@pytest.mark.parametrize("tied", [False, True])
def test_gradnorm_scores_ghost_path_padding_and_chunks(tied):
    """gradnorm_scores on a tiny Llama (tied as the harness's tiny family, untied as Llama 2)
    takes the ghost path and gives the per-text loss.backward() scores within 1e-5 for right-
    and left-padded batches and for chunks down to one row (max_tokens 1)."""
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=40, hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                                         pad_token_id=0, tie_word_embeddings=tied)).eval()
    assert not isinstance(ghost_norms.plan(model), str)
    assert (model.lm_head.weight is model.model.embed_tokens.weight) == tied
    want = one_at_a_time(model, TEXTS).sqrt().mean(1).tolist()
    for left in (False, True):
        for max_tokens in (1024, 1):
            got = mia.gradnorm_scores(model, [padded(TEXTS[:2], left), padded(TEXTS[2:], left)],
                                      max_tokens=max_tokens)
            assert got == pytest.approx(want, rel=1e-5, abs=0)
    assert all(q.grad is None for q in model.parameters())
    # open-unlearning's convention (EOS unscored; texts with a one-token answer left out)
    texts = [t for t in TEXTS if len(t[1]) > 1]
    want = one_at_a_time(model, texts, drop_eos=True).sqrt().mean(1).tolist()
    got = mia.gradnorm_scores(model, [padded(texts, left=True, drop_eos=True)])
    assert got == pytest.approx(want, rel=1e-5, abs=0)


def test_uncovered_modules_fall_back_to_the_per_row_loop():
    """OPT's learned positional embedding (an Embedding subclass fed positions) has no rule:
    plan names it, and gradnorm_scores still returns the per-text scores (the loop). A norm
    whose formula is neither RMSNorm form is found at run time and falls back too."""
    model = small("opt-1.3b")
    reason = ghost_norms.plan(model)
    assert isinstance(reason, str) and "OPTLearnedPositionalEmbedding" in reason
    want = one_at_a_time(model, TEXTS).sqrt().mean(1).tolist()
    assert mia.gradnorm_scores(model, [padded(TEXTS, left=True)]) == pytest.approx(want, rel=1e-5)

    class OddRMSNorm(nn.Module):  # named like an RMSNorm, but computes w * x (no normalisation)
        def __init__(self, d):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(d) + 0.1 * torch.randn(d))
            self.variance_epsilon = 1e-6

        def forward(self, x):
            return self.weight * x

    llama = small("llama2-7b")
    llama.model.norm = OddRMSNorm(llama.config.hidden_size)
    planned = ghost_norms.plan(llama)
    assert not isinstance(planned, str)  # statically it looks covered ...
    params = list(llama.parameters())
    for q in params:
        q.requires_grad_(True)
    b = padded(TEXTS[:2])
    with pytest.raises(ghost_norms.Unsupported, match="OddRMSNorm computes neither"):
        ghost_norms.squared_norms(llama, planned, params, b["input_ids"], b["labels"])
    want = one_at_a_time(llama, TEXTS).sqrt().mean(1).tolist()
    assert mia.gradnorm_scores(llama, [padded(TEXTS)]) == pytest.approx(want, rel=1e-5)  # ... the loop ran


@pytest.mark.parametrize("path", ["ghost", "per-row"])
def test_gradnorm_pass_hands_each_text_its_own_forward_logits(path, monkeypatch):
    """``on_logits`` gives text i (in the batches' order) the logits of its real tokens, as
    a plain forward of that text alone computes them (within 1e-5), on the ghost path and on
    the per-row loop (OPT); eval.tofu scores the answers from them."""
    model = small("llama2-7b" if path == "ghost" else "opt-1.3b")
    assert isinstance(ghost_norms.plan(model), str) == (path == "per-row")
    if path == "ghost":  # the batched pass must serve every row itself, never the loop
        monkeypatch.setattr(mia, "_row_score", lambda *a: pytest.fail("fell back to the per-row loop"))
    seen = {}
    # Lengths 13, 7, 6, 6, 6, 5 in 16-token chunks: {13}, {7, 6}, {6, 6}, {5}, so rows are cut
    # from padded chunks of two; left- and right-padded input batches.
    mia.gradnorm_scores(model, [padded(TEXTS[:2], left=True), padded(TEXTS[2:])], max_tokens=16,
                        on_logits=lambda i, lg: seen.__setitem__(i, lg.clone()))
    assert sorted(seen) == list(range(len(TEXTS)))
    for i, (q, a) in enumerate(TEXTS):
        with torch.no_grad():
            want = model(input_ids=torch.tensor([q + a])).logits[0, :-1]
        assert seen[i].shape == want.shape and not seen[i].requires_grad
        assert torch.allclose(seen[i], want, rtol=1e-5, atol=1e-5), (i, (seen[i] - want).abs().max())


def test_plan_refuses_a_weight_shared_twice_and_a_bare_parameter():
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)
            self.b.weight = self.a.weight
            self.scale = nn.Parameter(torch.ones(4))

    reason = ghost_norms.plan(Shared())
    assert isinstance(reason, str) and "Shared" in reason and "no exact ghost-norm rule" in reason
    m = Shared()
    del m.scale
    assert "shared by 2 modules (Linear, Linear)" in ghost_norms.plan(m)
