"""Distilling the fast mask decoder from a trained fold's frozen decoder.

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
learnt to shrink masks wherever they meet the image border (on the binary demo the round trip
rose from 0.985 to 0.991 with them, 0.993 with the margin term too; issue 15). The frozen
decoder's targets are the expensive part (it is the slow decoder), so at most ``max_cases``
training cases are used, chosen by the seed. The validation cases measure agreement, on their
single-step estimates (what prediction decodes) and on their masks' latents (the round trip):
Dice between the two decoders' masks and each one's Dice against the reference labels.

A distillation resumes (``--c``): the targets and, every 250 steps, the decoder, optimiser,
schedule and sampling generator are kept in the fold's ``.fast_decoder_work/``, removed when the
decoder is saved; a continued run ends with the same weights as one never interrupted. It only
continues a run of the same settings and the same exported model (size and time of its weights).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.optimization import get_scheduler
from safetensors.torch import save_file
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
from leafnet.models.network import LEAFNetwork, exported_model, load_network
from leafnet.models.safetensors_io import read_safetensors
from leafnet.preprocessing.plans import Plans
from leafnet.preprocessing.preprocessed_data import PreprocessedCases, apply_flip
from leafnet.training.checkpointing import load_checkpoint, save_checkpoint
from leafnet.training.locate import preprocessed_dataset
from leafnet.training.losses import soft_dice_loss
from leafnet.utilities.digests import weights_digest
from leafnet.utilities.json_files import read_json

WORK_FOLDER = ".fast_decoder_work"
CHECKPOINT_FILE = "checkpoint.pth"
MASK_VIEWS = ((False, False), (True, False), (False, True), (True, True))
IMAGE_VIEWS = ((False, False), (False, True))
logger = logging.getLogger(__name__)


def _fold_data(fold_folder: Path) -> tuple[Plans, dict[str, list[str]], Path]:
    plans = Plans.load(fold_folder / "plans.json", "the model folder is incomplete; train again")
    split = read_json(fold_folder / "split.json", "the model folder is incomplete; train again")
    data = preprocessed_dataset(fold_folder.parent.parent.name) / plans.data_identifier
    if not data.is_dir():
        raise LeafnetError(f"{data} is missing: the fast decoder learns from the preprocessed "
                           f"training cases; run leafnet_plan_and_preprocess -d "
                           f"{fold_folder.parent.parent.name[7:10]}")
    return plans, split, data


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


def _model_identity(model: Path) -> dict[str, Any]:
    """The weights distilled from: what tells a retrained model from the one a resumed
    distillation started on, and what the saved decoder records (models/derived_files.py)."""
    return {"model": model.name, "model_digest": weights_digest(model)}


def _prepared(network: LEAFNetwork, train: PreprocessedCases, work: Path, device: str, seed: int,
              show_progress: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The latents and the frozen decoder's targets, computed once and kept in ``work`` so that
    a resumed distillation does not pay for them again."""
    path = work / "targets.safetensors"
    if path.is_file():
        tensors = read_safetensors(path)
        return tensors["latents"], tensors["targets"]
    latents = _latents(network, train, device, seed, True, show_progress, "latents")
    targets = _frozen_probabilities(network, latents, device, show_progress)
    with atomic_path(path) as temporary:
        save_file({"latents": latents.contiguous(), "targets": targets.contiguous()},
                  str(temporary))
    return latents, targets


