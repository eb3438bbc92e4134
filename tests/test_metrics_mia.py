import math
import zlib

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from unlearnbench.metrics import mia

from _batches import padded


def test_attack_names():
    assert mia.MIA_ATTACKS == ("loss", "zlib", "min_k", "min_k_plus_plus")


def test_loss_score_by_hand():
    # -mean(-1, -2, -3) = 2
    assert mia.loss_score([-1.0, -2.0, -3.0]) == pytest.approx(2.0)
    assert mia.loss_score(torch.tensor([-0.5, -1.5])) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="empty"):
        mia.loss_score([])


def test_zlib_score():
    text = "Alice wrote three novels about dragons. " * 3
    n_bytes = len(zlib.compress(text.encode("utf-8")))
    assert n_bytes < len(text)  # the repetition compresses, so this is not len(text)
    assert mia.zlib_score([-1.0, -2.0, -3.0], text) == pytest.approx(2.0 / n_bytes)
    # UTF-8 bytes, not characters, are compressed
    assert mia.zlib_score([-1.0], "é") == pytest.approx(1.0 / len(zlib.compress("é".encode())))


def test_min_k_by_hand():
    lp = [-1.0, -5.0, -2.0, -4.0, -3.0]
    # k = 0.4: floor(2.0) = 2 lowest -> -5, -4 -> 4.5
    assert mia.min_k_score(lp) == pytest.approx(4.5)
    # k = 0.1: floor(0.5) = 0 -> at least 1 -> -5 -> 5
    assert mia.min_k_score(lp, k=0.1) == pytest.approx(5.0)
    # k = 1: all five -> mean 3
    assert mia.min_k_score(lp, k=1.0) == pytest.approx(3.0)
    with pytest.raises(ValueError):
        mia.min_k_score(lp, k=0.0)


def _direct_stats(logits, labels):
    x = np.asarray(logits, dtype=np.float64)
    p = np.exp(x) / np.exp(x).sum(-1, keepdims=True)
    logp = np.log(p)
    mu = (p * logp).sum(-1)
    var = np.maximum((p * logp**2).sum(-1) - mu**2, 1e-6)
    return logp[np.arange(len(labels)), labels], mu, np.sqrt(var)


def test_min_k_plus_plus_stats_against_direct_computation():
    logits = torch.tensor(
        [[2.0, 0.5, -1.0, 0.0], [0.0, 0.0, 3.0, 1.0], [-2.0, 1.0, 1.0, 4.0]], dtype=torch.bfloat16
    )
    labels = torch.tensor([0, 3, 1])
    lp, mu, sigma = mia.min_k_plus_plus_stats(logits, labels)
    assert lp.dtype == mu.dtype == sigma.dtype == torch.float32
    assert lp.shape == mu.shape == sigma.shape == (3,)
    exp_lp, exp_mu, exp_sigma = _direct_stats(logits.float().numpy(), labels.numpy())
    np.testing.assert_allclose(lp.numpy(), exp_lp, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mu.numpy(), exp_mu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sigma.numpy(), exp_sigma, rtol=1e-4, atol=1e-6)


def test_min_k_plus_plus_stats_uniform_and_masked_by_hand():
    # uniform over 4: log p = -ln 4 everywhere, mu = -ln 4, variance 0 -> clamped 1e-6 -> 1e-3
    lp, mu, sigma = mia.min_k_plus_plus_stats(torch.zeros(1, 4), torch.tensor([2]))
    assert lp.item() == pytest.approx(-math.log(4))
    assert mu.item() == pytest.approx(-math.log(4))
    assert sigma.item() == pytest.approx(1e-3, rel=1e-3)
    # a -inf logit is p = 0 and must contribute 0: same as uniform over the other 2
    logits = torch.tensor([[0.0, 0.0, float("-inf")]])
    lp, mu, sigma = mia.min_k_plus_plus_stats(logits, torch.tensor([0]))
    assert mu.item() == pytest.approx(-math.log(2))
    assert not torch.isnan(sigma).any()


def test_min_k_plus_plus_score_by_hand():
    lp, mu, sigma = [-1.0, -2.0, -3.0], [-1.0, -1.0, -1.0], [1.0, 2.0, 0.5]
    # z = [0, -0.5, -4]; k = 0.4 -> floor(1.2) = 1 lowest -> -(-4) = 4
    assert mia.min_k_plus_plus_score(lp, mu, sigma) == pytest.approx(4.0)
    # k = 1 -> -mean(0, -0.5, -4) = 1.5
    assert mia.min_k_plus_plus_score(lp, mu, sigma, k=1.0) == pytest.approx(1.5)
    with pytest.raises(ValueError):
        mia.min_k_plus_plus_score(lp, mu[:2], sigma)


def test_reference_score_by_hand():
    assert mia.reference_score(3.0, 1.25) == pytest.approx(1.75)


def test_mia_auc_by_hand_and_against_sklearn():
    # holdout > forget pairs: 0.3>0.1, 0.3>0.2, 0.15>0.1 yes; 0.15>0.2 no -> 3/4
    assert mia.mia_auc([0.1, 0.2], [0.3, 0.15]) == pytest.approx(0.75)
    assert mia.mia_auc([0.9, 0.8], [0.1, 0.2]) == pytest.approx(0.0)  # orientation
    assert mia.mia_auc([0.2], [0.2]) == pytest.approx(0.5)  # a tie counts half
    rng = np.random.default_rng(1)
    f, h = rng.normal(size=20), rng.normal(0.3, size=25)
    expected = roc_auc_score([0] * 20 + [1] * 25, np.concatenate([f, h]))
    assert mia.mia_auc(f, h) == pytest.approx(expected)
    with pytest.raises(ValueError):
        mia.mia_auc([], [0.1])


