"""Which items of an evaluation are its validation part and which its test part.

A quarter of an evaluation's items (by a hash of their index: stand-ins generate items in
patterns, e.g. attribute by attribute, that "every 4th item" would follow) are its validation
part, on which a sweep selects; the rest are the test part the leaderboard reports. Here in
``data`` so that evaluators and benchmarks both read it without importing each other.
"""

from __future__ import annotations


def is_validation(index: int) -> bool:
    """Fibonacci hashing of the item index: the top bits of ``index · 2^32/φ`` are well mixed."""
    return ((int(index) * 0x9E3779B1) & 0xFFFFFFFF) >> 30 == 0  # the top 2 bits: one item in 4


def in_part(record: dict, part: str | None) -> bool:
    """Whether an evaluation record is in ``part`` ("validation", "test", or None: all)."""
    if part is None:
        return True
    validation = is_validation(record.get("index", 0))
    return validation if part == "validation" else not validation