def distillation_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy on the frozen decoder's probabilities ``target``, the soft Dice of
    its 0.5 masks, and a hinge that asks each logit to lie at least 1 on the frozen decoder's
    side of 0.5: the soft targets alone leave boundary pixels near 0.5 free to flip."""
    side = (target > 0.5).float()
    return (F.binary_cross_entropy_with_logits(logits, target)
            + soft_dice_loss(torch.sigmoid(logits), side)
            + F.relu(1.0 - logits * (2.0 * side - 1.0)).mean())


def _distillation_step(decoder: FastMaskDecoder, optimizer: torch.optim.Optimizer,
                       schedule: torch.optim.lr_scheduler.LRScheduler, latents: torch.Tensor,
                       targets: torch.Tensor, batch_size: int, crop: int, context: int,
                       factor: int, generator: torch.Generator, device: str) -> float:
    """One optimiser step on random windows of a random batch; returns the loss."""
    index = torch.randint(len(latents), (batch_size,), generator=generator)
    latent, target, inside = _crops(latents, targets, index, crop, context, factor, generator)
    logits = decoder.logits(latent.to(device))[..., inside[0], inside[1]]
    loss = distillation_loss(logits, target.float().to(device))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    schedule.step()
    return loss.item()


def _resume_state(work: Path, settings: dict[str, Any], resume: bool) -> dict[str, Any] | None:
    """The checkpoint to continue from, or None to start over (after clearing ``work``)."""
    checkpoint = work / CHECKPOINT_FILE
    if resume and checkpoint.is_file():
        state = load_checkpoint(checkpoint)
        if state["settings"] != settings:
            raise LeafnetError(
                f"{work} holds a distillation with other settings or of another model "
                f"({state['settings']}, now {settings}); continue it with its settings, or "
                "run without --c to start over")
        logger.info("continuing the fast decoder's distillation at step %d of %d",
                    state["step"], settings["steps"])
        return state
    if work.exists():
        logger.info("%s: %s", work, "no checkpoint yet, starting over" if resume
                    else "an earlier unfinished distillation, started over (--c continues one)")
        shutil.rmtree(work)
    work.mkdir()
    return None


def distill_fast_decoder(fold_folder: Path, steps: int = 1500, batch_size: int = 32,
                         learning_rate: float = 2e-3, device: str = "cpu", seed: int = 0,
                         max_cases: int = 200, crop: int = 8, context: int = 2,
                         show_progress: bool = True, resume: bool = False,
                         checkpoint_every: int = 250) -> dict[str, Any]:
    """Train the fast decoder of ``fold_folder`` and write it to ``fast_decoder/`` (replacing
    an older one only when done); return the report, also ``fast_decoder/distillation.json``.
    ``crop`` is the side of the latent windows trained on, ``context`` the latent pixels of
    their neighbours decoded with them. The frozen decoder's targets and,
    every ``checkpoint_every`` steps, the state of the run are kept in ``.fast_decoder_work/``:
    ``resume`` continues from there exactly as if never interrupted."""
    plans, split, data = _fold_data(fold_folder)
    model = exported_model(fold_folder, "best")
    network = load_network(model, device).eval()
    config = network.config
    chosen = split["train"]
    if len(chosen) > max_cases:
        order = np.random.default_rng(seed).permutation(len(chosen))[:max_cases]
        chosen = [chosen[i] for i in sorted(order)]
    settings = {"steps": steps, "batch_size": batch_size, "learning_rate": learning_rate,
                "seed": seed, "max_cases": max_cases, "crop": crop, "context": context,
                **_model_identity(model)}
    work = fold_folder / WORK_FOLDER
    state = _resume_state(work, settings, resume)
    train = PreprocessedCases(data, chosen, plans.label_scheme)
    start = time.perf_counter()
    latents, targets = _prepared(network, train, work, device, seed, show_progress)
    prepare_seconds = time.perf_counter() - start
    torch.manual_seed(seed)
    decoder = fast_decoder_for(config.autoencoder["latent_channels"], config.mask_channels,
                               config.downsampling).to(device).train()
    optimizer = torch.optim.AdamW(decoder.parameters(), lr=learning_rate)
    schedule = get_scheduler("cosine", optimizer, num_warmup_steps=min(50, steps // 10),
                             num_training_steps=steps)
    generator = torch.Generator().manual_seed(seed)
    first, train_seconds, loss = 0, 0.0, float("nan")
    if state is not None:
        decoder.load_state_dict(state["decoder"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        generator.set_state(state["generator"])
        first, train_seconds, loss = state["step"], state["train_seconds"], state["loss"]
    start = time.perf_counter() - train_seconds
    for step in tqdm(range(first, steps), desc="distilling the fast decoder", initial=first,
                     total=steps, disable=not show_progress):
        loss = _distillation_step(decoder, optimizer, schedule, latents, targets, batch_size,
                                  crop, context, config.downsampling, generator, device)
        if (step + 1) % checkpoint_every == 0 and step + 1 < steps:
            save_checkpoint(work / CHECKPOINT_FILE, {
                "trainer": "fast_decoder_distillation", "settings": settings, "step": step + 1,
                "decoder": decoder.state_dict(), "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(), "generator": generator.get_state(),
                "train_seconds": time.perf_counter() - start, "loss": loss})
    train_seconds = time.perf_counter() - start
    decoder.eval()
    report: dict[str, Any] = {
        "fold_folder": str(fold_folder), "steps": steps, "batch_size": batch_size,
        "learning_rate": learning_rate, "crop": crop, "context": context,
        "training_cases": len(chosen), "training_latents": len(latents),
        "continued_from_step": first, **_model_identity(model),
        "prepare_seconds": prepare_seconds, "train_seconds": train_seconds,
        "final_loss": loss, "config": dict(decoder.config)}
    if split["val"]:
        val = PreprocessedCases(data, split["val"], plans.label_scheme)
        reference = [np.asarray(val.image_and_mask(i)[1]) for i in range(len(val))]
        labels = [plans.label_scheme.decode(mask) for mask in reference]
        with torch.no_grad():
            mask_latents = torch.cat([network.encode_mask(torch.from_numpy(mask)[None].to(
                device)).float() for mask in reference])
        report["validation"] = {"cases": len(val)}
        for name, found in (("estimates", _latents(network, val, device, seed, False, False,
                                                  "")), ("masks", mask_latents.cpu())):
            with torch.no_grad():
                fast = decoder(found.to(device)).float().cpu().numpy()
            frozen = _frozen_probabilities(network, found, device, False).float().numpy()
            scores = _agreement(fast, frozen, labels, plans)
            report["validation"].update({f"{name}_{key}": value
                                         for key, value in scores.items()})
    _save(decoder, fold_folder, report)
    shutil.rmtree(work)
    return report


def _save(decoder: FastMaskDecoder, fold_folder: Path, report: dict[str, Any]) -> None:
    """Write into a hidden sibling, then swap it in: no half-written decoder is ever found."""
    target = fold_folder / FAST_DECODER_FOLDER
    scratch = Path(tempfile.mkdtemp(prefix=".fast_decoder_", dir=fold_folder))
    decoder.save_pretrained(str(scratch), safe_serialization=True)
    write_json(scratch / REPORT_FILE, report)
    if target.exists():
        shutil.rmtree(target)
    scratch.rename(target)
