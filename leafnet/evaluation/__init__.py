"""Evaluation: overlap metrics between predicted and reference masks."""
