"""Distilling the fast mask decoder from a trained fold's frozen decoder, as a task on the shared
training loop (loop.py: AdamW, the LR schedule, EMA, checkpoints, exact resume, the fold record
and a --minutes budget, like every other trainer).

The fast decoder must reproduce what the frozen decoder makes of the latents it is given at
prediction: the single-step estimates z0, not only clean mask latents. So it learns from both,
on the fold's training cases: the frozen encoder's latents of the four flipped views of each
mask, and the trained network's z0 estimates of the image and its mirror image (noise from the
seed). Its targets are the frozen decoder's probabilities of those latents: binary cross-entropy
on them, plus the soft Dice of their 0.5 masks and a margin term that pushes each logit at least
1 to the side of 0.5 the frozen decoder chose, as prediction thresholds at 0.5. Both networks are
convolutional, so the fast decoder trains on random windows of the latents and their targets,
which costs a fraction of whole images. Each window is decoded with ``context`` latent pixels of
its neighbours around it and the loss taken inside only: without them a window's cut edges were
learnt with zero padding where the frozen decoder had seen the neighbours, and the fast decoder
learnt to shrink masks wherever they meet the image border (docs/results.md). The frozen
decoder's targets are the expensive part (it is the slow decoder), so at most ``max_cases``
training cases are used, chosen by the seed, and they are kept in the run's folder
(``fold_N/fast_decoder_training/``) for a continuation. Validation measures agreement on the
validation cases, on their single-step estimates (what prediction decodes) and on their masks'
latents (the round trip): Dice between the two decoders' masks and each one's Dice against the
reference labels. The model distilled from (its checkpoint and the digest of its weights) is
part of the run's identity, so ``--c`` never continues a distillation of other weights.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn
from tqdm import tqdm

from leafnet.atomic import atomic_path, write_json
from leafnet.errors import LeafnetError
from leafnet.evaluation.metrics import dice_and_iou
from leafnet.models.fast_decoder import (
    FAST_DECODER_FOLDER,
    REPORT_FILE,
    FastMaskDecoder,
    fast_decoder_for,
)
from leafnet.models.fold_record import FOLD_SPLIT_FILE, FoldSplit, read_fold_record
from leafnet.models.network import LEAFNetwork, exported_model, load_network
from leafnet.models.safetensors_io import read_safetensors
from leafnet.paths import parse_run_folder_name
from leafnet.preprocessing.plans import Plans
from leafnet.preprocessing.preprocessed_data import PreprocessedCases, apply_flip
from leafnet.training.checkpointing import LATEST
from leafnet.training.loop import Trainer
from leafnet.training.losses import soft_dice_loss
from leafnet.training.tasks.task import RunContext, TrainingTask, step_generator
from leafnet.utilities.digests import file_digest, weights_digest
from leafnet.utilities.json_files import read_json

WORK_FOLDER = "fast_decoder_training"
TARGETS_FILE = "targets.safetensors"
MASK_VIEWS = ((False, False), (True, False), (False, True), (True, True))
IMAGE_VIEWS = ((False, False), (False, True))


@torch.no_grad()
def _latents(network: LEAFNetwork, cases: PreprocessedCases, device: str, seed: int,
             views_of_masks: bool, show_progress: bool, desc: str) -> torch.Tensor:
    """Mask latents (four flips of each mask) and z0 estimates (the image and its mirror) of
    ``cases``, or only the unflipped z0 estimates when ``views_of_masks`` is False."""
    found = []
    shape = network.latent_shape((1, 3, *cases.image_and_mask(0)[0].shape[1:]))
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(device)
    for index in tqdm(range(len(cases)), desc=desc, disable=not show_progress):
        image, mask = cases.image_and_mask(index)
        if views_of_masks:
            for flip in MASK_VIEWS:
                view = torch.from_numpy(apply_flip(mask, np.array(flip)))[None].to(device)
                found.append(network.encode_mask(view).float().cpu())
        for flip in IMAGE_VIEWS if views_of_masks else IMAGE_VIEWS[:1]:
            view = torch.from_numpy(apply_flip(image, np.array(flip)))[None].to(device)
            found.append(network.estimate_mask_latent(view, noise).float().cpu())
    return torch.cat(found)


@torch.no_grad()
def _frozen_probabilities(network: LEAFNetwork, latents: torch.Tensor, device: str,
                          show_progress: bool) -> torch.Tensor:
    chunks = [network.decode_mask(chunk.to(device)).float().cpu().half()
              for chunk in tqdm(latents.split(8), desc="frozen decoder targets",
                                disable=not show_progress)]
    return torch.cat(chunks)


def _agreement(fast: np.ndarray, frozen: np.ndarray, reference: list[np.ndarray],
               plans: Plans) -> dict[str, float]:
    """Mean Dice of the fast decoder's labels against the frozen decoder's and of each
    against the reference labels (over foreground classes and cases)."""
    scheme = plans.label_scheme
    scores: dict[str, list[float]] = {"fast_vs_frozen": [], "frozen_vs_reference": [],
                                      "fast_vs_reference": []}
    for fast_map, frozen_map, label in zip(fast, frozen, reference, strict=True):
        fast_label, frozen_label = scheme.decode(fast_map), scheme.decode(frozen_map)
        for name, (a, b) in {"fast_vs_frozen": (fast_label, frozen_label),
                             "frozen_vs_reference": (frozen_label, label),
                             "fast_vs_reference": (fast_label, label)}.items():
            masks = zip(scheme.class_masks(a), scheme.class_masks(b), strict=True)
            scores[name].append(float(np.mean([dice_and_iou(p, r)[0] for p, r in masks])))
    return {name: float(np.mean(values)) for name, values in scores.items()}


def _crops(latents: torch.Tensor, targets: torch.Tensor, index: torch.Tensor, crop: int,
           context: int, factor: int, generator: torch.Generator
           ) -> tuple[torch.Tensor, torch.Tensor, tuple[slice, slice]]:
    """The same random ``crop`` x ``crop`` window of each latent, widened by up to ``context``
    latent pixels on each side within the image, and of its target; with the slices of the
    decoded widened window that cover the target."""
    height, width = latents.shape[-2:]
    crop_h, crop_w = min(crop, height), min(crop, width)
    top = int(torch.randint(height - crop_h + 1, (1,), generator=generator))
    left = int(torch.randint(width - crop_w + 1, (1,), generator=generator))
    outer_top, outer_left = max(0, top - context), max(0, left - context)
    latent = latents[index, :, outer_top:min(height, top + crop_h + context),
                     outer_left:min(width, left + crop_w + context)]
    target = targets[index, :, top * factor:(top + crop_h) * factor,
                     left * factor:(left + crop_w) * factor]
    rows = slice((top - outer_top) * factor, (top - outer_top + crop_h) * factor)
    columns = slice((left - outer_left) * factor, (left - outer_left + crop_w) * factor)
    return latent, target, (rows, columns)


def distillation_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy on the frozen decoder's probabilities ``target``, the soft Dice of
    its 0.5 masks, and a hinge that asks each logit to lie at least 1 on the frozen decoder's
    side of 0.5: the soft targets alone leave boundary pixels near 0.5 free to flip."""
    side = (target > 0.5).float()
    return (F.binary_cross_entropy_with_logits(logits, target)
            + soft_dice_loss(torch.sigmoid(logits), side)
            + F.relu(1.0 - logits * (2.0 * side - 1.0)).mean())


