"""Converting the original CompVis latent-diffusion checkpoints into diffusers' layout.

The autoencoder goes through diffusers' own converter. The unconditional LDM U-Net
(``ldm.modules.diffusionmodules.openaimodel.UNetModel``) has no converter in the diffusers
package, so the key mapping is ours: ``input_blocks`` / ``middle_block`` / ``output_blocks``
onto ``down_blocks`` / ``mid_block`` / ``up_blocks`` of UNet2DModel, ResBlocks onto
ResnetBlock2D, and each legacy AttentionBlock's fused ``qkv`` (ordered head by head:
q, k, v of head 0, then of head 1, ...) split into ``to_q``, ``to_k``, ``to_v``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

from leafnet.errors import LeafnetError

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
_RESNET_PARTS = {
    "in_layers.0": "norm1", "in_layers.2": "conv1", "emb_layers.1": "time_emb_proj",
    "out_layers.0": "norm2", "out_layers.3": "conv2", "skip_connection": "conv_shortcut",
}


@dataclass
class Conversion:
    """The converted tensors and the source keys they used."""

    state: dict[str, torch.Tensor] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)


def strip_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def ema_unet_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The EMA U-Net weights of an LDM checkpoint under the raw U-Net's names.

    LitEma stores ``model.diffusion_model.X`` as ``model_ema.diffusion_modelX`` with every dot
    removed."""
    raw = strip_prefix(state, UNET_PREFIX)
    missing = [key for key in raw if "model_ema." + f"diffusion_model.{key}".replace(".", "")
               not in state]
    if missing:
        raise LeafnetError(f"the checkpoint has no EMA copy of {len(missing)} U-Net weights "
                           f"(e.g. {missing[0]}); import the raw weights (without --ema)")
    return {key: state["model_ema." + f"diffusion_model.{key}".replace(".", "")] for key in raw}


def _copy(source: dict[str, torch.Tensor], old: str, new: str, out: Conversion) -> None:
    for suffix in ("weight", "bias"):
        key = f"{old}.{suffix}"
        if key in source:
            out.state[f"{new}.{suffix}"] = source[key]
            out.used.add(key)


def _resnet(source: dict[str, torch.Tensor], old: str, new: str, out: Conversion) -> None:
    for old_part, new_part in _RESNET_PARTS.items():
        _copy(source, f"{old}.{old_part}", f"{new}.{new_part}", out)


def _attention(source: dict[str, torch.Tensor], old: str, new: str, heads: int,
               out: Conversion) -> None:
    _copy(source, f"{old}.norm", f"{new}.group_norm", out)
    weight, bias = source[f"{old}.qkv.weight"], source[f"{old}.qkv.bias"]
    channels = weight.shape[1]
    per_head = weight[..., 0].reshape(heads, 3, channels // heads, channels)
    bias_per_head = bias.reshape(heads, 3, channels // heads)
    for index, name in enumerate(("to_q", "to_k", "to_v")):
        out.state[f"{new}.{name}.weight"] = per_head[:, index].reshape(channels, channels)
        out.state[f"{new}.{name}.bias"] = bias_per_head[:, index].reshape(channels)
    out.used |= {f"{old}.qkv.weight", f"{old}.qkv.bias"}
    out.state[f"{new}.to_out.0.weight"] = source[f"{old}.proj_out.weight"][..., 0]
    out.state[f"{new}.to_out.0.bias"] = source[f"{old}.proj_out.bias"]
    out.used |= {f"{old}.proj_out.weight", f"{old}.proj_out.bias"}


def convert_ldm_unet(source: dict[str, torch.Tensor], config: dict[str, Any],
                     heads: int) -> Conversion:
    """Map an openaimodel UNetModel state dict (prefix already stripped) onto UNet2DModel.

    ``config`` is the UNet2DModel config (block types tell where attention and res-block
    up/down sampling are) and ``heads`` the number of attention heads of the original.
    """
    out = Conversion()
    levels = len(config["block_out_channels"])
    layers = config["layers_per_block"]
    attends = ["Attn" in block for block in config["down_block_types"]]
    _copy(source, "time_embed.0", "time_embedding.linear_1", out)
    _copy(source, "time_embed.2", "time_embedding.linear_2", out)
    _copy(source, "input_blocks.0.0", "conv_in", out)
    index = 1
    for level in range(levels):
        for layer in range(layers):
            _resnet(source, f"input_blocks.{index}.0", f"down_blocks.{level}.resnets.{layer}", out)
            if attends[level]:
                _attention(source, f"input_blocks.{index}.1",
                           f"down_blocks.{level}.attentions.{layer}", heads, out)
            index += 1
        if level < levels - 1:
            _resnet(source, f"input_blocks.{index}.0", f"down_blocks.{level}.downsamplers.0", out)
            index += 1
    _resnet(source, "middle_block.0", "mid_block.resnets.0", out)
    _attention(source, "middle_block.1", "mid_block.attentions.0", heads, out)
    _resnet(source, "middle_block.2", "mid_block.resnets.1", out)
    index = 0
    for up, level in enumerate(reversed(range(levels))):
        for layer in range(layers + 1):
            _resnet(source, f"output_blocks.{index}.0", f"up_blocks.{up}.resnets.{layer}", out)
            part = 1
            if attends[level]:
                _attention(source, f"output_blocks.{index}.1",
                           f"up_blocks.{up}.attentions.{layer}", heads, out)
                part = 2
            if layer == layers and level > 0:
                _resnet(source, f"output_blocks.{index}.{part}", f"up_blocks.{up}.upsamplers.0",
                        out)
            index += 1
    _copy(source, "out.0", "conv_norm_out", out)
    _copy(source, "out.2", "conv_out", out)
    return out


def convert_ldm_vae(source: dict[str, torch.Tensor], config: dict[str, Any]) -> Conversion:
    """Map a CompVis AutoencoderKL state dict (prefix stripped) onto diffusers' AutoencoderKL.

    The training loss (``loss.*``: LPIPS and discriminator) is not part of the model.
    """
    model_keys = {k for k in source if not k.startswith("loss.")}
    state = convert_ldm_vae_checkpoint({k: source[k] for k in model_keys}, config)
    if len(state) != len(model_keys):
        raise LeafnetError(
            f"autoencoder conversion mapped {len(state)} of {len(model_keys)} tensors; the "
            "checkpoint does not have the kl-f8 layout"
        )
    return Conversion(state=state, used=model_keys)


def check_complete(conversion: Conversion, source: dict[str, torch.Tensor],
                   model: torch.nn.Module, what: str) -> None:
    """Every source key used and every model parameter set, with matching shapes."""
    unused = sorted(set(source) - conversion.used)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(conversion.state))
    wrong = sorted(k for k in set(expected) & set(conversion.state)
                   if expected[k].shape != conversion.state[k].shape)
    if unused or missing or wrong:
        raise LeafnetError(
            f"{what}: the checkpoint does not match the expected architecture "
            f"({len(unused)} unused keys, e.g. {unused[:3]}; {len(missing)} parameters not set, "
            f"e.g. {missing[:3]}; {len(wrong)} shape mismatches, e.g. {wrong[:3]})"
        )
