"""Single-step inference cost of a preset: parameters and per-image time of each part, and the
whole prediction with PyTorch and onnxruntime, with the frozen and the fast mask decoder, beside
nnU-Net v2's default 2D network with and without mirroring, in one run on the same images.

Random weights (timing only): the fast decoder's speed does not depend on its training, and
its Dice is measured by ``leafnet_distill_decoder`` on trained models. nnU-Net's row is the
network nnU-Net plans for a 2D image of this size (dynamic_network_architectures' PlainConvUNet:
7 stages of 32..512 features, two convolutions each, instance norm), run on one tile the size
of the image, once and with its four mirrorings averaged: the network's share. The
``nnunet_predictor`` rows are nnU-Net's whole ``nnUNetPredictor`` on the same images, planned by
nnU-Net itself for their size (``nnunet_predictor_half``): preprocessing, sliding window, export
to the original size.
"""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from leafnet.atomic import write_json
from leafnet.benchmarks.plain_unet import build_unet, unet_config
from leafnet.errors import LeafnetError
from leafnet.imageio import write_image, write_label
from leafnet.model_store.onnx_export import write_onnx
from leafnet.models.fast_decoder import fast_decoder_for
from leafnet.models.network import build_network, network_config
from leafnet.models.presets import get_preset
from leafnet.models.single_step import SingleStep
from leafnet.utilities.processes import (
    STALL_MINUTES,
    ChildStalled,
    python_main_command,
    run_watched,
)

NNUNET_PLANNING_CASES = 4


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
    """nnU-Net v2's default 2D network for ``size`` x ``size`` images (plain_unet.py), or None
    without dynamic_network_architectures (installed with nnunetv2)."""
    if importlib.util.find_spec("dynamic_network_architectures") is None:
        return None
    return build_unet(unet_config(channels, classes, (size, size)))


def _mirrored(network: torch.nn.Module, image: torch.Tensor) -> torch.Tensor:
    """nnU-Net's test-time mirroring in 2D: the mean over the four flips of both axes."""
    total = network(image)
    for axes in ((2,), (3,), (2, 3)):
        total = total + torch.flip(network(torch.flip(image, axes)), axes)
    return total / 4


def nnunet_predictor_seconds(images: torch.Tensor, repeats: int,
                             device: str) -> dict[str, Any]:
    """nnU-Net v2's whole predictor on ``images`` (``(B, 3, H, W)`` in [-1, 1], saved as 8-bit
    PNG), planned by nnU-Net for this size, random weights; run by ``nnunet_predictor_half``
    in its own process on a scratch dataset."""
    size = tuple(images.shape[-2:])
    pixels = ((images.cpu().numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        folder = root / "raw" / "Dataset001_Timing"
        for subset in ("imagesTr", "labelsTr", "imagesTs"):
            (folder / subset).mkdir(parents=True)
        label = np.zeros(size, dtype=np.uint8)
        label[size[0] // 4:3 * size[0] // 4, size[1] // 4:3 * size[1] // 4] = 1
        for index in range(NNUNET_PLANNING_CASES):
            write_image(folder / "imagesTr" / f"train{index}_0000.png",
                        rng.integers(0, 256, (3, *size), dtype=np.uint8))
            write_label(folder / "labelsTr" / f"train{index}.png", label)
        for index, image in enumerate(pixels):
            write_image(folder / "imagesTs" / f"case{index}_0000.png", image)
        write_json(folder / "dataset.json", {
            "channel_names": {"0": "R", "1": "G", "2": "B"},
            "labels": {"background": 0, "foreground": 1},
            "numTraining": NNUNET_PLANNING_CASES, "file_ending": ".png"})
        env = {**os.environ, "nnUNet_raw": str(root / "raw"),
               "nnUNet_preprocessed": str(root / "preprocessed"),
               "nnUNet_results": str(root / "results")}
        report = root / "report.json"
        log = root / "nnunet.log"
        try:
            status = run_watched(
                python_main_command(
                    "leafnet.benchmarks.nnunet_predictor_half", "--dataset-id", "1",
                    "--test-images", str(folder / "imagesTs"), "--output",
                    str(root / "predictions"), "--report", str(report), "--repeats",
                    str(repeats), "--device", device),
                log, STALL_MINUTES * 60, env=env)
        except ChildStalled as error:  # the log goes with the scratch folder: keep its end
            raise LeafnetError(f"timing nnU-Net's predictor stopped: {error}; the end of its "
                               f"output:\n{log.read_text(errors='replace')[-2000:]}") from None
        if status != 0:
            output = log.read_text(errors="replace")[-2000:]
            raise LeafnetError(f"timing nnU-Net's predictor failed (exit {status}): {output}")
        return json.loads(report.read_text())


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
    predictor: dict[str, Any] | str = "skipped: nnunetv2 is not installed (pip install -e " \
        "'.[bench]')"
    if importlib.util.find_spec("nnunetv2") is not None:
        predictor = nnunet_predictor_seconds(image, repeats, device)
        seconds["nnunet_predictor"] = predictor["seconds_per_image"]["no_mirroring"]
        seconds["nnunet_predictor_mirroring"] = predictor["seconds_per_image"]["mirroring"]
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
        "nnunet_predictor": predictor,
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
            "nnunet_2d", "nnunet_2d_mirroring", "nnunet_predictor",
            "nnunet_predictor_mirroring") if name in seconds}
    return report
