"""Trainer classes, found by name (see leafnet.training.registry)."""