class _Logits(nn.Module):
    """The decoder's logits as a module's forward (what the loop wraps in DDP)."""

    def __init__(self, decoder: FastMaskDecoder) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.decoder.logits(latent)


class FastDecoderTask(TrainingTask):
    """Trains a fast decoder to reproduce the frozen decoder of the exported ``model``."""

    def __init__(self, run: RunContext, model: Path, max_cases: int, crop: int,
                 context: int) -> None:
        super().__init__(run)
        self.model, self.max_cases, self.crop, self.context = model, max_cases, crop, context
        self.model_digest = weights_digest(model)
        self.validation: dict[str, tuple[torch.Tensor, np.ndarray]] | None = None

    def training_cases(self) -> PreprocessedCases:
        """Up to ``max_cases`` of the fold's training cases, chosen by the seed."""
        run = self.run
        chosen = run.split.train
        if len(chosen) > self.max_cases:
            order = np.random.default_rng(run.seed).permutation(len(chosen))[:self.max_cases]
            chosen = [chosen[i] for i in sorted(order)]
        return PreprocessedCases(run.train_cases.folder, chosen, run.plans.label_scheme)

    def build(self) -> list[nn.Parameter]:
        run = self.run
        self.network = load_network(self.model, run.device).eval()
        self.network.requires_grad_(False)
        self.cases = self.training_cases()
        path = run.output / TARGETS_FILE
        if run.distributed.is_main and not path.is_file():
            latents = _latents(self.network, self.cases, run.device, run.seed, True,
                               run.show_progress, "latents")
            targets = _frozen_probabilities(self.network, latents, run.device,
                                            run.show_progress)
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as temporary:
                save_file({"latents": latents.contiguous(), "targets": targets.contiguous()},
                          str(temporary))
        run.distributed.barrier()
        tensors = read_safetensors(path)
        self.latents, self.targets = tensors["latents"], tensors["targets"]
        config = self.network.config
        self.decoder = fast_decoder_for(config.autoencoder["latent_channels"],
                                        config.mask_channels,
                                        config.downsampling).to(run.device).train()
        return list(self.decoder.parameters())

    def ema_parameters(self) -> list[nn.Parameter]:
        return list(self.decoder.parameters())

    def trained_module(self) -> nn.Module:
        return _Logits(self.decoder)

    def batches(self, start: int) -> Iterator[dict[str, Any]]:
        """The windows are drawn in :meth:`compute_losses` from the step's generator."""
        return ({"step": step} for step in itertools.count(start))

    def compute_losses(self, module: nn.Module, batch: dict[str, Any],
                       step: int) -> dict[str, torch.Tensor]:
        """The distillation loss on random windows of a random batch of latents (the same
        draws in every process; each takes its share)."""
        run = self.run
        generator = step_generator(run.seed, step)
        index = run.local(torch.randint(len(self.latents), (run.global_batch,),
                                        generator=generator))
        latent, target, inside = _crops(self.latents, self.targets, index, self.crop,
                                        self.context, self.network.config.downsampling,
                                        generator)
        logits = module(latent.to(run.device))[..., inside[0], inside[1]]
        return {"loss": distillation_loss(logits, target.float().to(run.device))}

    @torch.no_grad()
    def _agreements(self) -> dict[str, float]:
        """Dice of the fast against the frozen decoder's masks and of each against the labels,
        on the validation cases' single-step estimates and on their masks' latents."""
        run, scheme = self.run, self.run.plans.label_scheme
        if self.validation is None:
            val = run.val_cases
            reference = [np.asarray(val.image_and_mask(i)[1]) for i in range(len(val))]
            masks = torch.cat([self.network.encode_mask(torch.from_numpy(mask)[None].to(
                run.device)).float().cpu() for mask in reference])
            estimates = _latents(self.network, val, run.device, run.seed, False, False, "")
            self.labels = [scheme.decode(mask) for mask in reference]
            self.validation = {
                name: (found, _frozen_probabilities(self.network, found, run.device,
                                                    False).float().numpy())
                for name, found in (("estimates", estimates), ("masks", masks))}
        self.decoder.eval()
        scores = {}
        for name, (found, frozen) in self.validation.items():
            fast = self.decoder(found.to(run.device)).float().cpu().numpy()
            scores.update({f"{name}_{key}": value for key, value
                           in _agreement(fast, frozen, self.labels, run.plans).items()})
        self.decoder.train()
        return scores

    def validate(self) -> dict[str, float]:
        """``dice``: the fast decoder's agreement with the frozen one on the validation
        estimates (what prediction decodes)."""
        if not len(self.run.val_cases):
            return {}
        return {"dice": self._agreements()["estimates_fast_vs_frozen"]}

    def model_state(self) -> dict[str, Any]:
        return {"decoder": self.decoder.state_dict()}

    def load_model_state(self, state: dict[str, Any]) -> None:
        self.decoder.load_state_dict(state["decoder"])

    def settings(self) -> dict[str, Any]:
        return {"model": self.model.name, "model_digest": self.model_digest,
                "max_cases": self.max_cases, "crop": self.crop, "context": self.context,
                "batch_size": self.run.global_batch}

    def export(self, checkpoint: str) -> Path | None:
        """At the end only: the (EMA) decoder with its report in ``fold_N/fast_decoder/``."""
        if checkpoint != "final":
            return None
        report: dict[str, Any] = {
            "fold_folder": str(self.model.parent), **self.settings(),
            "training_cases": len(self.cases), "training_latents": len(self.latents),
            "config": dict(self.decoder.config)}
        if len(self.run.val_cases):
            report["validation"] = {"cases": len(self.run.val_cases), **self._agreements()}
        self.decoder.eval()
        self.report = report
        return _save(self.decoder, self.model.parent, report)


