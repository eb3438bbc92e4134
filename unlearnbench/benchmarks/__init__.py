"""Benchmarks: the ``Benchmark`` interface and the stand-in mixin (``base``), and one
module per benchmark family.

A benchmark owns everything benchmark-specific (data, evaluation, references, leaderboard
columns, tiny-model recipe), so nothing above it branches on a benchmark's name. It may import
``data``, ``eval``, ``metrics``, ``models``, ``bridges`` and the foundation modules; never the
runner, the methods or the report (tests/test_package_edges.py).
"""
