"""Benchmarks: the interface (``base``) and one module per benchmark family."""