class FastDecoderTrainer(Trainer):
    """The fast decoder of a trained fold's exported model, on the shared loop. Not a trainer
    found by name: ``leafnet_distill_decoder`` builds it from the fold folder."""

    found_by_name = False
    num_steps = 1500
    validate_every = 250
    learning_rate = 2e-3
    lr_schedule = "cosine"
    batch_size = 32
    num_workers = 0

    def __init__(self, fold_folder: Path, checkpoint: str = "best", max_cases: int = 200,
                 crop: int = 8, context: int = 2, batch_size: int | None = None,
                 num_steps: int | None = None, **options: Any) -> None:
        parsed = parse_run_folder_name(fold_folder.parent.name)
        if parsed is None or not fold_folder.name.startswith("fold_"):
            raise LeafnetError(f"{fold_folder} is not a trained fold folder "
                               "(DatasetXXX_Name/TRAINER__PLANS__PRESET/fold_N)")
        self.model_fold = fold_folder
        self.model = exported_model(fold_folder, checkpoint)
        self.max_cases, self.crop, self.crop_context = max_cases, crop, context
        self.batch_size = batch_size or self.batch_size
        steps = num_steps or self.num_steps
        self.warmup_steps = min(50, steps // 10)
        _, plans_name, preset = parsed
        super().__init__(fold_folder.parent.parent.name,
                         int(fold_folder.name.removeprefix("fold_")), plans_name, preset,
                         num_steps=num_steps, **options)
        record = read_fold_record(fold_folder)
        trained = record.inputs if record is not None else None
        split = (trained.split_sha256 if trained is not None else FoldSplit.from_json(
            read_json(fold_folder / FOLD_SPLIT_FILE, "train the model again"),
            fold_folder / FOLD_SPLIT_FILE).digest())
        plans = trained.plans_sha256 if trained is not None else file_digest(self.plans_path)
        if (split, plans) != (self.split.digest(), file_digest(self.plans_path)):
            raise LeafnetError(
                f"{fold_folder}'s model was trained under other plans or another split than "
                f"the dataset's fold {self.fold} has now (it was planned again since); the "
                "fast decoder learns from the model's own training cases: train the model "
                "again first")

    def output_folder(self) -> Path:
        return self.model_fold / WORK_FOLDER

    def make_task(self, run: RunContext) -> FastDecoderTask:
        return FastDecoderTask(run, self.model, self.max_cases, self.crop, self.crop_context)


def distill_fast_decoder(fold_folder: Path, steps: int = 1500, batch_size: int = 32,
                         device: str = "cpu", seed: int = 0, max_cases: int = 200,
                         crop: int = 8, context: int = 2, show_progress: bool = True,
                         resume: bool = False, checkpoint_every: int = 250,
                         checkpoint: str = "best", minutes: float | None = None,
                         extend: bool = False) -> dict[str, Any]:
    """Distil the fast decoder of ``fold_folder``'s exported ``checkpoint`` model and write it
    to ``fast_decoder/`` (replacing an older one only when done); return its report, also
    ``fast_decoder/distillation.json``. ``crop`` is the side of the latent windows trained on,
    ``context`` the latent pixels of their neighbours decoded with them. ``resume`` continues
    an interrupted distillation from its last checkpoint (every ``checkpoint_every`` steps)
    exactly as if never interrupted; without it an earlier unfinished one is started over."""
    trainer = FastDecoderTrainer(fold_folder, checkpoint, max_cases, crop, context, batch_size,
                                 num_steps=steps, device=device, seed=seed,
                                 validate_every=checkpoint_every, show_progress=show_progress,
                                 minutes=minutes, extend=extend)
    resumable = resume and (trainer.output / LATEST).is_file()
    if trainer.context.is_main and trainer.output.exists() and not resumable:
        shutil.rmtree(trainer.output)
    trainer.run(continue_training=resume)
    if not trainer.context.is_main:
        return {}
    report = getattr(trainer.task, "report", None) or read_json(
        fold_folder / FAST_DECODER_FOLDER / REPORT_FILE)
    return {**report, "steps": trainer.num_steps,
            "train_seconds": trainer.history["train_seconds"]}


def _save(decoder: FastMaskDecoder, fold_folder: Path, report: dict[str, Any]) -> Path:
    """Write into a hidden sibling, then swap it in: no half-written decoder is ever found."""
    target = fold_folder / FAST_DECODER_FOLDER
    scratch = Path(tempfile.mkdtemp(prefix=".fast_decoder_", dir=fold_folder))
    decoder.save_pretrained(str(scratch), safe_serialization=True)
    write_json(scratch / REPORT_FILE, report)
    if target.exists():
        shutil.rmtree(target)
    scratch.rename(target)
    return target
