"""Training: one loop (``loop.Trainer``: optimizer, LR schedule, EMA, DDP, checkpoints, log,
validation cadence) drives a task (``tasks/``: the LEAF diffusion task with its optional
feature alignment, the first-stage autoencoder). Named trainer classes (``trainers/``, found by
``registry.find_trainer``) set class attributes and build their task."""
