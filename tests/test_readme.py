"""The README's result tables are the committed leaderboards' (``unlearnbench readme-tables``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from unlearnbench.errors import UserError
from unlearnbench.report.readme import render, update

REPO = Path(__file__).resolve().parents[1]


def test_readme_tables_match_the_committed_leaderboards():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert text.count("<!-- table: ") >= 2  # the default run's table and its robustness table
    assert update(REPO / "README.md", check=True), "README tables are stale: run `make readme`"


def test_render_copies_the_first_table_of_the_named_section(tmp_path):
    (tmp_path / "lb.md").write_text("# L\n\n## a\n\ntext\n\n| x |\n|---|\n| 1 |\n\n## b\n\n| y |\n|---|\n| 2 |\n")
    doc = 'intro\n<!-- table: lb.md "b" -->\n| old |\n<!-- end table -->\nend\n'
    assert render(doc, tmp_path) == 'intro\n<!-- table: lb.md "b" -->\n| y |\n|---|\n| 2 |\n<!-- end table -->\nend\n'
    with pytest.raises(UserError, match="no section 'c'"):
        render(doc.replace('"b"', '"c"'), tmp_path)
