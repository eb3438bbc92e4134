"""Runner: grids parsed into cells, the process-per-cell resumable execution, the training
recipe of one cell (``train.unlearn``: method + data + Trainer), references, attacks,
evaluation during unlearning, memory planning and provenance.

It is the top layer under the CLI and may import every other package
(tests/test_package_edges.py).
"""
