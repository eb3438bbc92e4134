"""Hand-computed checks for unlearnbench.methods.losses (definitions: docs/methods.md)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from unlearnbench.methods import losses as L

LN2, LN3 = math.log(2.0), math.log(3.0)


def _lg(*probs):
    """Logits whose softmax is exactly `probs` (log of the probabilities)."""
    return torch.log(torch.tensor(probs, dtype=torch.float64)).float().tolist()


def _toy():
    """2 sequences, T = 3, vocab 3.

    seq 0: labels [-100, 0, 1] -> positions 0,1 scored (shifted targets 0, 1)
        logits[0,0] = log[2,1,1] -> p = [.5,.25,.25], target 0 -> p = .5, nll = ln 2
        logits[0,1] = log[1,2,1] -> p = [.25,.5,.25], target 1 -> p = .5, nll = ln 2
        S0 = 2 ln 2, n0 = 2
    seq 1: labels [-100, 2, -100] -> position 0 scored (target 2), position 1 not
        logits[1,0] = 0 -> p = 1/3, nll = ln 3;  S1 = ln 3, n1 = 1
    Last position of each row predicts nothing (set to junk).
    """
    logits = torch.tensor(
        [
            [_lg(0.5, 0.25, 0.25), _lg(0.25, 0.5, 0.25), [9.0, -3.0, 1.0]],
            [[0.0, 0.0, 0.0], [5.0, -5.0, 2.0], [-7.0, 4.0, 0.0]],
        ]
    )
    labels = torch.tensor([[-100, 0, 1], [-100, 2, -100]])
    return logits, labels


# --------------------------------------------------------------------------- NLL


def test_sequence_nll_hand_values():
    logits, labels = _toy()
    s, n = L.sequence_nll(logits, labels)
    torch.testing.assert_close(s, torch.tensor([2 * LN2, LN3]))
    assert n.tolist() == [2, 1]


def test_sequence_nll_ignores_unscored_positions():
    logits, labels = _toy()
    s, _ = L.sequence_nll(logits, labels)
    changed = logits.clone()
    changed[:, -1] += torch.tensor([3.0, -2.0, 1.0])  # last position predicts nothing
    changed[1, 1] = torch.tensor([-9.0, 9.0, 0.0])  # predicts labels[1,2] = -100
    s2, _ = L.sequence_nll(changed, labels)
    torch.testing.assert_close(s, s2)


def test_mean_nll_hand_and_cross_entropy():
    logits, labels = _toy()
    # (2 ln2 + ln3) / 3 scored tokens (token mean, not mean of sequence means)
    m = L.mean_nll(logits, labels)
    torch.testing.assert_close(m, torch.tensor((2 * LN2 + LN3) / 3))
    ce = F.cross_entropy(
        logits[:, :-1].reshape(-1, 3), labels[:, 1:].reshape(-1), ignore_index=-100
    )
    torch.testing.assert_close(m, ce)
    torch.testing.assert_close(L.ga_loss(logits, labels), -ce)


def test_mean_nll_matches_hf_llama_loss():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        vocab_size=16,
        hidden_size=8,
        intermediate_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
    )
    model = transformers.LlamaForCausalLM(cfg).eval()
    input_ids = torch.randint(0, 16, (3, 7))
    labels = input_ids.clone()
    labels[:, :3] = -100  # prompt
    labels[1, 5:] = -100  # padding at the end of row 1
    with torch.no_grad():
        hf = model(input_ids, labels=labels).loss
        ours = L.mean_nll(model(input_ids).logits, labels)
    torch.testing.assert_close(ours, hf, rtol=1e-5, atol=1e-6)


def test_float32_computation_for_half_logits():
    logits, labels = _toy()
    s16, _ = L.sequence_nll(logits.bfloat16(), labels)
    assert s16.dtype == torch.float32
    torch.testing.assert_close(s16, L.sequence_nll(logits.bfloat16().float(), labels)[0])


# --------------------------------------------------------------------------- mean token prob


def test_mean_token_probability_divides_by_scored_tokens_not_padded_length():
    # T = 4. Row 0: scored targets at shifted positions 0,1 (p = .5 and .8), then padding.
    # Row 1: one scored target (p = 1/3 from zero logits), prompt before, padding after.
    logits = torch.zeros(2, 4, 2 + 1)
    logits[0, 0] = torch.tensor(_lg(0.5, 0.25, 0.25))  # target 0 -> .5
    logits[0, 1] = torch.tensor(_lg(0.1, 0.8, 0.1))  # target 1 -> .8
    logits[0, 2] = torch.tensor([50.0, 0.0, 0.0])  # predicts padding: must not count
    labels = torch.tensor([[-100, 0, 1, -100], [-100, -100, 2, -100]])
    p = L.mean_token_probability(logits, labels)
    # row 0: (0.5 + 0.8) / 2 = 0.65 (padded length would give 1.3 / 3); row 1: 1/3
    torch.testing.assert_close(p, torch.tensor([0.65, 1 / 3]))


# --------------------------------------------------------------------------- KL


def test_kl_zero_when_ref_equals_model():
    logits, labels = _toy()
    torch.testing.assert_close(L.kl_ref_to_model(logits, logits.clone(), labels), torch.tensor(0.0))


def test_kl_hand_value_two_positions_and_unscored_position_ignored():
    # vocab 2, T = 4; shifted positions 0 and 2 scored, position 1 not.
    # pos 0: ref [.5,.5], model [.8,.2]: .5 ln(.5/.8) + .5 ln(.5/.2) = .5 ln(1.5625) = ln 1.25
    # pos 2: ref [.8,.2], model [.5,.5]: .8 ln(1.6) + .2 ln(.4)
    ref = torch.tensor([[_lg(0.5, 0.5), _lg(0.3, 0.7), _lg(0.8, 0.2), [0.0, 0.0]]])
    model = torch.tensor([[_lg(0.8, 0.2), _lg(0.9, 0.1), _lg(0.5, 0.5), [4.0, 0.0]]])
    labels = torch.tensor([[-100, 1, -100, 0]])
    expected = (math.log(1.25) + 0.8 * math.log(1.6) + 0.2 * math.log(0.4)) / 2
    kl = L.kl_ref_to_model(ref, model, labels)
    torch.testing.assert_close(kl, torch.tensor(expected))
    changed = model.clone()
    changed[0, 1] = torch.tensor([-6.0, 6.0])  # unscored position
    changed[0, 3] = torch.tensor([-6.0, 6.0])  # last position, predicts nothing
    torch.testing.assert_close(L.kl_ref_to_model(ref, changed, labels), kl)
    # mask override: all three shifted positions
    kl1 = 0.3 * math.log(0.3 / 0.9) + 0.7 * math.log(0.7 / 0.1)
    mask = torch.tensor([[True, True, True]])
    torch.testing.assert_close(
        L.kl_ref_to_model(ref, model, mask=mask),
        torch.tensor((math.log(1.25) + kl1 + 0.8 * math.log(1.6) + 0.2 * math.log(0.4)) / 3),
    )
    with pytest.raises(ValueError):
        L.kl_ref_to_model(ref, model, mask=torch.ones(1, 4, dtype=torch.bool))


# --------------------------------------------------------------------------- NPO / SimNPO / DPO


@pytest.mark.parametrize("beta", [0.1, 1.0])
def test_npo_at_reference_is_two_over_beta_log2(beta):
    s = torch.tensor([3.0, 7.5, 0.2])
    out = L.npo_loss(s, s.clone(), beta=beta)
    torch.testing.assert_close(out, torch.tensor(2 / beta * LN2))


def test_npo_hand_value_and_default_beta():
    # S_θ = 3, S_ref = 1, β = 1: r = -3 + 1 = -2, -β r = 2 -> loss = -2 logσ(2) = 2 ln(1 + e^-2)
    out = L.npo_loss(torch.tensor([3.0]), torch.tensor([1.0]), beta=1.0)
    torch.testing.assert_close(out, torch.tensor(2 * math.log1p(math.exp(-2))))
    # default β = 0.1: S_θ = 1, S_ref = 11 -> r = 10, -β r = -1 -> 20 ln(1 + e)
    out = L.npo_loss(torch.tensor([1.0]), torch.tensor([11.0]))
    torch.testing.assert_close(out, torch.tensor(20 * math.log1p(math.e)))


def test_simnpo_hand_values():
    # default β = 4.5, δ = 0: S = 6, |y| = 3 -> arg = -4.5·(-2) = 9 -> (2/4.5) ln(1 + e^-9)
    # β = 1, δ = 1: S = 2, |y| = 4 -> arg = 0.5 - 1 = -0.5 -> 2 ln(1 + e^0.5)
    a = L.simnpo_loss(torch.tensor([6.0]), torch.tensor([3]))
    torch.testing.assert_close(a, torch.tensor(2 / 4.5 * math.log1p(math.exp(-9))))
    b = L.simnpo_loss(torch.tensor([2.0]), torch.tensor([4]), beta=1.0, delta=1.0)
    torch.testing.assert_close(b, torch.tensor(2 * math.log1p(math.exp(0.5))))
    both = L.simnpo_loss(torch.tensor([2.0, 2.0]), torch.tensor([4, 4]), beta=1.0, delta=1.0)
    torch.testing.assert_close(both, b)  # batch mean


def test_dpo_sign_conventions_and_hand_value():
    beta = 0.1
    base = 2 / beta * LN2
    z = torch.zeros(2)
    torch.testing.assert_close(L.dpo_loss(z, z, z, z, beta), torch.tensor(base))
    # refusal more likely than under ref -> below (2/β) ln 2
    assert L.dpo_loss(z + 1.0, z, z, z, beta) < base
    # forget answer more likely than under ref -> above
    assert L.dpo_loss(z, z, z + 1.0, z, beta) > base
    # (w - w_ref) = 5, (l - l_ref) = -5 -> β·10 = 1 -> 20 ln(1 + e^-1)
    out = L.dpo_loss(torch.tensor([-5.0]), torch.tensor([-10.0]), torch.tensor([-15.0]),
                     torch.tensor([-10.0]))
    torch.testing.assert_close(out, torch.tensor(20 * math.log1p(math.exp(-1))))


# --------------------------------------------------------------------------- FLAT


def test_flat_kl_two_token_example_from_logits():
    # vocab 2. Template answer: token probs .5 (target 0 under [.5,.5]) and .8 (target 0
    # under [.8,.2]) -> P_e = .65. Forget answer: .5 and .2 (target 1 under [.8,.2])
    # -> P_f = .35. KL loss = -P_e + exp(P_f - 1) = -.65 + e^-.65
    logits = torch.tensor([[_lg(0.5, 0.5), _lg(0.8, 0.2), [0.0, 0.0]]] * 2)
    lab_e = torch.tensor([[-100, 0, 0], [-100, 0, 0]])
    lab_f = torch.tensor([[-100, 1, 1], [-100, 1, 1]])
    pe = L.mean_token_probability(logits, lab_e)
    pf = L.mean_token_probability(logits, lab_f)
    torch.testing.assert_close(pe, torch.tensor([0.65, 0.65]))
    torch.testing.assert_close(pf, torch.tensor([0.35, 0.35]))
    torch.testing.assert_close(L.flat_loss(pe, pf), torch.tensor(-0.65 + math.exp(-0.65)))


@pytest.mark.parametrize(
    "div, expected",
    [
        ("kl", -0.65 + math.exp(0.35 - 1)),
        # g*(v) = ln2 - ln(1+e^-v);  2 - exp(g*(v)) = 2/(1+e^v)  so f*(g*(v)) = ln(1+e^v) - ln2
        ("js", -(LN2 - math.log1p(math.exp(-0.65))) + math.log1p(math.exp(0.35)) - LN2),
        ("pearson", -0.65 + 0.35**2 / 4 + 0.35),
        ("tv", -math.tanh(0.65) / 2 + math.tanh(0.35) / 2),
    ],
)
def test_flat_divergences_closed_forms(div, expected):
    pe, pf = torch.tensor([0.65, 0.65]), torch.tensor([0.35, 0.35])
    torch.testing.assert_close(L.flat_loss(pe, pf, divergence=div), torch.tensor(expected))


def test_flat_unknown_divergence_lists_names():
    assert L.FLAT_DIVERGENCES == ("kl", "js", "pearson", "tv")
    with pytest.raises(ValueError, match="kl, js, pearson, tv"):
        L.flat_loss(torch.tensor([0.5]), torch.tensor([0.5]), divergence="hellinger")


# --------------------------------------------------------------------------- RMU


def test_rmu_control_vector():
    g = torch.Generator().manual_seed(7)
    c = L.rmu_control_vector(5, 6.5, g)
    u = torch.rand(5, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(c, 6.5 * u / u.norm())
    torch.testing.assert_close(c.norm(), torch.tensor(6.5))
    assert (c >= 0).all()


def test_rmu_loss_masks_padding():
    control = torch.tensor([1.0, 1.0])
    # forget positions: [1,1] (sq err 0,0), [3,1] (4,0), padding [100,100]
    # masked: (0+0+4+0) / (2 positions · 2 dims) = 1
    h_f = torch.tensor([[[1.0, 1.0], [3.0, 1.0], [100.0, 100.0]]])
    fmask = torch.tensor([[1, 1, 0]])
    # retain: [1,2] vs [0,0] -> (1+4)/2 = 2.5 ; padding [5,5] excluded ; α = 2 -> 5
    h_r = torch.tensor([[[1.0, 2.0], [5.0, 5.0]]])
    h_ref = torch.zeros_like(h_r)
    rmask = torch.tensor([[True, False]])
    f, r = L.rmu_loss(h_f, control, h_r, h_ref, alpha=2.0, forget_mask=fmask, retain_mask=rmask)
    torch.testing.assert_close(f, torch.tensor(1.0))
    torch.testing.assert_close(r, torch.tensor(5.0))
    # without masks: plain MSE over everything
    f0, r0 = L.rmu_loss(h_f, control, h_r, h_ref, alpha=2.0)
    torch.testing.assert_close(f0, F.mse_loss(h_f, control.expand_as(h_f)))
    torch.testing.assert_close(r0, 2.0 * F.mse_loss(h_r, h_ref))


# --------------------------------------------------------------------------- LLMU


def _llmu_inputs():
    # mismatch: K = 2 rows for one harmful prompt; prompt tokens are -100.
    # row 0 (from _toy): 2 answer tokens, nll ln2 each -> row mean ln2
    # row 1: 1 answer token, nll ln3 -> row mean ln3
    mm_logits, mm_labels = _toy()
    f_logits, f_labels = _toy()
    n_logits = torch.randn(2, 4, 3, generator=torch.Generator().manual_seed(0))
    n_mask = torch.tensor([[True, True, True], [True, True, False]])
    return f_logits, f_labels, mm_logits, mm_labels, n_logits, n_mask


def test_llmu_hand_values():
    f_logits, f_labels, mm_logits, mm_labels, n_logits, n_mask = _llmu_inputs()
    ref = n_logits.clone()
    ref[0, 0] = torch.tensor([1.0, 0.0, -1.0])  # only a masked-in position differs
    out = L.llmu_loss(f_logits, f_labels, mm_logits, mm_labels, n_logits, ref, n_mask)
    torch.testing.assert_close(out["forget"], torch.tensor(-0.5 * (2 * LN2 + LN3) / 3))
    # ε2 · mean over rows of row token-mean NLL = (ln2 + ln3)/2
    torch.testing.assert_close(out["mismatch"], torch.tensor((LN2 + LN3) / 2))
    kl = L.kl_ref_to_model(ref, n_logits, mask=n_mask)
    assert kl > 0
    torch.testing.assert_close(out["kl"], kl)
    torch.testing.assert_close(out["loss"], out["forget"] + out["mismatch"] + out["kl"])
    out2 = L.llmu_loss(f_logits, f_labels, mm_logits, mm_labels, n_logits, ref, n_mask,
                       eps=(1.0, 2.0, 3.0))
    torch.testing.assert_close(out2["forget"], 2 * out["forget"])
    torch.testing.assert_close(out2["mismatch"], 2 * out["mismatch"])
    torch.testing.assert_close(out2["kl"], 3 * out["kl"])


def test_llmu_mismatch_ignores_prompt_tokens_and_kl_ignores_padding():
    f_logits, f_labels, mm_logits, mm_labels, n_logits, n_mask = _llmu_inputs()
    base = L.llmu_loss(f_logits, f_labels, mm_logits, mm_labels, n_logits, n_logits, n_mask)
    mm2 = mm_logits.clone()
    mm2[1, 1] = torch.tensor([8.0, -8.0, 0.0])  # predicts a -100 label
    mm2[:, 2] = torch.tensor([3.0, 3.0, -3.0])  # last position
    n_ref2 = n_logits.clone()
    n_ref2[1, 2] = torch.tensor([5.0, -5.0, 0.0])  # masked-out (padding) position of normal data
    other = L.llmu_loss(f_logits, f_labels, mm2, mm_labels, n_logits, n_ref2, n_mask)
    torch.testing.assert_close(other["mismatch"], base["mismatch"])
    torch.testing.assert_close(other["kl"], torch.tensor(0.0))
    # but a change at a scored answer position does move it
    mm3 = mm_logits.clone()
    mm3[0, 0] = torch.tensor([8.0, -8.0, 0.0])
    moved = L.llmu_loss(f_logits, f_labels, mm3, mm_labels, n_logits, n_logits, n_mask)
    assert not torch.isclose(moved["mismatch"], base["mismatch"])


# --------------------------------------------------------------------------- gradients


def _leaf(t):
    return t.clone().requires_grad_(True)


def _check_grad(x):
    assert x.grad is not None
    assert torch.isfinite(x.grad).all()
    assert x.grad.abs().sum() > 0


def test_gradients_flow_through_every_loss():
    logits, labels = _toy()
    gen = torch.Generator().manual_seed(1)

    for fn in (L.mean_nll, L.ga_loss):
        x = _leaf(logits)
        fn(x, labels).backward()
        _check_grad(x)

    x = _leaf(logits)
    L.sequence_nll(x, labels)[0].sum().backward()
    _check_grad(x)

    x = _leaf(logits)
    L.kl_ref_to_model(logits + torch.randn(logits.shape, generator=gen), x, labels).backward()
    _check_grad(x)

    x = _leaf(logits)
    s, _ = L.sequence_nll(x, labels)
    L.npo_loss(s, torch.tensor([1.0, 2.0])).backward()
    _check_grad(x)

    x = _leaf(logits)
    s, n = L.sequence_nll(x, labels)
    L.simnpo_loss(s, n).backward()
    _check_grad(x)

    w, lz = _leaf(torch.tensor([-3.0])), _leaf(torch.tensor([-4.0]))
    L.dpo_loss(w, torch.tensor([-3.5]), lz, torch.tensor([-4.0])).backward()
    _check_grad(w)
    _check_grad(lz)

    for div in L.FLAT_DIVERGENCES:
        x = _leaf(logits)
        pe = L.mean_token_probability(x, labels)
        pf = L.mean_token_probability(x, torch.tensor([[-100, 1, 2], [-100, 0, -100]]))
        L.flat_loss(pe, pf, divergence=div).backward()
        _check_grad(x)

    hf = _leaf(torch.randn(2, 3, 4, generator=gen))
    hr = _leaf(torch.randn(2, 3, 4, generator=gen))
    f, r = L.rmu_loss(hf, L.rmu_control_vector(4, 5.0, gen), hr, torch.zeros(2, 3, 4), 10.0,
                      torch.tensor([[1, 1, 0], [1, 0, 0]]), torch.tensor([[1, 1, 1], [1, 1, 0]]))
    (f + r).backward()
    _check_grad(hf)
    _check_grad(hr)

    f_logits, f_labels, mm_logits, mm_labels, n_logits, n_mask = _llmu_inputs()
    xf, xm, xn = _leaf(f_logits), _leaf(mm_logits), _leaf(n_logits)
    out = L.llmu_loss(xf, f_labels, xm, mm_labels, xn, n_logits + 1.0 * torch.randn(
        n_logits.shape, generator=gen), n_mask)
    out["loss"].backward()
    for t in (xf, xm, xn):
        _check_grad(t)
