"""LDM's first stage, trained on the dataset: a KL autoencoder that codes the target masks
(and, unless told otherwise, the images) for presets without a pretrained one.

L1 reconstruction plus ``kl_weight`` x KL on random crops, validated by the Dice of the
reconstructed validation masks. Masks of several classes add ``dice_weight`` x the soft Dice
loss of each RGB channel: with L1 alone a first stage learns one binary mask (three equal
channels) quickly but several region channels hardly at all (docs/results.md). Like the L1,
the Dice term counts the channel that two masks repeat in B twice (``rgb_layout``), which
favours the weaker region. One class keeps L1 alone, so binary first stages train exactly as
before.

Where the preset ships a mask autoencoder (models/shipped_autoencoder.py) and the trainer asks
for it, training starts from the shipped weights and has a goal: it measures the reconstruction
Dice of the dataset's own training masks (per class, on up to ``ceiling_cases`` of them) before
the first step and every ``check_every`` steps, and stops as soon as every class reaches
``target_dice`` (with no step at all when the shipped weights already do). The steps or minutes
given are then only a cap. The ceiling is the most any diffusion model on this first stage can
score, so it is printed and recorded.

The export, at the end only, is the EMA autoencoder, the latent scale 1 / std of the training
masks' latents and the measured ceiling, where the diffusion task of the same dataset, plans,
preset and fold finds them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from torch import nn

from leafnet.atomic import write_json
from leafnet.errors import LeafnetError
from leafnet.models.autoencoder import (
    decode_mask,
    encode_mask,
    mask_to_rgb,
    rgb_layout,
    rgb_to_mask,
)
from leafnet.models.shipped_autoencoder import (
    ceiling_by_class,
    describe_ceiling,
    load_shipped_autoencoder,
    shipped_folder,
)
from leafnet.models.fold_record import FirstStage, model_digest
from leafnet.training.losses import soft_dice_loss
from leafnet.training.tasks.task import (
    RunContext,
    TrainingTask,
    mean_dice_and_iou,
    step_generator,
)


def rgb_dice_loss(reconstruction: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """Soft Dice loss of each RGB channel of reconstructed masks against the coded masks
    (both in [-1, 1]): a mask channel that ``rgb_layout`` repeats counts as often as it is
    repeated, as in the L1 term."""
    return soft_dice_loss(rgb_to_mask(reconstruction, 3), rgb_to_mask(inputs, 3))


class Reconstruction(nn.Module):
    """Encode, sample the posterior with the step's generator, decode; and the KL term."""

    def __init__(self, autoencoder: AutoencoderKL) -> None:
        super().__init__()
        self.autoencoder = autoencoder

    def forward(self, inputs: torch.Tensor, generator: torch.Generator):
        posterior = self.autoencoder.encode(inputs).latent_dist
        noise = torch.randn(posterior.mean.shape, generator=generator).to(inputs.device)
        latent = posterior.mean + posterior.std * noise
        return self.autoencoder.decode(latent).sample, posterior.kl().mean()


FIRST_STAGE_RECORD = "latent_scale.json"


