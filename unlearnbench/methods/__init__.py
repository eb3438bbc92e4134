"""Unlearning methods: one LightningModule per method (``base.UnlearningMethod`` holds the shared
training loop) and their losses.

The methods know nothing of benchmarks, strategies, loggers or results: the runner
(``runner.train``) builds the data and the Trainer around them. They may import ``data``,
``models``, ``metrics`` and the foundation modules only (tests/test_package_edges.py).
"""
