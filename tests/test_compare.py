"""`unlearnbench compare A B`: agreement within the stated spread over seeds."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from unlearnbench import cli
from unlearnbench.report.compare import compare


def _write(root: Path, sub: str, cid: str, method: str, seed, fq: float, mu: float, tokens: int = 100):
    d = root / sub / cid
    d.mkdir(parents=True)
    d.joinpath("result.json").write_text(json.dumps({
        "cell_id": cid, "kind": "ref" if sub == "refs" else "cell", "status": "ok", "method": method,
        "method_label": method, "benchmark": "tofu-synth", "split": "forget10", "model": "tiny", "seed": seed,
        "summary": {}, "metrics": {"forget_quality": fq, "model_utility": mu},
        "cost": {"tokens": tokens, "wall_time_s": 1.0 + seed, "periodic_eval_wall_time_s": 0.5 * seed + tokens}}))


def _grid(root: Path, shift: float = 0.0, target_shift: float = 0.0, tokens: int = 100) -> Path:
    _write(root, "refs", "target", "target", 0, 1e-12, 0.86 + target_shift)
    for seed, (fq, mu) in zip((42, 43, 44), ((1e-3, 0.80), (1e-2, 0.82), (1e-4, 0.84))):
        _write(root, "cells", f"npo-{seed}", "npo", seed, fq, mu + shift, tokens)
    return root


def test_agreement_is_judged_against_the_seed_spread(tmp_path):
    a = _grid(tmp_path / "a")
    rows, problems = compare(a, _grid(tmp_path / "b", shift=0.01))  # std of utility is 0.02: within 2 std
    assert not problems and rows and all(r.agree for r in rows)
    fq = next(r for r in rows if r.key[1] == "npo" and r.column == "forget_quality")
    assert fq.mean_a == pytest.approx(-3.0) and fq.std_a == pytest.approx(1.0)  # compared as log10
    rows, _ = compare(a, _grid(tmp_path / "c", shift=0.1))  # 5 std away
    bad = {(r.key[1], r.column) for r in rows if not r.agree}
    assert bad == {("npo", "model_utility")}


def test_references_use_the_blocks_median_seed_spread_and_tokens_must_match(tmp_path):
    a = _grid(tmp_path / "a")
    ok, _ = compare(a, _grid(tmp_path / "b", target_shift=0.03))  # 1.5 x the methods' utility std
    assert all(r.agree for r in ok)
    far, _ = compare(a, _grid(tmp_path / "c", target_shift=0.05))
    assert [(r.key[1], r.column) for r in far if not r.agree] == [("target", "model_utility")]
    tok, _ = compare(a, _grid(tmp_path / "d", tokens=101))
    assert [(r.key[1], r.column) for r in tok if not r.agree] == [("npo", "tokens")]
    # Machine columns (wall times, the periodic evaluation's too: they differ with the tokens
    # here) are never compared.
    assert not any(r.column in ("wall_time_s", "periodic_eval_wall_time_s") for r in ok + tok)


def test_cli_exit_status_and_report(tmp_path, capsys):
    a, b = _grid(tmp_path / "a"), _grid(tmp_path / "b", shift=0.1)
    assert cli.main(["compare", str(a), str(a), "--out", str(tmp_path / "r.md")]) == 0
    assert "values agree**." in (tmp_path / "r.md").read_text()
    assert cli.main(["compare", str(a), str(b)]) == 1
    assert "| NO |" in capsys.readouterr().out
    assert cli.main(["compare", str(a), str(tmp_path / "missing")]) == 2
    assert math.isfinite(1.0)
