"""What GA and IdkPO do to a model that has learnt the forget set (the trained ``tiny-test``
target of the ``tiny_family`` fixture).

tests/test_methods_baselines.py checks the mechanics of every method from an untrained model;
these two checks need a model that knows the forget answers: gradient ascent must undo that
knowledge by a clear margin, IdkPO must move it towards refusing. From a near-uniform random
model both effects are a fraction of these margins (GA: +0.18 nats, IdkPO: x1.35).
"""

from __future__ import annotations

import math

import pytest

from unlearnbench.runner.train import unlearn

pytestmark = pytest.mark.slow

PARAMS = {"lr": 1e-3, "epochs": 1, "batch_size": 16}  # as tests/test_methods_baselines.py


def _forget_rows() -> list[dict]:
    from unlearnbench.data.tofu import load_config
    from unlearnbench.data.tofu_synth import STAND_IN

    return [dict(r) for r in load_config(str(STAND_IN.directory()), "forget10")]


def _scores(trained, name: str, tmp_path, pairs):
    """Each pair's ``Scored`` under the target before and after one run of ``name``."""
    from transformers import AutoModelForCausalLM

    from unlearnbench.data.collate import Encoder
    from unlearnbench.eval.scoring import score_pairs
    from unlearnbench.models.loading import load_tokenizer

    unlearn(name, trained["spec"], out_dir=tmp_path, params=dict(PARAMS))
    enc = Encoder(load_tokenizer(trained["target"]), trained["spec"].template)
    return [score_pairs(AutoModelForCausalLM.from_pretrained(str(path)).eval(), enc, pairs, batch_size=40)
            for path in (trained["target"], tmp_path / "model")]


def test_ga_raises_forget_nll(tiny_family, tmp_path):
    pairs = [(r["question"], r["answer"]) for r in _forget_rows()]
    before, after = (sum(s.avg_nll for s in scored) / len(scored)
                     for scored in _scores(tiny_family, "ga", tmp_path, pairs))
    assert after > before + 0.5, (before, after)


def test_idk_raises_refusal_probability(tiny_family, tmp_path):
    from unlearnbench.data.refusals import REFUSALS

    pairs = [(r["question"], REFUSALS[i % 7]) for i, r in enumerate(_forget_rows())]
    before, after = (sum(math.exp(-s.avg_nll) for s in scored) / len(scored)
                     for scored in _scores(tiny_family, "idk", tmp_path, pairs))
    assert after > before * 1.5, (before, after)
