"""The README's result tables, copied from the committed leaderboards by a command.

A table in the README sits between two markers that name its source, a leaderboard and the
heading of the section whose first table it is::

    <!-- table: results/default/leaderboard.md "tofu-synth" -->
    | method | ... |
    <!-- end table -->

``unlearnbench readme-tables`` rewrites every such block from its source, and
``--check`` fails when one differs, so the README cannot drift from the results.
"""

from __future__ import annotations

import re
from pathlib import Path

from unlearnbench.errors import UserError

_BLOCK = re.compile(r'(<!-- table: (\S+) "([^"]+)" -->\n)(.*?)(<!-- end table -->)', re.S)


def section_table(leaderboard: Path, heading: str) -> str:
    """The first Markdown table after the heading ``heading`` (any level) of ``leaderboard``."""
    if not leaderboard.is_file():
        raise UserError(f"README names {leaderboard}, which does not exist; fix the marker or run the grid")
    lines = leaderboard.read_text(encoding="utf-8").splitlines()
    start = next((i for i, line in enumerate(lines) if re.fullmatch(r"#+ " + re.escape(heading), line)), None)
    if start is None:
        raise UserError(f"{leaderboard} has no section {heading!r}; fix the README's table marker")
    table: list[str] = []
    for line in lines[start + 1:]:
        if line.startswith("|"):
            table.append(line)
        elif table or line.startswith("#"):
            break
    if not table:
        raise UserError(f"{leaderboard} section {heading!r} has no table")
    return "\n".join(table) + "\n"


def render(text: str, root: Path) -> str:
    """``text`` with every marked table replaced by its source's current table."""
    return _BLOCK.sub(lambda m: m.group(1) + section_table(root / m.group(2), m.group(3)) + m.group(5), text)


def update(readme: Path, check: bool = False) -> bool:
    """Rewrite ``readme``'s tables (or, with ``check``, only compare); True when up to date."""
    text = readme.read_text(encoding="utf-8")
    new = render(text, readme.parent)
    if new == text:
        return True
    if not check:
        from unlearnbench.files import atomic_write_text

        atomic_write_text(readme, new)
    return False
