"""Model presets: the autoencoder and U-Net configurations, where their weights come from, and
the learning rate that suits them.

- ``paper``: the kl-f8 autoencoder and the LSUN-churches LDM-KL-8 U-Net (192 base channels,
  multipliers 1,2,2,4,4, two res blocks, attention at downsampling 1,2,4,8 with 8 heads,
  scale-shift norm, res-block up/down sampling), both from ``leafnet_weights fetch
  ldm-kl8-churches``; fine-tuned at 4e-5 as in the paper. For GPUs.
- ``small``: a 2.7 M-parameter autoencoder trained on the dataset first (LDM's first stage) and a
  15.7 M-parameter U-Net from scratch; trains on a 2-core CPU in minutes. Its autoencoder is
  16 channels wide at full resolution: the image encoder (a trainable copy) runs at full
  resolution on every step and was most of a step at 32 channels (issue 13: image encoder
  forward + backward 1.86 -> 0.74 s, mask decoder 1.90 -> 0.49 s at batch 4, 256 px). It is
  planned at 128 x 128 by default: a diffusion step takes 0.60 s there against 1.71 s at 256 px,
  and Kvasir-SEG's test masks taken down to 128 px and back lose 0.1% Dice.
- ``tiny``: the same shapes, minimal widths, for tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from leafnet.errors import LeafnetError

KL_F8_SCALE = 0.18215


def _autoencoder(channels: tuple[int, ...], layers: int, groups: int) -> dict[str, Any]:
    return {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D"] * len(channels),
        "up_block_types": ["UpDecoderBlock2D"] * len(channels),
        "block_out_channels": list(channels),
        "layers_per_block": layers,
        "latent_channels": 4,
        "norm_num_groups": groups,
    }


def _unet(channels: tuple[int, ...], attention: tuple[bool, ...], layers: int, groups: int,
          resnet_updown: bool) -> dict[str, Any]:
    """A UNet2DModel config (4 latent channels in; widened to 8 when the network is built)."""
    down, up = [], []
    for level, attend in enumerate(attention):
        last = level == len(attention) - 1
        if attend:
            down.append("AttnDownBlock2D")
        else:
            down.append("ResnetDownsampleBlock2D" if resnet_updown and not last else "DownBlock2D")
    for level, attend in reversed(list(enumerate(attention))):
        if attend:
            up.append("AttnUpBlock2D")
        else:
            up.append("ResnetUpsampleBlock2D" if resnet_updown and level > 0 else "UpBlock2D")
    return {
        "in_channels": 4,
        "out_channels": 4,
        "block_out_channels": list(channels),
        "down_block_types": down,
        "up_block_types": up,
        "layers_per_block": layers,
        "norm_num_groups": groups,
        "attn_norm_num_groups": groups,
        "resnet_time_scale_shift": "scale_shift" if resnet_updown else "default",
        "downsample_type": "resnet" if resnet_updown else "conv",
        "upsample_type": "resnet" if resnet_updown else "conv",
        "flip_sin_to_cos": True,
        "freq_shift": 0,
        "attention_head_dim": None,
    }


@dataclass(frozen=True)
class Preset:
    """A model preset.

    ``pretrained`` names the ``leafnet_weights`` entry holding the autoencoder and U-Net, or is
    None when the preset asks for random initialisation explicitly (the autoencoder is then
    trained on the dataset first, and the U-Net from scratch). ``target_size`` is the image size
    planning chooses for the preset unless told otherwise. ``projector_hidden`` is the width of
    the alignment MLP's hidden layers (the paper's 2048; the tiny preset's is minimal too).
    """

    name: str
    autoencoder: dict[str, Any]
    unet: dict[str, Any]
    attention_heads: int
    latent_scale: float
    learning_rate: float
    pretrained: str | None
    description: str = ""
    target_size: tuple[int, int] = (256, 256)
    projector_hidden: int = 2048
    extra: dict[str, Any] = field(default_factory=dict)


PRESETS: dict[str, Preset] = {
    "paper": Preset(
        name="paper",
        autoencoder=_autoencoder((128, 256, 512, 512), layers=2, groups=32),
        unet=_unet((192, 384, 384, 768, 768), (True, True, True, True, False), layers=2,
                   groups=32, resnet_updown=True),
        attention_heads=8,
        latent_scale=KL_F8_SCALE,
        learning_rate=4e-5,
        pretrained="ldm-kl8-churches",
        description="kl-f8 autoencoder + LSUN-churches LDM-KL-8 U-Net (pretrained; for GPUs)",
    ),
    "small": Preset(
        name="small",
        autoencoder=_autoencoder((16, 32, 64, 128), layers=1, groups=8),
        unet=_unet((64, 128, 256), (False, False, True), layers=2, groups=32,
                   resnet_updown=False),
        attention_heads=8,
        latent_scale=1.0,
        learning_rate=3e-4,
        pretrained=None,
        description="2.7 M autoencoder trained on the dataset + 15.7 M U-Net from scratch "
        "(trains on a CPU)",
        target_size=(128, 128),
    ),
    "tiny": Preset(
        name="tiny",
        autoencoder=_autoencoder((8, 8, 16, 16), layers=1, groups=4),
        unet=_unet((16, 32), (False, True), layers=1, groups=4, resnet_updown=False),
        attention_heads=2,
        latent_scale=1.0,
        learning_rate=1e-3,
        pretrained=None,
        description="minimal widths, random initialisation (tests)",
        projector_hidden=64,
    ),
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise LeafnetError(f"unknown preset '{name}'; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]
