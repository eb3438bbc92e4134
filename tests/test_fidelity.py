"""Method-fidelity fixes (issue 10): schedule, RMU defaults, WAGLE's Wanda baseline and
inner_params, SimNPO/ga_kl conventions, the Reference and GradNorm MIA attacks.

Each test pins a behaviour the review found wrong; values are worked out by hand in the
comments. The FSDP2 WAGLE test lives in tests/test_wagle.py with the other WAGLE checks.
"""

from __future__ import annotations

import pytest
import torch

from unlearnbench.models.finetune import linear_warmup_decay


def _lrs(warmup: int, total: int, steps: int) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = linear_warmup_decay(opt, warmup, total)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_warmup_starts_at_zero_as_hugging_face():
    # warmup 4, total 10: step/4 for steps 0..3, then (10 - step)/6.
    want = [0.0, 0.25, 0.5, 0.75, 1.0, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6, 0.0, 0.0]
    assert _lrs(4, 10, 12) == pytest.approx(want, abs=1e-12)
    # No warm-up: the peak at step 0, then the decay.
    assert _lrs(0, 4, 5) == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0], abs=1e-12)


def test_warmup_matches_transformers_scheduler():
    from transformers import get_linear_schedule_with_warmup

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    hf = get_linear_schedule_with_warmup(opt, 3, 7)
    assert _lrs(3, 7, 9) == pytest.approx([hf.lr_lambdas[0](s) for s in range(9)], abs=1e-12)


def test_simnpo_delta_is_the_public_codes_delta_times_beta():
    """The SimNPO docstring's claim: open-unlearning / the authors' code compute
    −(2/β)·logσ(β·(S/|y| − δ_code)); ours with δ = β·δ_code is the same number."""
    from unlearnbench.methods import losses

    s, n = torch.tensor([6.0, 2.5]), torch.tensor([4, 5])
    beta, d_code = 4.5, 0.3
    theirs = (-torch.nn.functional.logsigmoid(beta * (s / n - d_code)) * 2 / beta).mean()
    assert float(losses.simnpo_loss(s, n, beta=beta, delta=beta * d_code)) == pytest.approx(float(theirs), rel=1e-6)
    # and not with the same number: the conventions really differ when δ ≠ 0
    assert float(losses.simnpo_loss(s, n, beta=beta, delta=d_code)) != pytest.approx(float(theirs), rel=1e-3)
