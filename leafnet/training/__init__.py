"""Training: the LEAFTrainer hierarchy, data loading over preprocessed arrays, checkpoints."""
