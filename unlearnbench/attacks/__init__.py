"""Robustness attacks run on an unlearned model before re-evaluating it (relearning, quantisation).

An attack takes a model directory and writes an attacked one; it may import ``models`` and the
foundation modules (``errors``, ``files``, ``numerics``, ``parallel``, ``registry``), nothing of the
runner or the report (tests/test_package_edges.py).
"""
