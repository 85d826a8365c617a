"""Pretrained weights: where they live (LEAFNET_WEIGHTS), how to get and convert them."""
