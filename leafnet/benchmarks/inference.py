"""Single-step inference cost of a preset: parameters and per-image time of each part, and the
whole prediction with PyTorch and onnxruntime, with the frozen and the fast mask decoder, beside
nnU-Net v2's default 2D network with and without mirroring, in one run on the same images.

Random weights (timing only): the fast decoder's speed does not depend on its training, and
its Dice is measured by ``leafnet_distill_decoder`` on trained models. nnU-Net's row is the
network nnU-Net plans for a 2D image of this size (dynamic_network_architectures' PlainConvUNet:
7 stages of 32..512 features, two convolutions each, instance norm), run on one tile the size
of the image, once and with its four mirrorings averaged: its predictor's network cost, without
its pre- and post-processing.
"""

from __future__ import annotations

import importlib.util
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from leafnet.model_store.onnx_export import write_onnx
from leafnet.models.fast_decoder import fast_decoder_for
from leafnet.models.network import build_network, network_config
from leafnet.models.presets import get_preset
from leafnet.models.single_step import SingleStep


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


def nnunet_network(size: int, channels: int = 3, classes: int = 2) -> torch.nn.Module | None:
    """nnU-Net v2's default 2D network for ``size`` x ``size`` images, or None without
    dynamic_network_architectures (installed with nnunetv2)."""
    if importlib.util.find_spec("dynamic_network_architectures") is None:
        return None
    from dynamic_network_architectures.architectures.unet import PlainConvUNet

    stages = min(7, int(np.log2(size / 4)) + 1)
    features = [min(32 * 2 ** i, 512) for i in range(stages)]
    return PlainConvUNet(channels, stages, features, torch.nn.Conv2d, 3,
                         [1] + [2] * (stages - 1), 2, classes, 2, conv_bias=True,
                         norm_op=torch.nn.InstanceNorm2d,
                         norm_op_kwargs={"eps": 1e-5, "affine": True},
                         nonlin=torch.nn.LeakyReLU, nonlin_kwargs={"inplace": True})


def _mirrored(network: torch.nn.Module, image: torch.Tensor) -> torch.Tensor:
    """nnU-Net's test-time mirroring in 2D: the mean over the four flips of both axes."""
    total = network(image)
    for axes in ((2,), (3,), (2, 3)):
        total = total + torch.flip(network(torch.flip(image, axes)), axes)
    return total / 4


def _onnx_timings(modules: dict[str, SingleStep], image: torch.Tensor, noise: torch.Tensor,
                  repeats: int) -> tuple[dict[str, float], dict[str, float]]:
    import onnxruntime

    seconds, differences = {}, {}
    with tempfile.TemporaryDirectory() as scratch:
        for name, module in modules.items():
            path = Path(scratch) / f"{name}.onnx"
            differences[name] = write_onnx(module, image, noise, path)
            session = onnxruntime.InferenceSession(str(path),
                                                   providers=["CPUExecutionProvider"])
            inputs = {"image": image.numpy(), "noise": noise.numpy()}
            seconds[name] = _median_seconds(lambda: session.run(None, inputs), repeats)
    return seconds, differences


def benchmark_inference(preset: str, size: int | None = None, batch: int = 1, repeats: int = 3,
                        device: str = "cpu", onnx: bool = True) -> dict[str, Any]:
    """Time encoder, U-Net, decoder and the whole prediction of each backend and decoder with
    random weights (timing only); ``size`` defaults to the preset's planned size."""
    size = size or get_preset(preset).target_size[0]
    network = build_network(network_config(preset), initialise=False).to(device).eval()
    config = network.config
    torch.manual_seed(0)
    fast = fast_decoder_for(config.autoencoder["latent_channels"], config.mask_channels,
                            config.downsampling).to(device).eval()
    modules = {"frozen_decoder": SingleStep(network).eval(),
               "fast_decoder": SingleStep(network, fast).eval()}
    image = torch.rand(batch, 3, size, size, device=device) * 2 - 1
    noise = torch.randn(network.latent_shape(tuple(image.shape)), device=device)
    with torch.no_grad():
        latent = network.encode_image(image)
        timesteps = torch.full((batch,), network.schedule.last_timestep, device=device)
        parts = {
            "image_encoder": lambda: network.encode_image(image),
            "unet": lambda: network.denoise(latent, latent, timesteps),
            "decoder": lambda: network.decode_mask(latent),
            "fast_decoder": lambda: fast(latent),
            "whole_prediction": lambda: modules["frozen_decoder"](image, noise),
            "whole_prediction_fast_decoder": lambda: modules["fast_decoder"](image, noise),
        }
        seconds = {name: _median_seconds(part, repeats) / batch for name, part in parts.items()}
        nnunet = nnunet_network(size)
        if nnunet is not None:
            nnunet = nnunet.to(device).eval()
            seconds["nnunet_2d"] = _median_seconds(lambda: nnunet(image), repeats) / batch
            seconds["nnunet_2d_mirroring"] = _median_seconds(
                lambda: _mirrored(nnunet, image), repeats) / batch
    report: dict[str, Any] = {
        "preset": preset, "image_size": size, "batch": batch, "device": device,
        "torch_threads": torch.get_num_threads(), "weights": "random (timing only)",
        "parameters": {
            "image_encoder": _parameters(network.image_encoder),
            "unet": _parameters(network.backbone),
            "autoencoder_frozen": _parameters(network.autoencoder),
            "decoder": _parameters(network.autoencoder.decoder)
            + _parameters(network.autoencoder.post_quant_conv),
            "fast_decoder": _parameters(fast),
            "inference_network_total": _parameters(network),
        },
        "seconds_per_image": seconds,
        "parts_sum_vs_whole": sum(seconds[k] for k in ("image_encoder", "unet", "decoder"))
        / seconds["whole_prediction"],
        "nnunet": "nnU-Net v2 default 2D network" if nnunet is not None
        else "skipped: dynamic_network_architectures (nnunetv2) is not installed",
    }
    if onnx and device == "cpu" and importlib.util.find_spec("onnxruntime") is not None:
        onnx_seconds, differences = _onnx_timings(modules, image.cpu(), noise.cpu(), repeats)
        seconds["onnxruntime"] = onnx_seconds["frozen_decoder"] / batch
        seconds["onnxruntime_fast_decoder"] = onnx_seconds["fast_decoder"] / batch
        report["onnx_max_abs_difference_vs_torch"] = differences
    else:
        report["onnxruntime"] = "skipped: needs -device cpu and onnxruntime (pip install -e " \
            "'.[onnx]')"
    whole = seconds["whole_prediction"]
    report["speedup_vs_torch"] = {
        name: whole / seconds[name] for name in (
            "whole_prediction_fast_decoder", "onnxruntime", "onnxruntime_fast_decoder",
            "nnunet_2d", "nnunet_2d_mirroring") if name in seconds}
    return report
