"""LEAFPredictor: numpy images in, masks and probabilities at the images' own size out.

Preprocessing comes from the model's saved plans only: the plans' intensity window to uint8,
resampling to the planned size, ``x / 127.5 - 1``; the mask channels' probabilities are
resampled back bilinearly and decoded by the plans' label scheme (thresholds at 0.5). The noise
of image i, sample k is drawn from a generator seeded with ``seed + k``, so a prediction does
not depend on the batch it was made in.

A predictor holds one or more members (the folds of an ensemble), each a single-step model run
by PyTorch or onnxruntime, with the frozen or the fast mask decoder. The probabilities are the
mean over members and noise samples, as nnU-Net averages its folds; their standard deviation
is the uncertainty map. With ``mirroring`` each member also sees the image flipped along either
axis and both (training flips both axes), and its four outputs, flipped back, are averaged
first: nnU-Net's test-time mirroring, at four times the cost.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch

from leafnet.errors import LeafnetError
from leafnet.model_store.archive_format import extract_archive
from leafnet.models.fast_decoder import load_fast_decoder
from leafnet.models.fold_record import FOLD_PLANS_FILE, check_model
from leafnet.models.network import exported_model, load_network
from leafnet.models.single_step import SingleStep
from leafnet.preprocessing import (
    normalize_to_uint8,
    resize_image,
    resize_probabilities,
    to_network_input,
)
from leafnet.preprocessing.plans import Plans

if TYPE_CHECKING:
    from leafnet.inference.segmenter import Segmenter

BACKENDS = ("torch", "onnxruntime")
# The flips of test-time mirroring: none, horizontal, vertical, both (dims of (B, C, H, W)).
MIRROR_AXES: tuple[tuple[int, ...], ...] = ((), (3,), (2,), (2, 3))


class SingleStepModel(Protocol):
    """What a member does: image batch and noise in, mask-channel probabilities out."""

    def latent_shape(self, image_shape: tuple[int, ...]) -> tuple[int, ...]: ...

    def __call__(self, image: torch.Tensor, noise: torch.Tensor) -> torch.Tensor: ...


@dataclass
class Prediction:
    """A label image with the dataset's values and one probability map per class (label or
    region) ``(K, H, W)``, both at the image's own size; with several members (folds or noise
    samples) ``uncertainty`` holds the per-pixel standard deviation of each class probability
    over them ``(K, H, W)``; ``channels`` are the mask channels' probabilities the label was
    decoded from ``(C, H, W)`` (the class maps themselves unless the labels are bit-coded)."""

    label: np.ndarray
    probability: np.ndarray
    uncertainty: np.ndarray | None = None
    channels: np.ndarray | None = None


def _same_preprocessing(first: Plans, other: Plans) -> bool:
    return (first.target_size == other.target_size and first.windows == other.windows
            and first.num_channels == other.num_channels
            and first.label_scheme.to_json() == other.label_scheme.to_json())


def _check_dataset_folder(fold_folder: Path, plans: Plans) -> None:
    """Refuse a fold that lies under another dataset's folder than it was planned for (an
    archive unpacked or a folder moved under another dataset id): it would predict that
    dataset with another dataset's labels and preprocessing."""
    dataset = fold_folder.parent.parent.name
    planned = plans.json.get("dataset_name")
    if dataset.startswith("Dataset") and planned and planned != dataset:
        raise LeafnetError(
            f"{fold_folder} lies under {dataset} but was planned for {planned} (its plans.json); "
            f"it was moved or installed under another dataset id. Move it back under {planned}, "
            "or install its archive with leafnet_install_model")


def load_member(fold_folder: Path, checkpoint: str = "best", device: str = "cpu",
                backend: str = "torch", fast_decoder: bool = False) -> SingleStepModel:
    """The single-step model of one fold folder: its exported network (safetensors, never a
    training checkpoint) in PyTorch, or its ONNX file in onnxruntime; refused when the fold
    record says the fold did not export these weights (an unreadable file says so first)."""
    if backend not in BACKENDS:
        raise LeafnetError(f"backend must be one of {BACKENDS}, got '{backend}'")
    path = exported_model(fold_folder, checkpoint)
    if backend == "onnxruntime":
        from leafnet.inference.onnx_backend import OnnxSingleStep

        member = OnnxSingleStep.from_model_folder(path, fast_decoder)
    else:
        decoder = load_fast_decoder(fold_folder, path, device) if fast_decoder else None
        member = SingleStep(load_network(path, device), decoder).to(device).eval()
    check_model(fold_folder, path.name.removeprefix("model_"))
    return member


