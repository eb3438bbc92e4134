"""Progress: the family build's and a cell's evaluation lines reach the grid's output; the ETA counts cells only."""

from __future__ import annotations

import subprocess
import sys

from unlearnbench.runner.run import eta_seconds, pump, spawn


def test_eta_leaves_references_and_their_one_off_builds_out():
    # The first reference built the tiny family (300 s); cells take 10 s each.
    times = {"refs": [300.0, 5.0], "cells": [10.0, 14.0]}
    assert eta_seconds(times, {"refs": 1, "cells": 5}) == 5 * 12.0
    assert eta_seconds({"refs": [300.0]}, {"cells": 3}) is None  # no cell timed yet
    assert eta_seconds({"cells": [10.0]}, {"cells": 2, "attacks": 2}) is None
    assert eta_seconds({"cells": [10.0], "attacks": [2.0, 4.0]}, {"cells": 1, "attacks": 2}) == 16.0


def test_progress_lines_of_a_cell_reach_the_grid_and_everything_reaches_the_log(tmp_path):
    code = "print('[family] tiny base: building'); print('lightning noise'); print('[family] tiny base: done')"
    shown = []
    with open(tmp_path / "log.txt", "wb") as out:
        proc = spawn([sys.executable, "-c", code], subprocess.PIPE)
        assert pump(proc, out, shown.append) == 0
    assert shown == ["[family] tiny base: building", "[family] tiny base: done"]
    assert "lightning noise" in (tmp_path / "log.txt").read_text()


def test_a_cells_evaluation_progress_reaches_the_grids_line(tmp_path):
    """eval.progress's lines in a cell's output (a file: one every every_s and one at the end)
    are printed by the grid too, with the cell's id; the log keeps them as written."""
    import io

    from unlearnbench.eval.progress import Progress

    written = io.StringIO()
    with Progress("tofu-synth forget10", 4, stream=written, every_s=0.0) as p:
        p.update(2)
        p.update(2)
    lines = written.getvalue().splitlines()
    assert len(lines) == 3  # two updates and the closing line
    shown = []
    with open(tmp_path / "log.txt", "wb") as out:
        proc = spawn([sys.executable, "-c", f"print({written.getvalue()!r}, end='')"], subprocess.PIPE)
        assert pump(proc, out, shown.append, "ga__tofu-synth__s0") == 0
    assert shown == [line.replace("[eval] ", "  [eval] ga__tofu-synth__s0: ", 1) for line in lines]
    assert shown[0].startswith("  [eval] ga__tofu-synth__s0: tofu-synth forget10: 2/4 items, ")
    assert shown[-1].startswith("  [eval] ga__tofu-synth__s0: tofu-synth forget10: 4/4 items, ")
    assert all(" items/s, " in line for line in shown)
    assert (tmp_path / "log.txt").read_text() == written.getvalue()
