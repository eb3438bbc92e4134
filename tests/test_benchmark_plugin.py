"""A third-party benchmark registered from a file (``--plugin``) runs through ``grid``.

The plugin below is a complete benchmark of the "text" shape, written only against the
public interface: its own generated corpus, tiny-model recipe, evaluator and leaderboard
columns, and a sequential chain of two unlearning requests. The grid runs a method that
trains on raw text (``ga``), one that cannot (``idk``: refusals need a question), and the
chain; nothing in the harness knows the benchmark's name.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

PLUGIN = '''
import random

import torch

from unlearnbench.benchmarks.base import Benchmark, Chain, Column, Reference, TinyRecipe
from unlearnbench.registry import benchmarks

WORDS = ["amber", "birch", "cobalt", "delta", "ember", "fjord", "gale", "heron", "ivory", "juniper"]


def _doc(rng, topic):
    return " ".join([topic] + [rng.choice(WORDS) for _ in range(12)]) + "."


@benchmarks.register("toy-text")
class ToyText(Benchmark):
    """Toy raw-text benchmark (a test plugin): forget the 'zeta' documents, keep the 'omega' ones."""

    shape = "text"
    splits = ("first", "second")
    default_split = "first"
    references = (Reference("target", "target"),)
    columns = (Column("forget_nll", ("forget_nll",), "max"), Column("retain_nll", ("retain_nll",), "min"))
    tradeoff = ("retain_nll", "forget_nll")
    chains = {"sust": Chain(("first", "second"), sequential=True)}
    eval_options = {"batch_size": 8}
    data_options = {"chunk_len": 32}

    def default_path(self):
        return "generated-in-memory"

    def _docs(self, topic, n, seed):
        rng = random.Random(seed)
        return [_doc(rng, topic) for _ in range(n)]

    def forget_rows(self, split):
        return [{"text": t} for t in self._docs("zeta", 8, {"first": 1, "second": 2}[split])]

    def retain_rows(self, split):
        return [{"text": t} for t in self._docs("omega", 8, 3)]

    def recipe(self):
        texts = self._docs("zeta", 8, 1) + self._docs("zeta", 8, 2) + self._docs("omega", 8, 3)
        return TinyRecipe(data_key="toy-text-v1", tokenizer_texts=lambda: texts, base_texts=lambda: texts,
                          finetune=lambda role, split: (None, texts), finetuned_roles=("target",))

    @torch.no_grad()
    def evaluate(self, model, encoder, split, *, reference=None, models=None, batch_size=8):
        def mean_nll(rows):
            ids = [encoder.tokenizer(r["text"])["input_ids"] for r in rows]
            out = []
            for x in ids:
                t = torch.tensor([x])
                out.append(float(model(input_ids=t, labels=t).loss))
            return sum(out) / len(out)

        summary = {"forget_nll": mean_nll(self.forget_rows(split)), "retain_nll": mean_nll(self.retain_rows(split))}
        return summary, [{"task": "summary", **summary}]
'''


def _grid(tmp_path: Path, **extra) -> Path:
    raw = {"name": "toy", "benchmark": "toy-text", "models": ["tiny-test"], "seeds": [1],
           "defaults": {"epochs": 1, "batch_size": 4, "lr": 1e-3},
           "methods": ["ga", "idk"], **extra}
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "unlearnbench.cli", *args], cwd=REPO,
                          env=os.environ.copy(), capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def plugin(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("plugin") / "toy_text_benchmark.py"
    path.write_text(textwrap.dedent(PLUGIN))
    return path


def test_plugin_benchmark_runs_through_grid(plugin, tmp_path):
    out = tmp_path / "results"
    proc = _run("--plugin", str(plugin), "grid", str(_grid(tmp_path)), "--out", str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ga = json.loads((out / "cells" / "ga__toy-text-first__tiny-test__s1" / "result.json").read_text())
    assert ga["status"] == "ok"
    assert set(ga["metrics"]) == {"forget_nll", "retain_nll"}
    target = json.loads((out / "refs" / "target__toy-text-first__tiny-test" / "result.json").read_text())
    # Gradient ascent on the forget documents raises their NLL above the target's.
    assert ga["metrics"]["forget_nll"] > target["metrics"]["forget_nll"]
    idk = json.loads((out / "cells" / "idk__toy-text-first__tiny-test__s1" / "result.json").read_text())
    assert idk["status"] == "not_applicable" and "'text'" in idk["reason"]
    md = (out / "leaderboard.md").read_text()
    assert "## toy-text" in md and "forget_nll ↑" in md and "retain_nll ↓" in md
    assert "## Not applicable" in md and "idk" in md.split("## Not applicable")[1]
    assert "Failed cells" not in md
    table = pd.read_csv(out / "leaderboard.csv")
    assert list(table["method_label"]) == ["target", "ga"]
    # A resumed grid skips both the finished and the not-applicable cell.
    again = _run("--plugin", str(plugin), "grid", str(_grid(tmp_path)), "--out", str(out))
    assert again.returncode == 0 and again.stdout.count("[skip]") == 3 and "0 to run" in again.stdout, again.stdout


def test_sequential_chain_starts_each_step_from_the_previous_model(plugin, tmp_path):
    out = tmp_path / "chain"
    proc = _run("--plugin", str(plugin), "grid", str(_grid(tmp_path, chain="sust", methods=["ga"])),
                "--out", str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    first = out / "cells" / "ga__toy-text-first__tiny-test__s1"
    second = json.loads((out / "cells" / "ga__toy-text-second__tiny-test__s1" / "result.json").read_text())
    assert second["status"] == "ok" and second["config"]["start_from"] == first.name
    assert second["config"]["chain"] == "sust" and second["config"]["step"] == 2
    assert second["target"] == str(first / "work" / "model")  # unlearned from step 1's model
    assert not (first / "work" / "model").exists()  # pruned once step 2 is done
    assert (out / "chain.png").read_bytes()[:4] == b"\x89PNG"


def test_chain_over_a_benchmark_without_it_is_one_clear_line(plugin, tmp_path):
    proc = _run("--plugin", str(plugin), "grid", str(_grid(tmp_path, chain="scal")), "--dry-run")
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "has no 'scal' chain" in err and "sust" in err
    proc = _run("grid", str(_grid(tmp_path, chain="sust", benchmark="tofu-synth")), "--dry-run")
    assert proc.returncode == 2 and "'tofu-synth' has no 'sust' chain" in proc.stderr
    # MUSE-Books has no scalability / sustainability folds (MUSE-News has both).
    proc = _run("grid", str(_grid(tmp_path, chain="sust", benchmark="muse-books")), "--dry-run")
    assert proc.returncode == 2 and "'muse-books' has no 'sust' chain" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = _run("grid", str(_grid(tmp_path, chain="sust", benchmark="muse-news")), "--dry-run")
    assert proc.returncode == 0 and proc.stdout.count("muse-news-sust-") == 8  # 4 steps x 2 methods
