"""Inference: the single-step predictor mapped back to the original images, and its command."""
