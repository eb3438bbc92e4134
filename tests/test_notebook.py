"""`notebooks/leaderboard.ipynb` runs top to bottom on a results dir (``RESULTS_DIR``) and
writes its plot to ``NOTEBOOK_OUT``.

The results dir is synthetic (hand-written ``result.json`` files in the runner's schema, as
``unlearnbench.report.results`` reads them), so this test needs no model; the kernel is the
venv's ``python3`` (ipykernel), and nothing is installed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "leaderboard.ipynb"
BLOCK = {"benchmark": "tofu-synth", "split": "forget01", "model": "tiny-test"}
# label -> (method, forget_quality, model_utility); labels chosen to be unmistakable in output.
CELLS = {"ga": ("ga", 2e-3, 0.41), "npo[beta=0.2]": ("npo", 0.31, 0.38), "wagle[npo]": ("wagle", 0.05, 0.40)}
REFS = {"target": (1e-6, 0.45), "retain": (None, 0.44)}


def _summary(fq, mu):
    return {"forget_quality": fq, "log10_forget_quality": None if fq is None else math.log10(fq),
            "model_utility": mu,
            "forget": {"probability": 0.3, "rougeL_recall": 0.2, "truth_ratio": 0.7, "n_items": 6},
            "retain": {"probability": 0.8, "rougeL_recall": 0.6, "truth_ratio": 0.5, "n_items": 6},
            "mia": {"min_k": 0.55}, "privleak": -10.0}


def _write(path: Path, obj: dict) -> None:
    path.mkdir(parents=True)
    (path / "result.json").write_text(json.dumps(obj, indent=2))


@pytest.fixture()
def results_dir(tmp_path) -> Path:
    root = tmp_path / "results"
    for name, (fq, mu) in REFS.items():
        _write(root / "refs" / f"{name}__tofu-synth-forget01__tiny-test", {
            "cell_id": f"{name}__tofu-synth-forget01__tiny-test", "kind": "ref", "method": name,
            "method_label": name, **BLOCK, "seed": 0, "status": "ok", "error": None,
            "summary": _summary(fq, mu), "cost": {"wall_time_s": 1.0, "tokens": 100}})
    for label, (method, fq, mu) in CELLS.items():
        cid = f"{label}__tofu-synth-forget01__tiny-test__s42"
        _write(root / "cells" / cid, {
            "cell_id": cid, "kind": "cell", "method": method, "method_label": label, **BLOCK,
            "seed": 42, "status": "ok", "error": None, "summary": _summary(fq, mu),
            "cost": {"wall_time_s": 3.0, "tokens": 500, "steps": 2}})
    _write(root / "cells" / "broken__tofu-synth-forget01__tiny-test__s42", {
        "cell_id": "broken__tofu-synth-forget01__tiny-test__s42", "kind": "cell", "method": "ga",
        "method_label": "broken", **BLOCK, "seed": 42, "status": "failed",
        "error": "ValueError: method 'ga': lr must be > 0, got -1"})
    return root


def _text(output: dict) -> str:
    if output.get("output_type") == "stream":
        return output.get("text", "")
    data = output.get("data", {})
    return "\n".join(str(data.get(k, "")) for k in ("text/plain", "text/html", "text/markdown"))


def test_leaderboard_notebook_runs(results_dir, tmp_path, monkeypatch):
    out = tmp_path / "nbout"
    out.mkdir()
    # The kernel inherits this process's environment.
    monkeypatch.setenv("RESULTS_DIR", str(results_dir))
    monkeypatch.setenv("NOTEBOOK_OUT", str(out))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=300,
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()  # raises CellExecutionError on any failing cell

    code = [c for c in nb.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    table_cell = next(c for c in code if "leaderboard_table" in c.source)
    table_out = "\n".join(_text(o) for o in table_cell.outputs)
    for label in CELLS:
        assert label in table_out, f"{label!r} missing from the table output:\n{table_out}"
    assert "6 results, 1 failed" in table_out
    everything = "\n".join(_text(o) for c in code for o in c.get("outputs", []))
    assert "Failed cells" in everything and "lr must be > 0, got -1" in everything  # the Markdown cell
    png = out / "tradeoff_notebook.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert any("image/png" in o.get("data", {}) for o in code[-1].outputs)
    assert not list(results_dir.glob("*.png"))  # NOTEBOOK_OUT, not the results dir


COMMITTED = sorted(p.name for p in (REPO / "results").iterdir() if (p / "grid.json").is_file())


def test_every_committed_results_dir_is_found():
    # Guards the parametrisation below: an empty list would make it pass vacuously.
    assert len(COMMITTED) >= 6, COMMITTED


@pytest.mark.parametrize("name", COMMITTED)
def test_notebook_runs_on_each_committed_results_dir(name, tmp_path, monkeypatch):
    """Every benchmark's results (not only TOFU's columns) go through the notebook: the table
    names each method of the leaderboard, and nothing lands in the results directory."""
    from unlearnbench.report.leaderboard import leaderboard_table
    from unlearnbench.report.results import load_results, results_frame

    results = REPO / "results" / name
    before = sorted(p for p in results.rglob("*"))
    monkeypatch.setenv("RESULTS_DIR", str(results))
    monkeypatch.setenv("NOTEBOOK_OUT", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=120,
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert not [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    table_out = "\n".join(_text(o) for o in next(c for c in code if "leaderboard_table" in c.source).outputs)
    labels = leaderboard_table(results_frame(load_results(results)))["method_label"]
    missing = [str(label) for label in labels if str(label) not in table_out]
    assert not missing, f"{name}: {missing} missing from the notebook's table"
    assert (tmp_path / "tradeoff_notebook.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p for p in results.rglob("*")) == before
