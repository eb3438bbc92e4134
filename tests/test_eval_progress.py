"""Evaluation progress lines: items done / total and items/s, throttled, on the given stream."""

from __future__ import annotations

import io
import re

from unlearnbench.eval.progress import Progress


def test_lines_in_a_file_are_throttled_and_end_with_the_total():
    out = io.StringIO()  # not a terminal: plain lines, as in a grid cell's log.txt
    with Progress("tofu-synth forget10", 5, stream=out, every_s=3600) as p:
        for _ in range(5):
            p.update()
    lines = out.getvalue().splitlines()
    assert len(lines) == 1  # throttled: only the closing line within the hour
    assert re.fullmatch(r"\[eval\] tofu-synth forget10: 5/5 items, [0-9.]+ items/s, \d+s", lines[0])
    out = io.StringIO()
    with Progress("muse-synth", 3, stream=out, every_s=0) as p:
        p.update(2)
        p.update(1)
    assert [line.split(":")[1].split(",")[0] for line in out.getvalue().splitlines()] == [" 2/3 items", " 3/3 items",
                                                                                          " 3/3 items"]


def test_a_terminal_gets_a_tqdm_bar():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    out = Tty()
    with Progress("wmdp", 4, stream=out) as p:
        p.update(4)
    assert "4/4" in out.getvalue() and "item/s" in out.getvalue()