class AutoencoderTask(TrainingTask):
    def __init__(self, run: RunContext, kl_weight: float, crop_size: int, scale_cases: int,
                 train_on_images: bool, dice_weight: float, initial_weights: str | None = None,
                 target_dice: float | None = None, ceiling_cases: int = 64,
                 check_every: int = 50) -> None:
        super().__init__(run)
        if run.preset.pretrained is not None:
            raise LeafnetError(f"the '{run.preset.name}' preset uses the pretrained autoencoder "
                               f"of '{run.preset.pretrained}'; there is no first stage to train")
        self.kl_weight, self.crop_size, self.scale_cases, self.train_on_images = (
            kl_weight, crop_size, scale_cases, train_on_images)
        scheme = run.plans.label_scheme
        self.dice_weight = 0.0 if scheme.is_binary else dice_weight
        self.mask_channels = scheme.num_channels
        if initial_weights not in (None, "shipped"):
            raise LeafnetError(f"initial_weights must be None or 'shipped', not "
                               f"'{initial_weights}'")
        self.initial_weights, self.target_dice = initial_weights, target_dice
        self.ceiling_cases, self.check_every = ceiling_cases, check_every
        self.ceiling: dict[str, float] = {}

    def build(self) -> list[nn.Parameter]:
        run = self.run
        shipped = (load_shipped_autoencoder(run.preset.name, run.device)
                   if self.initial_weights == "shipped" else None)
        if shipped is not None:
            self.autoencoder = shipped.train()
            run.log(f"first stage starts from the shipped '{run.preset.name}' mask autoencoder")
        else:
            if self.initial_weights == "shipped":
                run.log(f"the '{run.preset.name}' preset ships no mask autoencoder: the first "
                        "stage starts from random weights")
            self.autoencoder = AutoencoderKL(**run.preset.autoencoder).to(run.device)
        return list(self.autoencoder.parameters())

    @torch.no_grad()
    def measure_ceiling(self) -> dict[str, float]:
        """Mean reconstruction Dice per class of up to ``ceiling_cases`` training masks."""
        self.autoencoder.eval()
        self.ceiling = ceiling_by_class(self.autoencoder, self.run.plans.label_scheme,
                                        self.run.training_masks(self.ceiling_cases),
                                        self.run.device)
        self.autoencoder.train()
        return self.ceiling

    def goal_due(self, done: int) -> bool:
        """Before the first step and every ``check_every`` steps, when there is a target."""
        return self.target_dice is not None and done % self.check_every == 0

    def goal_reached(self, done: int) -> bool:
        """Whether the training masks' reconstruction Dice reached ``target_dice`` for every
        class."""
        ceiling = self.measure_ceiling()
        reached = min(ceiling.values()) >= self.target_dice
        scheme = self.run.plans.label_scheme
        cases = min(self.ceiling_cases, len(self.run.train_cases))
        self.run.log(f"reconstruction Dice of {cases} training masks after {done} "
                     f"steps: {describe_ceiling(scheme, ceiling)} (goal {self.target_dice:g}"
                     f"{': reached' if reached else ''})")
        return reached

    def ema_parameters(self) -> list[nn.Parameter]:
        return list(self.autoencoder.parameters())

    def trained_module(self) -> nn.Module:
        return Reconstruction(self.autoencoder)

    def _crop(self, array: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        height, width = array.shape[-2:]
        size = min(self.crop_size, height, width)
        top, left = rng.integers(0, height - size + 1), rng.integers(0, width - size + 1)
        return array[..., top:top + size, left:left + size]

    def compute_losses(self, module: nn.Module, batch: dict[str, Any],
                       step: int) -> dict[str, torch.Tensor]:
        run = self.run
        rng = np.random.default_rng([run.seed, step, 1])
        inputs = mask_to_rgb(torch.from_numpy(run.local(batch["mask"]))).numpy()
        num_masks = len(inputs)
        if self.train_on_images:
            image = run.local(batch["image"])
            inputs = np.concatenate([inputs, np.repeat(image, 3 // image.shape[1], axis=1)])
        inputs = torch.from_numpy(np.stack([self._crop(a, rng) for a in inputs])).to(run.device)
        with run.autocast():
            reconstruction, kl = module(inputs, step_generator(run.seed, step, salt=1))
        reconstruction = reconstruction.float()
        reconstruction_loss = F.l1_loss(reconstruction, inputs)
        losses = {"reconstruction": reconstruction_loss, "kl": kl.float(),
                  "loss": reconstruction_loss + self.kl_weight * kl.float()}
        if self.dice_weight:
            dice = rgb_dice_loss(reconstruction[:num_masks], inputs[:num_masks])
            losses["dice"] = dice
            losses["loss"] = losses["loss"] + self.dice_weight * dice
        return losses

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Dice and IoU of the reconstructed validation masks."""
        if not len(self.run.val_cases):
            return {}
        self.autoencoder.eval()
        probabilities, targets = [], []
        for _, mask in self.run.validation_batches():
            latent = encode_mask(self.autoencoder, torch.from_numpy(mask).to(self.run.device), 1.0)
            probabilities += list(decode_mask(self.autoencoder, latent, 1.0,
                                              mask.shape[1]).cpu().numpy())
            targets += list(mask)
        self.autoencoder.train()
        return mean_dice_and_iou(self.run.plans.label_scheme, probabilities, targets)

    def settings(self) -> dict[str, Any]:
        return {"initial_weights": self.initial_weights, "target_dice": self.target_dice}

    def first_stage_identity(self) -> FirstStage | None:
        """The shipped weights that fine-tuning starts from (a leafnet that ships others makes
        another experiment); None from random weights."""
        if self.initial_weights != "shipped":
            return None
        preset = self.run.preset.name
        folder = shipped_folder(preset)
        return FirstStage(f"shipped/{preset}", "shipped",
                          None if folder is None else model_digest(folder), None)

    def model_state(self) -> dict[str, Any]:
        return {"autoencoder_config": dict(self.autoencoder.config),
                "autoencoder": self.autoencoder.state_dict()}

    def load_model_state(self, state: dict[str, Any]) -> None:
        self.autoencoder.load_state_dict(state["autoencoder"])

    @torch.no_grad()
    def export(self, checkpoint: str) -> Path | None:
        """Save the (EMA) autoencoder, 1 / std of the training masks' latents and the training
        masks' reconstruction Dice (at the end only: the diffusion trainers use the final first
        stage)."""
        if checkpoint != "final":
            return None
        run = self.run
        self.autoencoder.eval()
        latents = []
        for index in range(min(self.scale_cases, len(run.train_cases))):
            mask = torch.from_numpy(run.train_cases.image_and_mask(index)[1][None])
            latents.append(encode_mask(self.autoencoder, mask.to(run.device), 1.0).cpu())
        scale = float(1 / torch.cat(latents).std())
        ceiling = self.measure_ceiling()
        folder = run.output / "autoencoder"
        self.autoencoder.save_pretrained(folder, safe_serialization=True)
        write_json(folder / FIRST_STAGE_RECORD, {
            "latent_scale": scale, "label_handling": run.plans.label_scheme.coding,
            "rgb_layout": rgb_layout(self.mask_channels),
            "initial_weights": self.initial_weights, "target_dice": self.target_dice,
            "reconstruction_dice": ceiling,
            "reconstruction_cases": min(self.ceiling_cases, len(run.train_cases))})
        run.log(f"first stage saved to {folder} (latent scale {scale:.4f}; reconstruction "
                f"Dice of the training masks {describe_ceiling(run.plans.label_scheme, ceiling)}"
                ": the ceiling of every diffusion model trained on it)")
        return folder
