"""Single-step inference cost of a preset: parameters and per-image time of each part."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from leafnet.models.network import build_network, network_config


def _median_seconds(function: Callable[[], object], repeats: int) -> float:
    function()
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def _parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def benchmark_inference(preset: str, size: int = 256, batch: int = 1, repeats: int = 3,
                        device: str = "cpu") -> dict[str, Any]:
    """Time encoder, U-Net, decoder and the whole prediction with random weights (timing only)."""
    network = build_network(network_config(preset), initialise=False).to(device).eval()
    image = torch.rand(batch, 3, size, size, device=device) * 2 - 1
    generator = torch.Generator(device).manual_seed(0)
    with torch.no_grad():
        latent = network.encode_image(image)
        timesteps = torch.full((batch,), network.schedule.last_timestep, device=device)
        parts = {
            "image_encoder": lambda: network.encode_image(image),
            "unet": lambda: network.denoise(latent, latent, timesteps),
            "decoder": lambda: network.decode_mask(latent),
            "whole_prediction": lambda: network.predict(image, generator),
        }
        seconds = {name: _median_seconds(part, repeats) / batch for name, part in parts.items()}
    return {
        "preset": preset,
        "image_size": size,
        "batch": batch,
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "parameters": {
            "image_encoder": _parameters(network.image_encoder),
            "unet": _parameters(network.backbone),
            "autoencoder_frozen": _parameters(network.autoencoder),
            "decoder": _parameters(network.autoencoder.decoder)
            + _parameters(network.autoencoder.post_quant_conv),
            "inference_network_total": _parameters(network),
        },
        "seconds_per_image": seconds,
        "parts_sum_vs_whole": sum(seconds[k] for k in ("image_encoder", "unet", "decoder"))
        / seconds["whole_prediction"],
    }
