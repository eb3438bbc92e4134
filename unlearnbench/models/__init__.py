"""Models: the model specs and their registry, loading, the tiny model family
(built from a stand-in's recipe) and the shrunk real models of a rehearsal.

It may import ``data`` (the tiny family's training text is encoded with its ``Encoder``),
``benchmarks`` (only the rehearsal, which fine-tunes on a benchmark's stand-in) and the
foundation modules (tests/test_package_edges.py).
"""