def test_privleak_by_hand():
    # ((1 - 0.9) - (1 - 0.5)) / (1 - 0.5) * 100 = (0.1 - 0.5) / 0.5 * 100 = -80
    assert mia.privleak(0.9, 0.5) == pytest.approx(-80.0)
    # ((1 - 0.4) - (1 - 0.6)) / 0.4 * 100 = 0.2 / 0.4 * 100 = 50 (over-unlearning)
    assert mia.privleak(0.4, 0.6) == pytest.approx(50.0)
    assert mia.privleak(0.7, 0.7) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="retain model"):
        mia.privleak(0.9, None)


def test_reference_scores_by_hand():
    # L_model - L_reference per text: 2.0 - 2.5, 1.0 - 0.25
    assert mia.reference_scores([2.0, 1.0], [2.5, 0.25]) == pytest.approx([-0.5, 0.75])
    # the per-text LOSS scores feed it: -mean(-1, -3) - (-mean(-2)) = 2 - 2 = 0
    lm, lr = mia.loss_score([-1.0, -3.0]), mia.loss_score([-2.0])
    assert mia.reference_scores([lm], [lr]) == pytest.approx([0.0])
    with pytest.raises(ValueError, match="2 model losses but 1 reference"):
        mia.reference_scores([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="not finite"):
        mia.reference_scores([float("nan")], [1.0])
    assert mia.EXTRA_ATTACKS == ("reference", "gradnorm")


class _Toy(torch.nn.Module):
    """Logits W + b at every position over a 3-token vocabulary, whatever the input."""

    def __init__(self):
        super().__init__()
        self.W = torch.nn.Parameter(torch.tensor([math.log(2.0), 0.0, 0.0]))  # p = (1/2, 1/4, 1/4)
        self.b = torch.nn.Parameter(torch.zeros(1), requires_grad=False)

    def forward(self, input_ids, attention_mask=None):
        from types import SimpleNamespace

        return SimpleNamespace(logits=(self.W + self.b).expand(*input_ids.shape, 3))


def _toy_batch():
    # Row 0 scores labels (0, 1); row 1 scores label 0 only (its last position is padding).
    return {"input_ids": torch.tensor([[2, 0, 1], [2, 0, 0]]),
            "attention_mask": torch.tensor([[1, 1, 1], [1, 1, 0]]),
            "labels": torch.tensor([[-100, 0, 1], [-100, 0, -100]])}


def test_gradnorm_by_hand():
    """dL/dW = mean over scored tokens of (p − e_y); dL/db = Σ_v (p − e_y)_v = 0 (softmax is
    shift-invariant), so b counts as a tensor of norm 0 in the mean over the 2 tensors.
    Row 0: mean(p − e0, p − e1) = (0, −1/4, 1/4); row 1: p − e0 = (−1/2, 1/4, 1/4)."""
    model = _Toy()
    got = mia.gradnorm_scores(model, [_toy_batch()])
    assert got == pytest.approx([math.sqrt(1 / 8) / 2, math.sqrt(3 / 8) / 2], rel=1e-6)  # p = 2
    assert mia.gradnorm_scores(model, [_toy_batch()], p=1) == pytest.approx([0.5 / 2, 1.0 / 2], rel=1e-6)
    assert mia.gradnorm_scores(model, [_toy_batch()], p=float("inf")) == pytest.approx([0.25 / 2, 0.5 / 2], rel=1e-6)
    # the frozen b counted (else row 0 would be sqrt(1/8)) and its flag is restored; .grad untouched
    assert model.b.requires_grad is False and model.W.grad is None and model.training
    with pytest.raises(ValueError, match="p must be one of"):
        mia.gradnorm_scores(model, [_toy_batch()], p=3)
    bad = _toy_batch()
    bad["labels"][1, 1] = -100
    with pytest.raises(ValueError, match="row 1 .* no scored token"):
        mia.gradnorm_scores(model, [bad])


def test_gradnorm_batched_equals_one_text_at_a_time_backward():
    """On a tiny random Llama, right- and left-padded batches give what open-unlearning's loop
    gives within 1e-5: one unpadded text at a time, loss.backward(), mean over parameters of
    ‖grad‖₂ (five texts of different lengths, in batches of 2 and 3)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=40, hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=2, num_attention_heads=2,
                                         num_key_value_heads=2)).eval()
    texts = [([1, 5, 6], [7, 8, 2]), ([1, 9], [10, 11, 12, 2]), ([1, 3, 4, 5, 6], [2]),
             ([1, 13, 14, 15, 16, 17, 18], [19, 20, 21, 22, 23, 2]), ([1, 24], [25, 2])]

    want = []
    for row in texts:
        model.zero_grad()
        b = padded([row])
        model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], labels=b["labels"]).loss.backward()
        want.append(float(torch.stack([q.grad.norm() for q in model.parameters()]).mean()))
    model.zero_grad()
    for left in (False, True):
        got = mia.gradnorm_scores(model, [padded(texts[:2], left), padded(texts[2:], left)])
        assert got == pytest.approx(want, rel=1e-5, abs=0)
    assert len(set(round(x, 6) for x in got)) == 5  # five different texts, five scores
