"""The LEAF network: one ``build_network`` for training and inference, saved and loaded one way.

The network holds the frozen autoencoder (masks in and out), the trainable image encoder and
the backbone with its 8-channel conv_in. The distillation teacher and projector are not part
of it, so the exported model is exactly the SDSeg-sized network.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL
from safetensors.torch import save_file
from torch import nn

from leafnet.atomic import atomic_path, write_json
from leafnet.diffusion import PREDICTION_TYPES, NoiseSchedule, estimate_z0
from leafnet.diffusion.schedule import (
    BETA_END,
    BETA_SCHEDULE,
    BETA_START,
    NUM_TRAIN_TIMESTEPS,
)
from leafnet.errors import LeafnetError
from leafnet.models.autoencoder import (
    ImageEncoder,
    decode_mask,
    encode_mask,
    rgb_layout,
    unrecorded_rgb_layout,
)
from leafnet.models.backbone import Backbone, UNet2DBackbone, widen_conv_in
from leafnet.models.presets import get_preset
from leafnet.models.safetensors_io import read_safetensors
from leafnet.models.weights.store import (
    installed_scale_factor,
    load_autoencoder_weights,
    load_unet_weights,
)

CONFIG_FILE = "network_config.json"
NETWORK_CONFIG_VERSION = 2
WEIGHTS_FILE = "network.safetensors"


@dataclass
class NetworkConfig:
    """Everything needed to rebuild the network, independent of any trainer's defaults.

    ``autoencoder_weights`` / ``unet_weights`` say where initial weights come from when the
    network is first built: a ``leafnet_weights`` name, a folder holding a saved
    AutoencoderKL (a self-trained first stage), or None for the random initialisation a
    preset asks for explicitly.
    """

    preset: str
    prediction_type: str
    autoencoder: dict[str, Any]
    unet: dict[str, Any]
    attention_heads: int
    latent_scale: float
    autoencoder_weights: str | None
    unet_weights: str | None
    mask_channels: int = 1
    schedule: dict[str, Any] = field(default_factory=lambda: {
        "num_train_timesteps": NUM_TRAIN_TIMESTEPS, "beta_start": BETA_START,
        "beta_end": BETA_END, "beta_schedule": BETA_SCHEDULE})
    version: int = NETWORK_CONFIG_VERSION

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def downsampling(self) -> int:
        """The autoencoder's spatial factor f (8 for every preset)."""
        return 2 ** (len(self.autoencoder["block_out_channels"]) - 1)

    def latent_shape(self, image_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The latent shape ``(B, 4, H/f, W/f)`` of images of ``image_shape``."""
        factor = self.downsampling
        return (image_shape[0], self.autoencoder["latent_channels"], image_shape[2] // factor,
                image_shape[3] // factor)

    @classmethod
    def load(cls, folder: Path) -> NetworkConfig:
        """The config saved in a network folder."""
        path = folder / CONFIG_FILE
        if not path.is_file():
            raise LeafnetError(f"{path} is missing; is {folder} a saved leafnet network?")
        return cls.from_json(json.loads(path.read_text()))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NetworkConfig:
        """Read a saved config; files without a version (before it was recorded) are version 0
        and load as they are, except two-channel networks from before version 2, whose spare
        RGB channel meant something else; a file of a newer leafnet is refused rather than
        misread."""
        version = int(data.get("version", 0))
        if version > NETWORK_CONFIG_VERSION:
            raise LeafnetError(f"network config version {version} was written by a newer leafnet "
                               f"(this one reads up to {NETWORK_CONFIG_VERSION}); upgrade leafnet")
        channels = data.get("mask_channels", 1)
        if version < 2 and unrecorded_rgb_layout(channels) != rgb_layout(channels):
            raise LeafnetError(
                f"this network codes two mask channels with the spare RGB channel at -1 (network "
                f"config version {version}); this leafnet repeats the last channel there "
                "(rgb_layout in models/autoencoder.py) and would decode it wrongly: train the "
                "model again")
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


def network_config(preset: str, prediction_type: str = "x0",
                   autoencoder_weights: str | None = None,
                   latent_scale: float | None = None, mask_channels: int = 1) -> NetworkConfig:
    """The config of ``preset`` for masks of ``mask_channels`` channels (the label scheme's);
    a self-trained autoencoder folder and its latent scale (1 / std of mask latents) replace
    the preset's own where given. A pretrained preset uses the
    ``scale_factor`` recorded when its weights were imported (the checkpoint's own)."""
    if prediction_type not in PREDICTION_TYPES:
        raise LeafnetError(f"prediction type must be one of {PREDICTION_TYPES}")
    chosen = get_preset(preset)
    return NetworkConfig(
        preset=chosen.name,
        prediction_type=prediction_type,
        autoencoder=dict(chosen.autoencoder),
        unet=dict(chosen.unet),
        attention_heads=chosen.attention_heads,
        latent_scale=next(v for v in (latent_scale, installed_scale_factor(chosen.pretrained),
                                      chosen.latent_scale) if v is not None),
        autoencoder_weights=autoencoder_weights or chosen.pretrained,
        unet_weights=chosen.pretrained,
        mask_channels=mask_channels,
    )


class LEAFNetwork(nn.Module):
    """Image encoder + frozen mask autoencoder + backbone, and the single-step predictor."""

    def __init__(self, config: NetworkConfig, autoencoder: AutoencoderKL,
                 backbone: Backbone) -> None:
        super().__init__()
        self.config = config
        self.autoencoder = autoencoder.requires_grad_(False).eval()
        self.image_encoder = ImageEncoder(autoencoder, config.latent_scale)
        self.backbone = backbone
        self.schedule = NoiseSchedule(**config.schedule)

    def train(self, mode: bool = True) -> LEAFNetwork:
        super().train(mode)
        self.autoencoder.eval()
        return self

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """Image in [-1, 1], ``(B, 1 or 3, H, W)`` -> image latent z_x (gray is replicated)."""
        if image.shape[1] == 1:
            image = image.expand(-1, 3, -1, -1)
        return self.image_encoder(image)

    def encode_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """Coded masks ``(B, C, H, W)`` -> mask latent z_y (frozen autoencoder)."""
        return encode_mask(self.autoencoder, mask, self.config.latent_scale)

    def decode_mask(self, latent: torch.Tensor) -> torch.Tensor:
        """Mask latent -> the mask channels' probabilities ``(B, C, H, W)`` (the label scheme
        decodes them)."""
        return decode_mask(self.autoencoder, latent, self.config.latent_scale,
                           self.config.mask_channels)

    def denoise(self, image_latent: torch.Tensor, noisy_latent: torch.Tensor,
                timesteps: torch.Tensor) -> torch.Tensor:
        """The backbone's prediction from concat(z_x, z_t) (image latent first)."""
        return self.backbone(torch.cat([image_latent, noisy_latent], dim=1), timesteps)

    def latent_shape(self, image_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The latent shape ``(B, 4, H/f, W/f)`` of images of ``image_shape``."""
        return self.config.latent_shape(image_shape)

    def estimate_mask_latent(self, image: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The single reverse step: z0 estimated from the image and Gaussian noise at t = T-1."""
        image_latent = self.encode_image(image)
        noise = noise.to(image_latent.device, image_latent.dtype)
        timesteps = torch.full((image.shape[0],), self.schedule.last_timestep,
                               device=image.device, dtype=torch.long)
        output = self.denoise(image_latent, noise, timesteps)
        z0 = estimate_z0(self.config.prediction_type, output, noise, timesteps, self.schedule)
        return z0.to(image_latent.dtype)

    @torch.no_grad()
    def predict(self, image: torch.Tensor, generator: torch.Generator | None = None,
                num_samples: int = 1, noise: torch.Tensor | None = None) -> torch.Tensor:
        """One reverse step from Gaussian noise at t = T-1; the probability map, averaged
        over ``num_samples`` noise draws (1 = the paper's single sample). ``noise`` of shape
        ``(num_samples, *latent_shape)`` replaces the draws (for per-image seeding)."""
        shape = self.latent_shape(tuple(image.shape))
        probability = torch.zeros(image.shape[0], self.config.mask_channels, *image.shape[2:],
                                  device=image.device)
        for sample in range(num_samples):
            if noise is not None:
                draw = noise[sample]
            else:
                draw = torch.randn(shape, generator=generator,
                                   device="cpu" if generator is None else generator.device)
            z0 = self.estimate_mask_latent(image, draw)
            probability += self.decode_mask(z0).float()
        return probability / num_samples


def build_network(config: NetworkConfig, initialise: bool = True) -> LEAFNetwork:
    """Build the network for training and for inference alike.

    ``initialise`` loads the initial weights named in the config (pretrained or self-trained;
    a missing file is a clear error naming the command that provides it); without it every
    weight is random and the caller loads a checkpoint on top.
    """
    autoencoder = AutoencoderKL(**config.autoencoder)
    backbone = UNet2DBackbone(config.unet, config.attention_heads)
    if initialise and config.autoencoder_weights is not None:
        autoencoder.load_state_dict(load_autoencoder_weights(config.autoencoder_weights))
    if initialise and config.unet_weights is not None:
        backbone.unet.load_state_dict(load_unet_weights(config.unet_weights))
    backbone.replace_conv_in(widen_conv_in(backbone.conv_in))
    return LEAFNetwork(config, autoencoder, backbone)


def model_folder(fold_folder: Path, checkpoint: str) -> Path:
    """Where a trainer exports the inference model of checkpoint ``best`` or ``final``."""
    return fold_folder / f"model_{checkpoint}"


def exported_model(fold_folder: Path, checkpoint: str = "best") -> Path:
    """The exported inference model ``model_<checkpoint>/`` of a fold folder; without a best
    model (no validation cases) the final one."""
    path = model_folder(fold_folder, checkpoint)
    if not (path / WEIGHTS_FILE).is_file() and checkpoint == "best":
        path = model_folder(fold_folder, "final")
    if not (path / WEIGHTS_FILE).is_file():
        raise LeafnetError(f"{fold_folder} has no exported model ({path.name}/{WEIGHTS_FILE}); "
                           "finish its training first (leafnet_train ... --c), or, for an "
                           "installed model, ask for an archive made with -chk best final")
    return path


def save_network(network: LEAFNetwork, folder: Path) -> None:
    """Write ``network_config.json`` and ``network.safetensors`` into ``folder``, atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / CONFIG_FILE, network.config.to_json())
    state = {key: value.contiguous() for key, value in network.state_dict().items()}
    with atomic_path(folder / WEIGHTS_FILE) as temporary:
        save_file(state, str(temporary))


def load_network(folder: Path, device: str | torch.device = "cpu") -> LEAFNetwork:
    """Rebuild a saved network from its config and load its weights."""
    network = build_network(NetworkConfig.load(folder), initialise=False)
    network.load_state_dict(read_safetensors(folder / WEIGHTS_FILE))
    return network.to(device)
