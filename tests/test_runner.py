"""The grid runner: YAML validation, stable cell ids, an end-to-end grid on the tiny-test
model, a broken cell, kill -9 and Ctrl-C with resume, and the `leaderboard` command.

One small grid (3 cheap methods on forget01, tiny-test, 6 eval items) runs once per module
(``small_run``); the other end-to-end tests copy its results dir and (re-)run a part of it.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from unlearnbench import cli
from unlearnbench.registry import methods
from unlearnbench.runner.grid import GridError, load_grid, parse_grid
from unlearnbench.runner.run import plan, run_grid

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted((REPO / "benchmarks").glob("*.yaml"))
CHEAP = {"epochs": 1, "lr": 1.0e-3, "batch_size": 16}
METHODS = ("ga", "npo", "grad_diff")
# Columns that measure the machine, not the method: never compared between runs.
MACHINE_COLUMNS = {"wall_time_s", "peak_host_mem_mib", "peak_accel_mem_mib"}
POLL_TIMEOUT_S = 300


def small_grid(name: str = "small", entries: list | None = None) -> dict:
    return {
        "name": name,
        "benchmark": "tofu-synth",
        "splits": ["forget01"],
        "models": ["tiny-test"],
        "seeds": [42],
        "strategy": "single",
        "references": {"retain_seeds": [0]},  # the seed-1 retain model takes a minute to build
        "eval": {"max_items": 6, "max_new_tokens": 16, "batch_size": 8},
        "methods": entries if entries is not None else [{"name": m, "params": dict(CHEAP)} for m in METHODS],
    }


def write_yaml(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def cell_id(method: str) -> str:
    return f"{method}__tofu-synth-forget01__tiny-test__s42"


def result(out: Path, cid: str, sub: str = "cells") -> dict:
    return json.loads((out / sub / cid / "result.json").read_text())


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "unlearnbench.cli", *args], cwd=REPO, env=os.environ.copy(),
                          capture_output=True, text=True, timeout=timeout)


def start_cli_grid(yaml_path: Path, out: Path) -> subprocess.Popen:
    """The grid command in its own session (process group), as a user would start it."""
    return subprocess.Popen([sys.executable, "-m", "unlearnbench.cli", "grid", str(yaml_path), "--out", str(out)],
                            cwd=REPO, env=os.environ.copy(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def wait_for_running_cell(proc: subprocess.Popen, out: Path, have_done: int = 1) -> str:
    """Poll until ``have_done`` cells have a result and another cell is running (its cell.json
    exists without a result.json, and its log shows it got past start-up); returns its id."""
    deadline = time.time() + POLL_TIMEOUT_S
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"grid exited (rc={proc.returncode}) before a cell could be interrupted:\n"
                        f"{proc.stdout.read()}")
        cells = [d for d in (out / "cells").glob("*") if d.is_dir()]
        done = [d for d in cells if (d / "result.json").exists()]
        running = [d for d in cells if (d / "cell.json").exists() and not (d / "result.json").exists()
                   and (d / "log.txt").exists() and (d / "log.txt").stat().st_size > 0]
        if len(done) >= have_done and running:
            return running[0].name
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail(f"no running cell after {POLL_TIMEOUT_S}s")


def snapshot(out: Path) -> dict[str, tuple[int, float]]:
    """cell id -> (result.json mtime_ns, elapsed_s) for every finished job."""
    snap = {}
    for f in sorted(out.glob("*/*/result.json")):
        snap[f.parent.name] = (f.stat().st_mtime_ns, json.loads(f.read_text()).get("elapsed_s"))
    return snap


def assert_same_leaderboard(a: Path, b: Path) -> None:
    """Same rows, same identity columns, numbers equal to 1e-9 (machine columns excepted)."""
    x, y = pd.read_csv(a), pd.read_csv(b)
    assert list(x.columns) == list(y.columns)
    assert x["method_label"].tolist() == y["method_label"].tolist()
    for col in x.columns:
        base = col[:-4] if col.endswith("_std") else col
        if base in MACHINE_COLUMNS:
            continue
        if x[col].dtype.kind in "fi" and y[col].dtype.kind in "fi":
            np.testing.assert_allclose(x[col].to_numpy(float), y[col].to_numpy(float), rtol=0, atol=1e-9,
                                       equal_nan=True, err_msg=f"column {col}")
        else:
            assert x[col].fillna("").astype(str).tolist() == y[col].fillna("").astype(str).tolist(), col


@pytest.fixture(scope="module")
def small_run(tiny_family, tmp_path_factory):
    """The small grid run once, uninterrupted, in-process."""
    base = tmp_path_factory.mktemp("grid")
    raw = small_grid()
    path = write_yaml(base / "small.yaml", raw)
    out = base / "results"
    lines: list[str] = []
    t0 = time.time()
    res = run_grid(load_grid(path), out, log=lines.append, workers=1)  # one job at a time
    return {"raw": raw, "yaml": path, "out": out, "res": res, "log": "\n".join(lines),
            "seconds": time.time() - t0}


def copy_results(src: Path, dst: Path, subs=("refs", "cells")) -> Path:
    dst.mkdir(parents=True)
    for sub in subs:
        shutil.copytree(src / sub, dst / sub, copy_function=shutil.copy2)  # keeps mtimes
    return dst


# --- 1. validation -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_grids_validate(path):
    grid = load_grid(path)
    ids = [c.cell_id for c in grid.cells]
    assert grid.cells and len(ids) == len(set(ids))
    assert {c.method for c in grid.cells} <= set(methods.names())
    # MODEL= swaps in a real model: a stand-in benchmark becomes the real data it stands for
    # (tofu-synth -> tofu, muse-synth -> muse-news, ...), and the tiny-only defaults are not applied.
    from unlearnbench.registry import benchmarks

    real = load_grid(path, model="phi-1.5")
    assert real.name == f"{grid.name}-phi-1.5"
    want = {benchmarks.get(c.benchmark).stand_in_for or c.benchmark for c in grid.cells}
    assert {c.benchmark for c in real.cells} == want
    assert all(not benchmarks.get(b).stand_in_for for b in want)
    assert {c.model for c in real.cells} == {"phi-1.5"}
    assert len(real.cells) == len(grid.cells) // len({c.model for c in grid.cells})
    tiny_lr = (grid.raw.get("tiny_defaults") or {}).get("lr")
    real_lr = {**(grid.raw.get("defaults") or {}), **(grid.raw.get("real_defaults") or {})}.get("lr")
    if tiny_lr is not None and any(c.label == "ga" for c in real.cells):
        ga = next(c for c in real.cells if c.label == "ga")
        assert ga.params["lr"] == real_lr != tiny_lr


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_cli_dry_run_lists_cell_ids(path, capsys, tmp_path):
    def cells(out: str) -> list[str]:  # "<state> <kind> <id>" lines after the summary line
        return [line.split()[2] for line in out.splitlines()[1:] if line.split()[1] == "cell"]

    assert cli.main(["grid", str(path), "--dry-run", "--out", str(tmp_path)]) == 0
    assert cells(capsys.readouterr().out) == [c.cell_id for c in load_grid(path).cells]
    assert cli.main(["grid", str(path), "--dry-run", "--model", "phi-1.5", "--out", str(tmp_path)]) == 0
    listed = cells(capsys.readouterr().out)
    real = load_grid(path, model="phi-1.5").cells
    assert listed == [c.cell_id for c in real]
    assert all(f"__{c.benchmark}-{c.split}__phi-1.5__" in i for c, i in zip(real, listed))


def _bad(**change) -> dict:
    raw = small_grid()
    raw.update(change)
    return raw


BAD_GRIDS = {
    "unknown top-level key": (_bad(seed=[1]), ["unknown key", "'seed'", "did you mean", "'seeds'"]),
    "unknown method": (_bad(methods=["npo", "gaa"]), ["unknown method 'gaa'", "did you mean", "'ga'"]),
    "unknown model": (_bad(models=["llama9"]), ["unknown model 'llama9'", "tiny-test"]),
    "unknown strategy": (_bad(strategy="zero3"), ["unknown strategy 'zero3'", "ddp", "fsdp"]),
    "duplicate labels": (_bad(methods=[{"name": "ga", "params": {"lr": 1e-3}}, {"name": "ga", "params": {"lr": 1e-4}}]),
                         ["duplicate cell ids", "distinct labels"]),
    "unknown method key": (_bad(methods=[{"name": "ga", "param": {"lr": 1e-3}}]),
                           ["unknown key", "'param'", "'params'"]),
    "unknown eval key": (_bad(eval={"max_item": 3}), ["eval", "'max_item'", "'max_items'"]),
    "params not a mapping": (_bad(methods=[{"name": "ga", "params": [1e-3]}]), ["'ga'", "params must be a mapping"]),
    "empty sweep": (_bad(methods=[{"name": "npo", "sweep": {"beta": []}}]), ["sweep 'beta'", "non-empty list"]),
    "unknown split": (_bad(splits=["forget1"]), ["no split 'forget1'", "forget01", "did you mean 'forget10'"]),
    "bad seed": (_bad(seeds=["x"]), ["seed", "integer"]),
    "single on 2 devices": (_bad(devices=2), ["'single'", "ddp"]),
    "missing methods": ({"name": "x", "benchmark": "tofu-synth"}, ["missing required key 'methods'"]),
    "not a mapping": ([1, 2], ["must be a mapping"]),
}


@pytest.mark.parametrize("name", list(BAD_GRIDS))
def test_invalid_grids_raise_helpful_errors(name):
    raw, needles = BAD_GRIDS[name]
    with pytest.raises(GridError) as err:
        parse_grid(copy.deepcopy(raw))
    msg = str(err.value)
    for needle in needles:
        assert needle.lower() in msg.lower(), f"{needle!r} not in {msg!r}"


def test_cli_exits_2_on_invalid_grids(tmp_path, capsys):
    for name in ("unknown top-level key", "unknown method", "unknown model", "unknown strategy", "duplicate labels"):
        path = write_yaml(tmp_path / f"{name.replace(' ', '_')}.yaml", BAD_GRIDS[name][0])
        assert cli.main(["grid", str(path), "--out", str(tmp_path / "never")]) == 2, name
        err = capsys.readouterr().err
        assert err.startswith("unlearnbench: error:") and "Traceback" not in err, err
    assert not (tmp_path / "never").exists()
    assert cli.main(["grid", str(tmp_path / "missing.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    assert cli.main(["grid", str(tmp_path / "broken.yaml"), "--dry-run"]) == 2
    assert "not valid YAML" in capsys.readouterr().err
    # And the real exit status of the process, once.
    proc = run_cli("grid", str(tmp_path / "unknown_method.yaml"), "--dry-run")
    assert proc.returncode == 2, proc.stderr
    assert "did you mean" in proc.stderr.lower() and "Traceback" not in proc.stderr


# --- 2. stable ids -------------------------------------------------------------------------------


def test_cell_ids_are_stable_and_sweeps_expand():
    raw = small_grid(entries=[{"name": "ga", "params": dict(CHEAP)},
                              {"name": "npo", "params": dict(CHEAP), "sweep": {"beta": [0.1, 0.2]}},
                              {"name": "wagle", "label": "wagle[npo]", "params": {"inner": "npo"}}])
    raw["seeds"] = [42, 7]
    first = parse_grid(copy.deepcopy(raw))
    again = parse_grid(copy.deepcopy(raw))
    # Key order of the YAML mappings does not matter either.
    shuffled = parse_grid({k: raw[k] for k in reversed(list(raw))})
    ids = [c.cell_id for c in first.cells]
    assert ids == [c.cell_id for c in again.cells] == [c.cell_id for c in shuffled.cells]
    assert [c.as_dict() for c in first.cells] == [c.as_dict() for c in again.cells]
    assert len(ids) == len(set(ids)) == 4 * 2
    npo = [c for c in first.cells if c.method == "npo"]
    assert sorted({c.label for c in npo}) == ["npo[beta=0.1]", "npo[beta=0.2]"]
    assert sorted({c.params["beta"] for c in npo}) == [0.1, 0.2]
    assert all(c.params["lr"] == CHEAP["lr"] for c in npo)  # the entry's params under the sweep
    assert "npo-beta=0.1__tofu-synth-forget01__tiny-test__s42" in ids
    assert "wagle-npo__tofu-synth-forget01__tiny-test__s7" in ids
    # Filesystem-safe: a cell id is a directory name.
    assert all("/" not in i and "[" not in i and " " not in i for i in ids)


# --- 3. end to end -------------------------------------------------------------------------------


def test_grid_runs_every_cell_and_reference_without_failure(small_run):
    res = small_run["res"]
    assert res["failed"] == [], small_run["log"]
    assert res["ok"] == 2 + len(METHODS) and res["skipped"] == 0


def test_grid_writes_the_leaderboard_files_and_plots(small_run):
    out = small_run["out"]
    for name in ("leaderboard.md", "leaderboard.csv", "leaderboard.tex", "tradeoff.png", "training_curves.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "tradeoff.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_grid_evaluates_the_target_and_retain_references(small_run):
    out = small_run["out"]
    refs = {d.name: json.loads((d / "result.json").read_text()) for d in (out / "refs").iterdir()}
    assert sorted(refs) == ["retain__tofu-synth-forget01__tiny-test", "target__tofu-synth-forget01__tiny-test"]
    assert all(r["status"] == "ok" for r in refs.values())
    assert "forget_quality" in refs["target__tofu-synth-forget01__tiny-test"]["summary"]


@pytest.mark.parametrize("m", METHODS)
def test_cell_result_records_its_config_summary_and_cost(small_run, m):
    r = result(small_run["out"], cell_id(m))
    assert r["status"] == "ok" and r["error"] is None
    assert r["method"] == m and r["kind"] == "cell"
    assert r["config"]["params"] == CHEAP and r["config"]["eval"] == small_run["raw"]["eval"]
    assert r["cost"]["wall_time_s"] > 0 and r["cost"]["tokens"] > 0 and r["cost"]["steps"] >= 1
    s = r["summary"]
    assert 0.0 <= s["forget_quality"] <= 1.0 and 0.0 <= s["model_utility"] <= 1.0
    assert s["forget"]["n_items"] == 6
    assert r["elapsed_s"] > 0


@pytest.mark.parametrize("m", METHODS)
def test_cell_result_records_its_provenance(small_run, m):
    prov = result(small_run["out"], cell_id(m))["provenance"]
    assert prov["unlearnbench"] == "0.1.0"
    assert prov["git_commit"] and len(prov["git_commit"].split("+")[0]) == 40
    assert prov["libraries"]["torch"] and prov["libraries"]["lightning"] and prov["libraries"]["transformers"]
    assert prov["device"] and prov["world_size"] == 1
    assert prov["numerics"]["torch_threads"] == 1  # pinned, whatever this machine's core count


def test_a_cell_run_again_by_hand_without_the_grids_inputs_gives_the_same_items(small_run, tmp_path):
    m = METHODS[0]
    assert result(small_run["out"], cell_id(m))["provenance"]["inputs_from_grid"] is True
    out = copy_results(small_run["out"], tmp_path / "results")
    cell_dir = out / "cells" / cell_id(m)
    assert not (small_run["out"] / "cells" / cell_id(m) / "inputs.json").exists()  # removed once the job ended
    (cell_dir / "result.json").unlink()
    # As the grid starts it, but without inputs.json: it resolves its benchmark and checkpoints by name.
    proc = subprocess.run([sys.executable, "-m", "unlearnbench.runner.cell", str(cell_dir / "cell.json")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    again = json.loads((cell_dir / "result.json").read_text())
    assert again["provenance"]["inputs_from_grid"] is False
    assert (cell_dir / "items.jsonl").read_text() == \
        (small_run["out"] / "cells" / cell_id(m) / "items.jsonl").read_text()


def test_jobs_side_by_side_give_the_numbers_of_one_at_a_time(small_run, tmp_path):
    out = copy_results(small_run["out"], tmp_path / "results")
    for m in METHODS:
        shutil.rmtree(out / "cells" / cell_id(m))
    lines: list[str] = []
    res = run_grid(load_grid(small_run["yaml"]), out, log=lines.append, workers=2)
    log = "\n".join(lines)
    assert res["failed"] == [] and res["ran"] == len(METHODS), log
    assert "2 jobs at a time, 1 thread(s) each" in log
    assert_same_leaderboard(out / "leaderboard.csv", small_run["out"] / "leaderboard.csv")
    for m in METHODS:  # not only the means: every per-item record
        assert (out / "cells" / cell_id(m) / "items.jsonl").read_text() == \
            (small_run["out"] / "cells" / cell_id(m) / "items.jsonl").read_text()


@pytest.mark.parametrize("m", METHODS)
def test_cell_keeps_its_history_and_loss_log_but_not_its_model(small_run, m):
    cell = small_run["out"] / "cells" / cell_id(m)
    assert (cell / "history.csv").exists()
    assert not (cell / "work" / "model").exists()  # keep_models is off
    # Lightning's CSV logger always writes the loss terms, step by step, beside the result.
    logged = pd.read_csv(cell / "logs" / "metrics.csv")
    steps = result(small_run["out"], cell_id(m))["cost"]["steps"]
    assert "train/loss" in logged.columns and logged["train/loss"].notna().sum() == steps


def test_leaderboard_lists_references_first_then_every_method(small_run):
    out = small_run["out"]
    board = pd.read_csv(out / "leaderboard.csv")
    assert board["method_label"].tolist()[:2] == ["target", "retain"]
    assert sorted(board["method_label"].tolist()[2:]) == sorted(METHODS)
    md = (out / "leaderboard.md").read_text()
    assert all(f"| {m} |" in md for m in METHODS) and "Failed cells" not in md


def test_plan_reruns_changed_configs_only(small_run, tmp_path):
    out = copy_results(small_run["out"], tmp_path / "copy")
    raw = copy.deepcopy(small_run["raw"])
    jobs = plan(parse_grid(raw), out)
    assert [j.state for j in jobs] == ["done"] * 5
    raw["methods"][0]["params"]["lr"] = 2.0e-3  # ga's entry changed, same label and id
    states = {job.id: state for job, _, state in plan(parse_grid(raw), out)}
    assert states.pop(cell_id("ga")) == "stale"
    assert set(states.values()) == {"done"}
    raw = copy.deepcopy(small_run["raw"])
    raw["eval"]["max_items"] = 5  # changes every job, references included
    assert {j.state for j in plan(parse_grid(raw), out)} == {"stale"}
    # --only narrows the references to those of the selected cells.
    assert len(plan(parse_grid(small_run["raw"]), out, only="npo__")) == 3


def test_plan_reruns_results_recorded_on_other_data(small_run, tmp_path):
    # Same grid, same configs, but the stand-in's data changed since (e.g. a new generator
    # default): every result records the data key it was computed on.
    out = copy_results(small_run["out"], tmp_path / "copy")
    results = sorted(out.glob("*/*/result.json"))
    assert len(results) == 5 and all(json.loads(p.read_text())["data_key"] for p in results)
    victim = results[0]
    data = json.loads(victim.read_text())
    data["data_key"] = "another-stand-in"
    victim.write_text(json.dumps(data))
    states = {job_dir: state for _, job_dir, state in plan(parse_grid(small_run["raw"]), out)}
    assert states.pop(victim.parent) == "stale"
    assert set(states.values()) == {"done"}
    # A result written before data keys were recorded is compared by its config alone.
    del data["data_key"]
    victim.write_text(json.dumps(data))
    assert {j.state for j in plan(parse_grid(small_run["raw"]), out)} == {"done"}


# --- 4. a broken cell ----------------------------------------------------------------------------


def test_broken_cell_is_recorded_and_the_grid_goes_on(small_run, tmp_path):
    out = copy_results(small_run["out"], tmp_path / "results")
    shutil.rmtree(out / "cells" / cell_id("grad_diff"))  # must run after the broken one
    # A setting only the model can refute (it has 2 layers): the grid reads fine, the cell fails.
    entries = [{"name": "rmu", "label": "ga-broken", "params": {**CHEAP, "layer": 99}}]
    entries += [{"name": m, "params": dict(CHEAP)} for m in METHODS]
    path = write_yaml(tmp_path / "broken.yaml", small_grid(entries=entries))
    lines: list[str] = []
    res = run_grid(load_grid(path), out, log=lines.append)
    log = "\n".join(lines)
    broken = cell_id("ga-broken")
    assert [cid for cid, _ in res["failed"]] == [broken], log
    assert "layer 99 out of range" in res["failed"][0][1]
    r = result(out, broken)
    assert r["status"] == "failed" and "layer 99 out of range" in r["error"] and "Traceback" in r["traceback"]
    assert r["provenance"]["world_size"] == 1
    assert result(out, cell_id("grad_diff"))["status"] == "ok"
    assert res["ran"] == 2 and res["skipped"] == 4
    md = (out / "leaderboard.md").read_text()
    failed_section = md.split("## Failed cells", 1)[1]
    assert f"`{broken}`" in failed_section and "ga-broken" in failed_section
    assert "layer 99 out of range" in failed_section
    assert "| ga-broken |" not in md.split("## Failed cells")[0]  # not among the ranked rows
    # The CLI exits 1 while the grid holds a failed cell, even one kept from an earlier run.
    proc = run_cli("grid", str(path), "--out", str(out), "--no-retry-failed")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "failed earlier, kept" in proc.stdout and f"FAILED {broken}" in proc.stdout
    assert result(out, broken)["elapsed_s"] == r["elapsed_s"]  # not re-run


def test_a_failure_stays_in_the_summary_when_a_later_cell_is_not_applicable(small_run, tmp_path, monkeypatch):
    """A not-applicable cell after a failed one once replaced the run's list of failures with
    its own record: the grid then reported no failure and exited 0."""
    from unlearnbench.runner import run as run_module

    out = copy_results(small_run["out"], tmp_path / "results")
    shutil.rmtree(out / "cells" / cell_id("grad_diff"))
    entries = [{"name": "rmu", "label": "ga-broken", "params": {**CHEAP, "layer": 99}}]
    entries += [{"name": m, "params": dict(CHEAP)} for m in METHODS]
    path = write_yaml(tmp_path / "broken.yaml", small_grid(entries=entries))
    monkeypatch.setattr(run_module, "not_applicable",
                        lambda job: "does not train on this data" if job.config.get("label") == "grad_diff" else None)
    res = run_grid(load_grid(path), out, log=lambda _: None)
    assert [cid for cid, _ in res["failed"]] == [cell_id("ga-broken")]
    assert result(out, cell_id("grad_diff"))["status"] == "not_applicable"


# --- 5. kill -9 and resume -----------------------------------------------------------------------


def test_kill_and_resume_matches_an_uninterrupted_run(small_run, tmp_path):
    # References are shared with the uninterrupted run (copied, so they count as done).
    out = copy_results(small_run["out"], tmp_path / "results", subs=("refs",))
    t0 = time.time()
    proc = start_cli_grid(small_run["yaml"], out)
    try:
        running = wait_for_running_cell(proc, out, have_done=1)
        killed_at = time.time() - t0
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the grid and the running cell, at once
        proc.wait(timeout=60)
    proc.stdout.close()
    time.sleep(0.5)
    assert not (out / "cells" / running / "result.json").exists(), "the cell finished before the kill"
    before = snapshot(out)
    finished = [cid for cid in before if not cid.startswith(("target__", "retain__"))]
    assert finished and running not in finished
    # Every cell started and not finished was interrupted (one per job the grid ran at once).
    interrupted = {d.name for d in (out / "cells").iterdir() if not (d / "result.json").exists()}
    assert running in interrupted and interrupted.isdisjoint(finished)

    lines: list[str] = []
    t1 = time.time()
    res = run_grid(load_grid(small_run["yaml"]), out, log=lines.append)
    resumed_in = time.time() - t1
    log = "\n".join(lines)
    print(f"killed after {killed_at:.1f}s while {running} ran; finished before: {finished}; "
          f"resume ran {res['ran']} cell(s) in {resumed_in:.1f}s "
          f"(uninterrupted grid: {small_run['seconds']:.1f}s)\n{log}")
    assert res["failed"] == [], log
    after = snapshot(out)
    for cid in before:  # not recomputed: same file, same recorded elapsed time
        assert after[cid] == before[cid], cid
        assert f"{cid}: already done" in log
    assert f"{running}: ok" in log and f"{running}: already done" not in log
    assert res["ran"] == len(METHODS) - len(finished)
    assert result(out, running)["status"] == "ok"
    assert_same_leaderboard(out / "leaderboard.csv", small_run["out"] / "leaderboard.csv")


# --- 6. Ctrl-C -----------------------------------------------------------------------------------


def test_ctrl_c_keeps_finished_cells(small_run, tmp_path):
    out = copy_results(small_run["out"], tmp_path / "results")
    shutil.rmtree(out / "cells" / cell_id("npo"))
    before = snapshot(out)
    proc = start_cli_grid(small_run["yaml"], out)
    try:
        running = wait_for_running_cell(proc, out, have_done=1)
        assert running == cell_id("npo")
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, output
    assert "interrupted" in output and "Run the same command again to resume" in output
    assert snapshot(out) == before  # finished results untouched
    assert not (out / "cells" / running / "result.json").exists()  # interrupted is not failed
    lines: list[str] = []
    res = run_grid(load_grid(small_run["yaml"]), out, only="grad_diff", log=lines.append)
    assert res["ran"] == 0 and res["failed"] == [] and res["ok"] == 3
    assert f"{cell_id('grad_diff')}: already done" in "\n".join(lines)
    assert snapshot(out) == before


# --- 7. leaderboard alone ------------------------------------------------------------------------


def test_cli_leaderboard_rebuilds_tables(small_run, tmp_path, capsys):
    out = copy_results(small_run["out"], tmp_path / "results")
    shutil.copy2(small_run["out"] / "grid.json", out / "grid.json")
    assert not (out / "leaderboard.md").exists()
    assert cli.main(["leaderboard", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("# Leaderboard") and all(f"| {m} |" in printed for m in METHODS)
    for name in ("leaderboard.md", "leaderboard.csv", "leaderboard.tex", "tradeoff.png", "training_curves.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "leaderboard.md").read_text() == (small_run["out"] / "leaderboard.md").read_text()
    assert (out / "leaderboard.csv").read_text() == (small_run["out"] / "leaderboard.csv").read_text()
    assert cli.main(["leaderboard", str(tmp_path / "nothing")]) == 2
    assert "no grid results" in capsys.readouterr().err


def test_grid_logger_names_are_checked_before_anything_runs(monkeypatch):
    import importlib.util

    with pytest.raises(GridError, match="unknown logger 'tensorbord'; choose one of csv, tensorboard"):
        parse_grid({**small_grid(), "logger": "tensorbord"})
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(GridError, match="logger 'wandb' needs the wandb package: pip install wandb"):
        parse_grid({**small_grid(), "logger": {"name": "wandb", "project": "x"}})
    grid = parse_grid({**small_grid(), "logger": "csv"})
    assert all(c.logger == {"name": "csv"} for c in grid.cells)
