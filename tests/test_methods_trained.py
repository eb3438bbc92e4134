"""What GA, IdkPO and LLMU's mismatch term do to a model that has learnt the forget set (the
trained ``tiny-test`` target of the ``tiny_family`` fixture).

tests/test_methods_baselines.py and tests/test_methods_seed.py check the mechanics of every
method from an untrained model; these checks need a model that knows the forget answers:
gradient ascent must undo that knowledge by a clear margin, IdkPO must move it towards
refusing, LLMU's mismatch term must teach the answers it drew and not others. From a
near-uniform random model the first two effects are a fraction of these margins (GA: +0.18
nats, IdkPO: x1.35), and the third cannot be told apart from training on anything (the drawn
pairs' NLL fell 0.209, that of never-drawn answers to the same prompts 0.199).
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


def _score(trained, path, pairs, batch_size: int = 32):
    """Each pair's ``Scored`` under the model saved at ``path`` (the family's template)."""
    from transformers import AutoModelForCausalLM

    from unlearnbench.data.collate import Encoder
    from unlearnbench.eval.scoring import score_pairs
    from unlearnbench.models.specs import load_tokenizer

    enc = Encoder(load_tokenizer(trained["target"]), trained["spec"].template)
    return score_pairs(AutoModelForCausalLM.from_pretrained(str(path)).eval(), enc, pairs, batch_size=batch_size)


def _scores(trained, name: str, tmp_path, pairs):
    """Each pair's ``Scored`` under the target before and after one run of ``name``."""
    unlearn(name, trained["spec"], out_dir=tmp_path, params=dict(PARAMS))
    return [_score(trained, path, pairs, batch_size=40) for path in (trained["target"], tmp_path / "model")]


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


def test_llmu_mismatch_lowers_the_drawn_answers_nll(tiny_family, tmp_path, monkeypatch):
    """Isolated mismatch term (eps1 = eps3 = 0): the NLL of the (forget prompt, random normal
    answer) pairs the training drew goes down, and by more than that of the same prompts with
    normal answers it never drew. The draws are new for every batch, so they are recorded from
    the collator as training makes them."""
    import csv

    from unlearnbench.data.datamodule import QACollator

    k, drawn, pool = 2, [], []
    original = QACollator.__call__

    def recording(self, rows):
        if "random_normal" in self.needs:
            state = self.rng.getstate()
            answers = [self._draw("random_normal", r) for r in rows]  # the same draws, in order
            self.rng.setstate(state)
            drawn.extend((r["question"], a) for r, ans in zip(rows, answers) for a in ans)
            pool[:] = self.normal
        return original(self, rows)

    monkeypatch.setattr(QACollator, "__call__", recording)
    unlearn("llmu", tiny_family["spec"], split="forget01", out_dir=tmp_path, seed=42,
            params={"lr": 1e-3, "epochs": 1, "batch_size": 8, "warmup_epochs": 0.0, "k_random": k,
                    "eps1": 0.0, "eps3": 0.0})
    with open(tmp_path / "history.csv") as f:
        hist = [{k_: float(v) for k_, v in row.items() if v != ""} for row in csv.DictReader(f)]
    assert all(row["forget"] == 0 and row["kl"] == 0 for row in hist)
    assert len(drawn) == k * 20  # one epoch of forget01's 20 rows
    assert len(set(drawn)) > 0.9 * len(drawn)  # fresh draws, not one fixed answer per row
    seen = {a for _, a in drawn}
    never = [a for a in pool if a not in seen]
    control = [(q, never[i % len(never)]) for i, (q, _) in enumerate(drawn)]

    def mean_nll(path, pairs):
        return sum(s.avg_nll for s in _score(tiny_family, path, pairs)) / len(pairs)

    drop, control_drop = (mean_nll(tiny_family["target"], p) - mean_nll(tmp_path / "model", p)
                          for p in (drawn, control))
    assert drop > 0.05 and drop > control_drop + 0.1, (drop, control_drop)  # measured 0.136, -0.031
