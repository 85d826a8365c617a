"""Train the mask autoencoder that ships with leafnet (models/shipped_autoencoder.py).

``python -m leafnet.training.shipped_first_stage --preset small --steps 3000 -o FOLDER``
trains the preset's autoencoder on random mask shapes (mask_shapes.py) and, where given, on the
masks of real training sets (``--masks DIR``, each a folder of mask images, binarised at half
their range), for a fixed number of steps: L1 + 1e-6 KL + the soft Dice of each RGB channel (small
objects count as much as large ones), AdamW with warm-up and cosine decay, EMA weights. Every
``--validate-every`` steps it scores the EMA weights on fixed held-out shapes and masks (Dice per
kind), writes a resumable checkpoint, and at the end writes the fp16 diffusers folder and
``shipped.json`` into ``-o`` (``tools/make_shipped_autoencoders.sh`` puts them in the package).
The steps' masks are a function of (seed, step), so ``--c`` continues exactly.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from PIL import Image
from tqdm import tqdm

from leafnet.atomic import atomic_path, write_json
from leafnet.errors import LeafnetError, exit_on_user_error
from leafnet.imageio import IMAGE_ENDINGS, file_ending
from leafnet.imageio.mask_rule import read_binary_mask
from leafnet.models.autoencoder import encode_mask, mask_to_rgb, rgb_layout
from leafnet.models.presets import PRESETS, get_preset
from leafnet.models.shipped_autoencoder import SHIPPED_RECORD, round_trip
from leafnet.training.mask_shapes import random_mask
from leafnet.training.tasks.autoencoder import Reconstruction, rgb_dice_loss
from leafnet.training.tasks.task import step_generator
from leafnet.utilities.cli_numbers import non_negative_int
from leafnet.utilities.machine import autocast, cpu_has_bf16

CHECKPOINT = "checkpoint.pth"


def read_mask_folder(folder: Path, size: int) -> np.ndarray:
    """Every mask image in ``folder`` as a binary ``(N, 1, size, size)`` float32 array
    (imageio's ``read_binary_mask``: half-way between the file's lowest and highest value),
    resized to ``size`` (bilinear, then > 0.5, as planning resizes labels)."""
    paths = sorted(path for path in folder.iterdir()
                   if path.is_file() and file_ending(path) in IMAGE_ENDINGS)
    if not paths:
        raise LeafnetError(f"{folder} holds no mask images ({', '.join(IMAGE_ENDINGS)})")
    masks = []
    for path in tqdm(paths, desc=f"reading {folder}"):
        binary = read_binary_mask(path).astype(np.float32)
        resized = Image.fromarray(binary).resize((size, size), Image.BILINEAR)
        masks.append((np.asarray(resized) > 0.5).astype(np.float32)[None])
    return np.stack(masks)


def held_out_count(total: int, count: int) -> int:
    """How many of a real folder's ``total`` masks are kept out of training for validation:
    ``count``, but never more than a fifth of them (a small folder still trains)."""
    return min(count, total // 5)


def draw_batch(seed: int, step: int, batch_size: int, size: int,
               real: list[np.ndarray], real_share: float) -> list[np.ndarray]:
    """The masks of step ``step``: random shapes, and a ``real_share`` of real masks (flipped
    and turned at random) when there are any."""
    rng = np.random.default_rng([seed, step])
    masks = []
    for _ in range(batch_size):
        if real and rng.random() < real_share:
            pool = real[int(rng.integers(len(real)))]
            mask = pool[int(rng.integers(len(pool)))]
            mask = np.rot90(mask, int(rng.integers(4)), axes=(1, 2))
            mask = mask[:, ::-1] if rng.random() < 0.5 else mask
            masks.append(np.ascontiguousarray(mask))
        else:
            masks.append(random_mask(rng, size))
    return masks


def reconstruction_loss(module: Reconstruction, masks: list[np.ndarray], seed: int, step: int,
                        device: str, bf16: bool) -> torch.Tensor:
    """L1 + 1e-6 KL + soft Dice of the RGB-coded masks (any mix of 1-3 channels)."""
    inputs = torch.cat([mask_to_rgb(torch.from_numpy(mask[None])) for mask in masks]).to(device)
    with autocast(device, bf16):
        reconstruction, kl = module(inputs, step_generator(seed, step, salt=1))
    reconstruction = reconstruction.float()
    return (F.l1_loss(reconstruction, inputs) + 1e-6 * kl.float()
            + rgb_dice_loss(reconstruction, inputs))


def held_out(seed: int, size: int, count: int, real: dict[str, np.ndarray]) -> dict[str, list]:
    """Fixed validation masks: random shapes by channel count (a seed no step uses) and the
    last masks of each real folder (kept out of training; see :func:`held_out_count`; a folder
    too small to spare any is not validated)."""
    rng = np.random.default_rng([seed, 2**32 - 1])
    shapes: dict[str, list] = {"1 channel": [], "2 channels": [], "3 channels": []}
    while min(len(v) for v in shapes.values()) < count:
        mask = random_mask(rng, size)
        key = f"{mask.shape[0]} channel" + ("s" if mask.shape[0] > 1 else "")
        if len(shapes[key]) < count:
            shapes[key].append(mask)
    held = {name: held_out_count(len(masks), count) for name, masks in real.items()}
    return {**shapes, **{name: list(masks[len(masks) - held[name]:])
                         for name, masks in real.items() if held[name]}}


def validate(autoencoder: AutoencoderKL, sets: dict[str, list], device: str) -> dict[str, float]:
    """Mean Dice per set: each channel of each mask after the round trip (> 0.5), 1 where
    both are empty."""
    scores = {}
    for name, masks in sets.items():
        values = []
        for mask in masks:
            decoded = round_trip(autoencoder, mask[None], device)[0] > 0.5
            for found, wanted in zip(decoded, mask > 0.5, strict=True):
                total = found.sum() + wanted.sum()
                values.append(1.0 if total == 0 else 2 * (found & wanted).sum() / total)
        scores[name] = float(np.mean(values))
    return scores


def export(autoencoder: AutoencoderKL, output: Path, preset: str, record: dict[str, Any],
           device: str) -> None:
    """The fp16 diffusers folder, the latent scale (1 / std of held-out shape latents) and
    ``shipped.json``."""
    rng = np.random.default_rng(2**31 - 1)
    with torch.no_grad():
        latents = [encode_mask(autoencoder, torch.from_numpy(random_mask(rng, 128)[None])
                               .to(device), 1.0).cpu() for _ in range(128)]
    scale = float(1 / torch.cat([latent.flatten() for latent in latents]).std())
    half = copy.deepcopy(autoencoder).to("cpu", torch.float16)
    half.save_pretrained(output, safe_serialization=True)
    write_json(output / SHIPPED_RECORD, {
        **record, "preset": preset, "latent_scale": scale,
        "rgb_layout": {str(channels): rgb_layout(channels) for channels in (1, 2, 3)}})


def train(preset: str, steps: int, output: Path, masks: list[Path], seed: int = 0,
          batch_size: int = 8, size: int = 128, learning_rate: float = 5e-4,
          real_share: float = 0.25, validate_every: int = 250, validation_count: int = 40,
          resume: bool = False, device: str = "cpu") -> dict[str, float]:
    """Train and export the shipped autoencoder of ``preset``; return the last validation."""
    if get_preset(preset).pretrained is not None:
        raise LeafnetError(f"the '{preset}' preset uses a pretrained autoencoder; nothing to ship")
    torch.manual_seed(seed)
    real_sets = {"/".join(folder.resolve().parts[-3:]): read_mask_folder(folder, size)
                 for folder in masks}
    validation = held_out(seed, size, validation_count, real_sets)
    real = [pool[:len(pool) - held_out_count(len(pool), validation_count)]
            for pool in real_sets.values()]
    settings = [preset, steps, seed, batch_size, size, real_share, learning_rate,
                validation_count, sorted(real_sets)]
    autoencoder = AutoencoderKL(**get_preset(preset).autoencoder).to(device)
    parameters = list(autoencoder.parameters())
    optimizer = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=0.01)
    scheduler = get_scheduler("cosine", optimizer, num_warmup_steps=min(100, steps // 10),
                              num_training_steps=steps)
    ema = EMAModel(parameters, decay=0.999)
    module = Reconstruction(autoencoder)
    output.mkdir(parents=True, exist_ok=True)
    checkpoint, start, history = output / CHECKPOINT, 0, []
    if resume and checkpoint.is_file():
        state = torch.load(checkpoint, map_location=device, weights_only=True)
        if state["settings"] != settings:
            raise LeafnetError(f"{checkpoint} was written with other settings "
                               f"{state['settings']}; remove it to start again")
        autoencoder.load_state_dict(state["autoencoder"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        ema.load_state_dict(state["ema"])
        start, history = state["step"], state["history"]
    bf16 = device == "cpu" and cpu_has_bf16()
    scores: dict[str, float] = {}
    started = time.perf_counter()
    for step in tqdm(range(start, steps), initial=start, total=steps, desc="shipped autoencoder"):
        batch = draw_batch(seed, step, batch_size, size, real, real_share)
        optimizer.zero_grad(set_to_none=True)
        loss = reconstruction_loss(module, batch, seed, step, device, bf16)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        scheduler.step()
        ema.step(parameters)
        if (step + 1) % validate_every == 0 or step + 1 == steps:
            ema.store(parameters)
            ema.copy_to(parameters)
            autoencoder.eval()
            scores = validate(autoencoder, validation, device)
            autoencoder.train()
            ema.restore(parameters)
            history.append({"step": step + 1, "loss": float(loss.detach()), **scores,
                            "seconds": time.perf_counter() - started})
            tqdm.write(f"step {step + 1}: loss {float(loss.detach()):.4f}, " + ", ".join(
                f"{name} {value:.4f}" for name, value in scores.items()))
            with atomic_path(checkpoint) as temporary:
                torch.save({"settings": settings,
                            "autoencoder": autoencoder.state_dict(),
                            "optimizer": optimizer.state_dict(),
                            "scheduler": scheduler.state_dict(), "ema": ema.state_dict(),
                            "step": step + 1, "history": history}, temporary)
    ema.copy_to(parameters)
    autoencoder.eval()
    export(autoencoder, output, preset, {
        "trained_on": {"random_shapes": "leafnet/training/mask_shapes.py",
                       "real_masks": [str(folder) for folder in masks],
                       "real_share": real_share},
        "steps": steps, "batch_size": batch_size, "size": size, "seed": seed,
        "validation": scores, "history": history}, device)
    return scores


@exit_on_user_error("shipped_first_stage")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m leafnet.training.shipped_first_stage",
                                     description=__doc__)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="small")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--masks", type=Path, action="append", default=[],
                        help="a folder of real training masks (repeatable)")
    parser.add_argument("--validate-every", type=int, default=250)
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--c", action="store_true", help="continue from the checkpoint")
    args = parser.parse_args(argv)
    scores = train(args.preset, args.steps, args.output, args.masks, args.seed, args.batch_size,
                   args.size, validate_every=args.validate_every, resume=args.c)
    print(f"written to {args.output}: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))


if __name__ == "__main__":
    main()
