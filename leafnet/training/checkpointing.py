"""Training checkpoints: written atomically, read back for resuming and for inference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from leafnet.atomic import atomic_path
from leafnet.errors import LeafnetError
from leafnet.models.network import LEAFNetwork, NetworkConfig, build_network


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    with atomic_path(path) as temporary:
        torch.save(state, temporary)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint leafnet wrote itself (it holds RNG states, hence the full unpickler)."""
    if not path.is_file():
        raise LeafnetError(f"{path} does not exist; train first (leafnet_train ...)")
    return torch.load(path, map_location="cpu", weights_only=False)


def trainable_parameters(network: LEAFNetwork) -> list[torch.nn.Parameter]:
    """The parameters training updates (and the EMA follows), in a fixed order."""
    return list(network.image_encoder.parameters()) + list(network.backbone.parameters())


def network_from_checkpoint(path: Path, use_ema: bool = True,
                            device: str | torch.device = "cpu") -> LEAFNetwork:
    """Rebuild the inference network from a diffusion trainer's checkpoint (EMA weights)."""
    checkpoint = load_checkpoint(path)
    if "network_config" not in checkpoint:
        raise LeafnetError(f"{path} is not a LEAF network checkpoint (trainer "
                           f"{checkpoint.get('trainer')})")
    network = build_network(NetworkConfig.from_json(checkpoint["network_config"]),
                            initialise=False)
    network.load_state_dict(checkpoint["network"])
    if use_ema and checkpoint.get("ema") is not None:
        shadows = checkpoint["ema"]["shadow_params"]
        with torch.no_grad():
            for parameter, shadow in zip(trainable_parameters(network), shadows, strict=True):
                parameter.copy_(shadow)
    return network.to(device).eval()
