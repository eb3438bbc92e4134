"""`grid` options: --dry-run states with --only, --only matching nothing, --seeds, `plugins:`.

In-process (``cli.main``): nothing here trains or evaluates, so each test takes well under a
second once the package is imported."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import yaml

from unlearnbench import cli
from unlearnbench.runner.grid import load_grid
from unlearnbench.runner.run import _config_key

GRID = {"name": "g", "benchmark": "tofu-synth", "splits": ["forget01"], "models": ["tiny-test"],
        "seeds": [42], "references": {"retain_seeds": [0]}, "methods": ["ga", "npo"]}


def _write(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _fake_result(out: Path, sub: str, cell: dict, status: str = "ok") -> None:
    d = out / sub / cell["cell_id"]
    d.mkdir(parents=True)
    (d / "result.json").write_text(json.dumps({"status": status, "config": cell}))


def _job(grid, out, cell_id):
    from unlearnbench.runner.run import plan

    return next(p.job.to_json() for p in plan(grid, out) if p.job.id == cell_id)


def test_dry_run_marks_done_stale_and_to_run_and_honours_only(tmp_path, capsys):
    path, out = _write(tmp_path, GRID), tmp_path / "out"
    grid = load_grid(path)
    ga, npo = (f"{m}__tofu-synth-forget01__tiny-test__s42" for m in ("ga", "npo"))
    _fake_result(out, "cells", _job(grid, out, ga))  # same config: done
    stale = {**_job(grid, out, npo), "params": {"lr": 1.0}}  # other config: stale
    _fake_result(out, "cells", stale)
    assert _config_key(stale) != _config_key(_job(grid, out, npo))
    assert cli.main(["grid", str(path), "--out", str(out), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    marks = {line.split()[2]: line.split()[0] for line in lines[1:]}
    assert marks[ga] == "done" and marks[npo] == "stale"
    assert marks["target__tofu-synth-forget01__tiny-test"] == "to-run"
    assert "1 done, 2 to-run, 1 stale" in lines[0]
    assert cli.main(["grid", str(path), "--out", str(out), "--dry-run", "--only", "npo"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[2] for line in lines[1:] if line.split()[1] == "cell"] == [npo]
    assert not (out / "grid.json").exists()  # a dry run writes nothing


def test_only_matching_nothing_is_an_error_with_an_example(tmp_path, capsys):
    path, out = _write(tmp_path, GRID), tmp_path / "out"
    assert cli.main(["grid", str(path), "--out", str(out), "--only", "zzz"]) == 2
    err = capsys.readouterr().err
    assert "--only 'zzz' matches none" in err and "ga__tofu-synth-forget01__tiny-test__s42" in err
    assert not out.exists()  # nothing written, no leaderboard rebuilt


def test_seeds_option_replaces_the_grid_seeds(tmp_path, capsys):
    path = _write(tmp_path, GRID)
    assert [c.seed for c in load_grid(path, seeds=[7, 8]).cells] == [7, 8, 7, 8]
    assert cli.main(["grid", str(path), "--out", str(tmp_path / "o"), "--dry-run", "--seeds", "7,8"]) == 0
    ids = [line.split()[2] for line in capsys.readouterr().out.splitlines()[1:]]
    assert "ga__tofu-synth-forget01__tiny-test__s8" in ids and not any(i.endswith("s42") for i in ids)
    assert cli.main(["grid", str(path), "--dry-run", "--seeds", "x"]) == 2
    assert "--seeds 'x'" in capsys.readouterr().err


def test_grid_plugins_are_relative_to_the_grid_file_and_reach_every_cell(tmp_path, capsys):
    plugdir = tmp_path / "plugs"
    plugdir.mkdir()
    (plugdir / "my_ga.py").write_text(textwrap.dedent('''
        from unlearnbench.methods.ga import GradientAscent as GA
        from unlearnbench.registry import methods

        methods.register("my_ga_for_grid_test", GA)
    '''))
    raw = {**GRID, "plugins": ["plugs/my_ga.py"], "methods": ["my_ga_for_grid_test"]}
    grid = load_grid(_write(tmp_path, raw))  # the plugin registered the method the grid names
    assert grid.plugins == [str((plugdir / "my_ga.py").resolve())]
    from unlearnbench.runner.run import plan

    jobs = plan(grid, tmp_path / "out", plugins=grid.plugins)
    assert all(p.job.plugins == grid.plugins for p in jobs)
    bad = _write(tmp_path, {**GRID, "plugins": ["nowhere.py"]})
    assert cli.main(["grid", str(bad), "--dry-run"]) == 2
    assert "plugin 'nowhere.py' is not a file" in capsys.readouterr().err


def test_grid_name_cannot_leave_the_results_root(tmp_path, capsys):
    for name in ("../../etc", "/abs", ".hidden", "a/b"):
        assert cli.main(["grid", str(_write(tmp_path, {**GRID, "name": name})), "--dry-run"]) == 2
        assert "must be a plain directory name" in capsys.readouterr().err


def test_grid_json_keeps_earlier_attacks_and_is_not_rewritten_when_unchanged(tmp_path):
    """`make bench` without ATTACKS on a directory whose grid.json records attacks (the
    committed results) must leave the file as it is: a fresh clone stays clean."""
    from unlearnbench.runner.run import _record_grid

    path = tmp_path / "grid.json"
    _record_grid(path, {**GRID, "attacks": ["relearn"]})
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    _record_grid(path, dict(GRID))  # this run names no attacks
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    _record_grid(path, {**GRID, "seeds": [1]})  # a real change is recorded, attacks kept
    assert json.loads(path.read_text()) == {**GRID, "seeds": [1], "attacks": ["relearn"]}
