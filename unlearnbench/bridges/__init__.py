"""Bridges to external evaluation harnesses (optional extras, imported lazily)."""
