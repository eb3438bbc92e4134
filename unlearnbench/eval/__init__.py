"""Evaluation: the model-facing scoring and generation loops of every benchmark family, the
reference-evaluation cache and progress output; each evaluator runs inside
``parallel.sharded_eval``.

It may import ``data``, ``metrics``, ``models`` and the foundation modules; never
``benchmarks`` (which call into it), the methods, the runner or the report
(tests/test_package_edges.py).
"""
