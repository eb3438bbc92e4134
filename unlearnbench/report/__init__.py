"""Report: results read back into tables, leaderboards (Markdown, CSV, LaTeX), plots, the static
site, published rows and the comparison of two results directories.

It reads results from disk only; it may import ``attacks`` (their column names) and the
foundation modules, nothing that trains or evaluates (tests/test_package_edges.py).
"""
