"""Bridges to external evaluation harnesses (optional extras, imported lazily).

A bridge may import ``data``, ``eval`` and the foundation modules only
(tests/test_package_edges.py).
"""
