"""The plain 2D U-Net baseline of ``leafnet_benchmark versus-nnunet``: nnU-Net's PlainConvUNet
(dynamic_network_architectures, random init) trained by leafnet's own loop on exactly what
leafnet's diffusion trainer sees: the same preprocessed arrays at the plans' size, the same
batches, augmentation, AdamW, cosine decay over the budget, EMA and bf16 autocast. Only the
network and its loss (soft Dice + BCE on sigmoid mask channels) differ, so the row answers
what a plain U-Net reaches with leafnet's data and budget.

Its layout follows nnU-Net's 2D rule for the size: 3 x 3 convolutions, two per stage, features
doubling from 32 up to 512, halving until the lowest level is 4 to 8 pixels, instance
normalisation and leaky ReLU. Prediction goes through LEAFPredictor (``UNetMember``), so the
images are resized to and from the plans' size exactly as leafnet's own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model
from torch import nn

from leafnet.atomic import atomic_path, write_json
from leafnet.inference.predictor import LEAFPredictor
from leafnet.models.fold_record import FOLD_PLANS_FILE
from leafnet.models.network import model_folder
from leafnet.preprocessing.plans import Plans
from leafnet.training.loop import Trainer
from leafnet.training.losses import dice_bce_loss
from leafnet.training.tasks.task import RunContext, TrainingTask, mean_dice_and_iou

CONFIG_FILE = "unet_config.json"
WEIGHTS_FILE = "unet.safetensors"


def unet_config(input_channels: int, mask_channels: int, size: tuple[int, int]) -> dict:
    """nnU-Net's 2D layout for an input of ``size``: stages down to 4-8 pixels (at most 7)."""
    stages, side = 1, min(size)
    while side >= 8 and stages < 7:
        side //= 2
        stages += 1
    return {"input_channels": input_channels, "num_classes": mask_channels,
            "features_per_stage": [min(32 * 2 ** i, 512) for i in range(stages)],
            "strides": [1] + [2] * (stages - 1)}


def build_unet(config: dict) -> nn.Module:
    """The PlainConvUNet of ``config`` (see :func:`unet_config`)."""
    from dynamic_network_architectures.architectures.unet import PlainConvUNet

    stages = len(config["features_per_stage"])
    return PlainConvUNet(
        config["input_channels"], stages, config["features_per_stage"], nn.Conv2d, 3,
        config["strides"], 2, config["num_classes"], 2, conv_bias=True,
        norm_op=nn.InstanceNorm2d, norm_op_kwargs={"eps": 1e-5, "affine": True},
        nonlin=nn.LeakyReLU, nonlin_kwargs={"inplace": True})


def save_unet(network: nn.Module, config: dict, folder: Path) -> None:
    """Config and weights; safetensors' ``save_model`` stores the modules PlainConvUNet shares
    between its encoder and decoder once."""
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / CONFIG_FILE, config)
    with atomic_path(folder / WEIGHTS_FILE) as temporary:
        save_model(network, str(temporary))


def load_unet(folder: Path, device: str = "cpu") -> nn.Module:
    network = build_unet(json.loads((folder / CONFIG_FILE).read_text()))
    load_model(network, str(folder / WEIGHTS_FILE), device="cpu")
    return network.to(device).eval()


class UNetMember(nn.Module):
    """A U-Net as a LEAFPredictor member: the noise is ignored, sigmoid mask channels out."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def latent_shape(self, image_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (image_shape[0], 1, 1, 1)

    def forward(self, image: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.network(image).float())


def unet_predictor(fold_folder: Path, device: str = "cpu") -> LEAFPredictor:
    """The best (else final) exported U-Net of a run with the plans it was trained under."""
    folder = model_folder(fold_folder, "best")
    if not (folder / WEIGHTS_FILE).is_file():
        folder = model_folder(fold_folder, "final")
    plans = Plans.load(fold_folder / FOLD_PLANS_FILE, "the U-Net run is incomplete; run again")
    return LEAFPredictor(UNetMember(load_unet(folder, device)), plans, device)


class SegmentationTask(TrainingTask):
    """A U-Net trained with soft Dice + BCE on the coded mask channels."""

    def build(self) -> list[nn.Parameter]:
        run = self.run
        self.config = unet_config(run.plans.num_channels, run.plans.label_scheme.num_channels,
                                  run.plans.target_size)
        self.network = build_unet(self.config).to(run.device)
        return list(self.network.parameters())

    def ema_parameters(self) -> list[nn.Parameter]:
        return list(self.network.parameters())

    def trained_module(self) -> nn.Module:
        return self.network

    def compute_losses(self, module: nn.Module, batch: dict[str, Any],
                       step: int) -> dict[str, torch.Tensor]:
        run = self.run
        image = torch.from_numpy(run.local(batch["image"])).to(run.device)
        mask = torch.from_numpy(run.local(batch["mask"])).to(run.device)
        with run.autocast():
            logits = module(image)
        loss = dice_bce_loss(torch.sigmoid(logits.float()), mask)
        return {"loss": loss}

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        if not len(self.run.val_cases):
            return {}
        self.network.eval()
        probabilities, targets = [], []
        for image, mask in self.run.validation_batches():
            with self.run.autocast():
                logits = self.network(image)
            probabilities += list(torch.sigmoid(logits.float()).cpu().numpy())
            targets += list(mask)
        self.network.train()
        return mean_dice_and_iou(self.run.plans.label_scheme, probabilities, targets)

    def model_state(self) -> dict[str, Any]:
        return {"network": self.network.state_dict()}

    def load_model_state(self, state: dict[str, Any]) -> None:
        self.network.load_state_dict(state["network"])

    def export(self, checkpoint: str) -> Path:
        folder = model_folder(self.run.output, checkpoint)
        save_unet(self.network, self.config, folder)
        return folder


class PlainUNetTrainer(Trainer):
    """The U-Net baseline with the settings of LEAFTrainer_x0_cpu's loop (augmentation, cosine
    decay, bf16 autocast on CPUs that have it); AdamW at 1e-3, usual for a U-Net from
    scratch."""

    learning_rate = 1e-3
    lr_schedule = "cosine"
    augmentation = "full"
    cpu_bf16 = True

    def make_task(self, run: RunContext) -> SegmentationTask:
        return SegmentationTask(run)