class LEAFPredictor:
    """Trained single-step models (one per fold) with the plans they were trained under."""

    def __init__(self, members: SingleStepModel | Sequence[SingleStepModel], plans: Plans,
                 device: str = "cpu", batch_size: int = 4, mirroring: bool = False) -> None:
        self.members = list(members) if isinstance(members, Sequence) else [members]
        if not self.members:
            raise LeafnetError("a predictor needs at least one model")
        self.plans, self.device, self.batch_size = plans, device, batch_size
        self.mirroring = mirroring

    @classmethod
    def from_folders(cls, folders: Sequence[Path], checkpoint: str = "best",
                     device: str = "cpu", batch_size: int = 4, backend: str = "torch",
                     fast_decoder: bool = False, mirroring: bool = False) -> LEAFPredictor:
        """The exported models ``model_<checkpoint>/`` of one or more fold folders (an
        ensemble); without a best model (no validation cases) the final one is used. The folds
        must share their preprocessing and label scheme."""
        if not folders:
            raise LeafnetError("no fold folders given")
        plans = [Plans.load(folder / FOLD_PLANS_FILE, "the model folder is incomplete; train "
                            "again") for folder in folders]
        for folder, plan in zip(folders, plans, strict=True):
            _check_dataset_folder(folder, plan)
        for folder, other in zip(folders[1:], plans[1:], strict=True):
            if not _same_preprocessing(plans[0], other):
                raise LeafnetError(f"{folder} was planned differently from {folders[0]} (size, "
                                   "intensity windows or labels); ensemble folds of one plan")
        members = [load_member(folder, checkpoint, device, backend, fast_decoder)
                   for folder in folders]
        return cls(members, plans[0], device, batch_size, mirroring)

    @classmethod
    def from_folder(cls, folder: Path, checkpoint: str = "best", device: str = "cpu",
                    batch_size: int = 4, backend: str = "torch", fast_decoder: bool = False,
                    mirroring: bool = False) -> LEAFPredictor:
        """One fold folder's model (see :meth:`from_folders`)."""
        return cls.from_folders([folder], checkpoint, device, batch_size, backend, fast_decoder,
                                mirroring)

    @classmethod
    def from_zip(cls, archive: Path | str, folds: Sequence[int] | None = None,
                 checkpoint: str = "best", device: str = "cpu", batch_size: int = 4,
                 backend: str = "torch", fast_decoder: bool = False,
                 mirroring: bool = False) -> Segmenter:
        """A model shared with ``leafnet_export_model``, without installing it: all its folds,
        or ``folds``; a crop stage with the stages packed before it (a ``TwoStagePredictor``).
        The archive is checked before anything is read."""
        from leafnet.inference.two_stages import load_predictor

        with tempfile.TemporaryDirectory(prefix="leafnet_zip_") as scratch:
            model = extract_archive(Path(archive), Path(scratch))
            folders = model.fold_folders(folds)
            plans = Plans.load(folders[0] / FOLD_PLANS_FILE,
                               "the archive is incomplete; export it again")
            if plans.previous_stage is not None and not model.previous_stage_folders(folds):
                raise LeafnetError(
                    f"{archive} holds the crop stage of a two-stage model ({plans.plans_name}) "
                    f"without its coarse stage ({plans.previous_stage.plans}): it was exported "
                    "by an older leafnet. Export it again (the archive then carries both stages)")
            return load_predictor(folders, checkpoint, device, batch_size, backend,
                                  fast_decoder, mirroring)

    def check_image(self, image: np.ndarray) -> None:
        """An error naming the expected layout unless ``image`` is ``(C, H, W)`` with the
        plans' channel count."""
        channels = self.plans.num_channels
        if image.ndim != 3 or image.shape[0] != channels:
            raise LeafnetError(f"expected an image with {channels} channel(s) (C, H, W), "
                               f"got shape {tuple(image.shape)}")

    def _noise(self, batch: int, seed: int, num_samples: int) -> torch.Tensor:
        height, width = self.plans.target_size
        shape = self.members[0].latent_shape((1, 3, height, width))[1:]
        draws = [torch.randn(shape, generator=torch.Generator().manual_seed(seed + k))
                 for k in range(num_samples)]
        return torch.stack(draws)[:, None].expand(num_samples, batch, *shape)

    @torch.no_grad()
    def _member_probabilities(self, tensor: torch.Tensor, noise: torch.Tensor) -> np.ndarray:
        """Mask-channel probabilities of every member and noise sample ``(M, B, C, h, w)``,
        each the mean over the mirrored views when mirroring."""
        views = MIRROR_AXES if self.mirroring else MIRROR_AXES[:1]
        outputs = []
        for member in self.members:
            for draw in noise:
                draw = draw.to(self.device)
                mean = sum(_flip(member(_flip(tensor, axes), _flip(draw, axes)).float(), axes)
                           for axes in views) / len(views)
                outputs.append(mean.cpu().numpy())
        return np.stack(outputs)

    def predict(self, images: Sequence[np.ndarray], seed: int = 0, num_samples: int = 1,
                uncertainty: bool = False) -> list[Prediction]:
        """Label images and per-class probabilities of ``(C, H, W)`` images; with
        ``uncertainty`` also the standard deviation over members and samples (two or more)."""
        for image in images:
            self.check_image(image)
        if uncertainty and len(self.members) * num_samples < 2:
            raise LeafnetError("an uncertainty map needs several members: give several folds "
                               "(-f 0 1 2 ...) or --num_samples K with K >= 2")
        size = self.plans.target_size
        windows = self.plans.windows
        scheme = self.plans.label_scheme
        results = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start:start + self.batch_size]
            batch = to_network_input(np.stack([resize_image(normalize_to_uint8(image, windows),
                                                            size) for image in chunk]))
            tensor = torch.from_numpy(batch).to(self.device)
            members = self._member_probabilities(tensor, self._noise(len(chunk), seed,
                                                                     num_samples))
            for index, image in enumerate(chunk):
                shape = tuple(image.shape[1:])
                original = np.stack([resize_probabilities(map_, shape)
                                     for map_ in members[:, index].mean(axis=0)])
                spread = None
                if uncertainty:
                    per_member = np.stack([scheme.class_probabilities(np.stack(
                        [resize_probabilities(map_, shape) for map_ in channels]))
                        for channels in members[:, index]])
                    spread = per_member.std(axis=0).astype(np.float32)
                results.append(Prediction(scheme.decode(original),
                                          scheme.class_probabilities(original).astype(
                                              np.float32), spread, original))
        return results


def _flip(tensor: torch.Tensor, axes: tuple[int, ...]) -> torch.Tensor:
    """``tensor`` flipped along ``axes`` (itself for none); the image and its noise latent are
    flipped alike, so that a view is the same sample seen mirrored."""
    return torch.flip(tensor, axes) if axes else tensor
