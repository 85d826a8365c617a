"""Running a fold's ONNX file in onnxruntime as a predictor member (``--backend onnxruntime``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from leafnet.errors import LeafnetError
from leafnet.model_store.onnx_export import onnx_file, onnx_record
from leafnet.models.network import NetworkConfig


class OnnxSingleStep:
    """The same call as :class:`leafnet.models.single_step.SingleStep`, run by onnxruntime."""

    def __init__(self, path: Path, config: NetworkConfig) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise LeafnetError("--backend onnxruntime needs onnxruntime: pip install -e "
                               "'.[onnx]'") from None
        self.config = config
        self.session = onnxruntime.InferenceSession(str(path),
                                                    providers=["CPUExecutionProvider"])

    @classmethod
    def from_model_folder(cls, folder: Path, fast_decoder: bool = False) -> OnnxSingleStep:
        onnx_record(folder, fast_decoder)
        return cls(onnx_file(folder, fast_decoder), NetworkConfig.load(folder))

    def latent_shape(self, image_shape: tuple[int, ...]) -> tuple[int, ...]:
        return self.config.latent_shape(image_shape)

    def __call__(self, image: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        inputs = {"image": image.cpu().numpy().astype(np.float32),
                  "noise": noise.cpu().numpy().astype(np.float32)}
        return torch.from_numpy(self.session.run(None, inputs)[0])
