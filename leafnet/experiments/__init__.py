"""Reproducing the paper's tables as commands (leafnet_experiment)."""
