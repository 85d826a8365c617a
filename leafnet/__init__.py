"""leafnet: LEAF latent-diffusion segmentation with nnU-Net's ergonomics."""

__version__ = "0.1.0"
