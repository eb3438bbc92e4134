"""Robustness attacks run on an unlearned model before re-evaluating it (relearning, quantisation)."""
