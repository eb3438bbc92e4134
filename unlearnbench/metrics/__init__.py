"""Metrics: pure functions from scores and generations to the numbers a leaderboard reports
(TOFU, MUSE, MIA, copyright, generation), plus the cost tracker and per-item reducers.

It imports only the foundation modules (tests/test_package_edges.py).
"""
