"""Progress: the family build's lines reach the grid's output; the ETA counts cells only."""

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


def test_epoch_progress_prints_a_bar_with_an_eta(capsys):
    from types import SimpleNamespace

    from unlearnbench.models.progress import EpochProgress

    cb = EpochProgress("[family]", "tiny base", every=0.0)
    cb.on_train_start(None, None)
    for epoch in range(4):
        cb.on_train_epoch_end(SimpleNamespace(current_epoch=epoch, max_epochs=4), None)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and lines[1].startswith("[family] tiny base: [##########..........] epoch 2/4")
    assert "ETA" in lines[1] and lines[-1].endswith("ETA 0m00s")
