"""Data: loaders of the real benchmarks' datasets, the stand-in generators (one skeleton:
``standin``), the hub layout writer, the prompt templates, the collators and the ``Encoder``
that writes rows in a model's prompt template.

It imports only the foundation modules (``errors``, ``files``, ``numerics``, ``parallel``,
``registry``): never ``models``, ``eval``, ``benchmarks`` or anything above them
(tests/test_package_edges.py).
"""
