"""LEAFTrainer: the training loop every trainer shares, and the diffusion task it trains.

Variants are subclasses that change class attributes only (see variants.py). The loop: AdamW
(weight decay 0.01), linear warm-up then a constant learning rate, gradient clipping at 1.0, EMA
weights for validation and checkpoints, bf16 autocast on CUDA only, validation every K steps on
the fold's validation cases with the real single-step predictor, checkpoint_best by validation
Dice. Batches, noise and timesteps are functions of (seed, step), so ``--c`` resumes exactly.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.training_utils import EMAModel
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from leafnet.diffusion import estimate_z0
from leafnet.errors import LeafnetError
from leafnet.evaluation.metrics import dice_and_iou
from leafnet.features.cache import FeatureCache, load_or_build_cache
from leafnet.inference.predict_cases import predict_cases
from leafnet.inference.predictor import LEAFPredictor
from leafnet.models.distillation import EncoderFeatureHook, Projector, distillation_loss
from leafnet.models.network import (
    LEAFNetwork,
    NetworkConfig,
    build_network,
    network_config,
)
from leafnet.models.presets import Preset, get_preset
from leafnet.models.teachers import Teacher, load_teacher
from leafnet.paths import plain_name, trainer_output
from leafnet.planning.plans import SPLITS_FILE, plans_file
from leafnet.preprocessing.plans import Plans
from leafnet.preprocessing.preprocessed_data import case_paths
from leafnet.raw_format import find_dataset
from leafnet.training.checkpointing import (
    export_model,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
    trainable_parameters,
)
from leafnet.training.data_loading import PreprocessedCases, make_loader
from leafnet.training.distributed import init_distributed, shutdown_distributed
from leafnet.training.locate import preprocessed_dataset
from leafnet.training.progress import log_line, plot_progress
from leafnet.utilities.json_files import read_json
from leafnet.utilities.machine import default_device

AUTOENCODER_TRAINER = "LEAFAutoencoderTrainer"
PREPROCESS_FIX = "run leafnet_plan_and_preprocess"


def _step_generator(seed: int, step: int, salt: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 7 + salt)


class _DiffusionStep(nn.Module):
    """What one training forward computes, as a module so DDP can wrap it."""

    def __init__(self, network: LEAFNetwork, projector: Projector | None,
                 hook: EncoderFeatureHook | None) -> None:
        super().__init__()
        self.network, self.projector, self.hook = network, projector, hook

    def forward(self, image: torch.Tensor, noisy: torch.Tensor,
                timesteps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        image_latent = self.network.encode_image(image)
        if self.hook is None:
            return self.network.denoise(image_latent, noisy, timesteps), None
        with self.hook:
            output = self.network.denoise(image_latent, noisy, timesteps)
        return output, self.projector(self.hook.feature)


class LEAFTrainer:
    """Trains the LEAF network; the class attributes are the settings a variant may change."""

    prediction_type = "x0"
    teacher: str | None = None
    distill_lambda = 0.0
    teacher_features = "cache"
    num_steps = 1000
    warmup_steps = 50
    validate_every = 100
    learning_rate: float | None = None
    weight_decay = 0.01
    grad_clip = 1.0
    ema_decay = 0.999
    flips = True
    first_stage = AUTOENCODER_TRAINER
    num_workers = 2
    validation_batch_size = 4

    def __init__(self, dataset: str | int, fold: int = 0, plans_name: str = "leafnetPlans",
                 preset: str | None = None, device: str | None = None, seed: int = 12345,
                 num_steps: int | None = None, lam: float | None = None,
                 validate_every: int | None = None, num_workers: int | None = None,
                 first_stage: str | None = None, show_progress: bool = True) -> None:
        self.device = device or default_device()
        self.context = init_distributed(self.device)
        if self.context.enabled and self.device.startswith("cuda"):
            self.device = f"cuda:{self.context.local_rank}"
        self.name = type(self).__name__
        self.folder = preprocessed_dataset(dataset)
        self.plans_name = plans_name
        self.plans_path = self.folder / plans_file(plans_name)
        self.plans = Plans.load(self.plans_path, PREPROCESS_FIX)
        self.preset: Preset = get_preset(preset or self.plans.preset)
        self.fold, self.seed, self.show_progress = fold, seed, show_progress
        self.num_steps = num_steps if num_steps is not None else type(self).num_steps
        self.distill_lambda = lam if lam is not None else type(self).distill_lambda
        if validate_every is not None:
            self.validate_every = validate_every
        if num_workers is not None:
            self.num_workers = num_workers
        if first_stage is not None:
            self.first_stage = first_stage
        self.split = self._fold_split()
        self.output = trainer_output(self.folder.name, self.name, plans_name, self.preset.name,
                                     fold)
        data = self.folder / self.plans.data_identifier
        self._check_preprocessed(data)
        scheme = self.plans.label_scheme
        self.train_cases = PreprocessedCases(data, self.split["train"], scheme)
        self.val_cases = PreprocessedCases(data, self.split["val"], scheme)
        batch = self.plans.batch_size
        if batch % self.context.world_size:
            raise LeafnetError(f"batch size {batch} (plans) does not split over "
                               f"{self.context.world_size} processes")
        self.global_batch = batch
        self.local_batch = batch // self.context.world_size
        self.history: dict[str, Any] = {"train_step": [], "losses": {}, "lr": [],
                                        "step_seconds": [],
                                        "val_step": [], "val_dice": [], "val_iou": []}
        self.best_dice = -1.0

    # -- set-up ---------------------------------------------------------------------------
    def _fold_split(self) -> dict[str, list[str]]:
        path = self.folder / SPLITS_FILE
        splits = read_json(path, PREPROCESS_FIX)
        folds = splits["folds"] if isinstance(splits, dict) else splits
        if not 0 <= self.fold < len(folds):
            raise LeafnetError(f"fold {self.fold} does not exist; splits_final.json has "
                               f"{len(folds)} fold(s) (0..{len(folds) - 1})")
        split = {"train": folds[self.fold]["train"], "val": folds[self.fold]["val"],
                 "test": splits.get("test", []) if isinstance(splits, dict) else []}
        for case_id in (c for ids in split.values() for c in ids):
            plain_name(case_id, "case id", path)
        return split

    def _check_preprocessed(self, data: Path) -> None:
        """Refuse to train on a dataset whose preprocessing is unfinished, or whose raw dataset
        changed after planning (the plans and arrays would be stale)."""
        fix = f"run 'leafnet_plan_and_preprocess -d {self.folder.name[7:10]}'"
        missing = [case for case in self.split["train"] + self.split["val"]
                   if not case_paths(data, case)["properties"].is_file()]
        if missing:
            raise LeafnetError(
                f"{data} lacks the preprocessed arrays of {len(missing)} cases of fold "
                f"{self.fold} (e.g. {', '.join(missing[:5])}): preprocessing did not finish; "
                f"{fix} (it resumes)")
        try:
            raw = find_dataset(self.folder.name)
        except LeafnetError:
            return
        if (raw / "dataset.json").read_bytes() != (self.folder / "dataset.json").read_bytes():
            raise LeafnetError(
                f"{raw / 'dataset.json'} changed after planning ({self.folder} holds the planned "
                f"copy): the plans and arrays may be stale; {fix}")

    def network_config(self) -> NetworkConfig:
        """The preset's network; without pretrained weights, the first stage trained here."""
        if self.preset.pretrained is not None:
            return network_config(self.preset.name, self.prediction_type)
        folder = trainer_output(self.folder.name, self.first_stage, self.plans_name,
                                self.preset.name, self.fold) / "autoencoder"
        if not (folder / "latent_scale.json").is_file():
            raise LeafnetError(
                f"the '{self.preset.name}' preset has no pretrained autoencoder and none was "
                f"trained for this dataset and fold ({folder} is missing). Train it first: "
                f"leafnet_train {self.folder.name} {self.first_stage} -f {self.fold} "
                f"--preset {self.preset.name} (or choose another with --first-stage)"
            )
        scale = json.loads((folder / "latent_scale.json").read_text())["latent_scale"]
        return network_config(self.preset.name, self.prediction_type, str(folder), scale)

    def first_block_output(self) -> tuple[int, int]:
        """Grid side and channels of the first U-Net encoder block's output (16 for 256 px
        images): the teacher's token grid and the projector's input width."""
        latent = self.network.encode_image(torch.zeros(1, 3, *self.plans.target_size,
                                                       device=self.device))
        shapes = []
        handle = self.network.backbone.encoder_blocks()[0].register_forward_hook(
            lambda _m, _i, out: shapes.append((out[0] if isinstance(out, tuple) else out).shape))
        with torch.no_grad():
            self.network.denoise(latent, latent, torch.zeros(1, dtype=torch.long,
                                                             device=self.device))
        handle.remove()
        channels, height, width = shapes[0][-3:]
        if height != width:
            raise LeafnetError(f"feature alignment needs a square grid, the U-Net's first block "
                               f"is {height}x{width}; use a square target size")
        return height, channels

    def _load_teacher(self, grid: int) -> Teacher:
        return load_teacher(self.teacher, grid)

    def build(self) -> list[nn.Parameter]:
        """Build the network (and teacher features, projector); return what the optimizer trains."""
        self.network = build_network(self.network_config()).to(self.device)
        self.projector: Projector | None = None
        self.hook: EncoderFeatureHook | None = None
        self.cache: FeatureCache | None = None
        self.online_teacher: Teacher | None = None
        parameters = trainable_parameters(self.network)
        if self.teacher is not None:
            grid, channels = self.first_block_output()
            if self.teacher_features == "cache":
                self.cache = self._cache(grid)
                dim = int(next(iter(self.cache.views.values())).shape[-1])
            else:
                self.online_teacher = self._load_teacher(grid).to(self.device)
                dim = self.online_teacher.dim
            self.hook = EncoderFeatureHook(self.network.backbone, grid * grid)
            torch.manual_seed(self.seed + 1)
            self.projector = Projector(channels, dim).to(self.device)
            parameters += list(self.projector.parameters())
        return parameters

    def _cache(self, grid: int) -> FeatureCache:
        """Rank 0 builds (or validates) the cache while the other ranks wait, then they load it."""
        if not self.context.is_main:
            self.context.barrier()
        cache = load_or_build_cache(self.folder, self.teacher, grid, self.train_cases,
                                    lambda: self._load_teacher(grid), self.device,
                                    show_progress=self.show_progress and self.context.is_main)
        if self.context.is_main:
            self.context.barrier()
        return cache

    def trained_module(self) -> nn.Module:
        return _DiffusionStep(self.network, self.projector, self.hook)

    # -- one step ---------------------------------------------------------------------------
    def _local(self, array: np.ndarray) -> np.ndarray:
        start = self.context.rank * self.local_batch
        return array[start:start + self.local_batch]

    def compute_losses(self, batch: dict[str, Any], step: int) -> dict[str, torch.Tensor]:
        """L1 between the estimated and the true mask latent (+ lambda x Eq. 5)."""
        image = torch.from_numpy(self._local(batch["image"])).to(self.device)
        mask = torch.from_numpy(self._local(batch["mask"])).to(self.device)
        with torch.no_grad():
            target = self.network.encode_mask(mask).float()
        generator = _step_generator(self.seed, step)
        global_shape = (self.global_batch, *target.shape[1:])
        noise = self._local(torch.randn(global_shape, generator=generator)).to(self.device)
        timesteps = self._local(torch.randint(0, self.network.schedule.num_train_timesteps,
                                              (self.global_batch,), generator=generator))
        timesteps = timesteps.to(self.device)
        noisy = self.network.schedule.add_noise(target, noise, timesteps)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.startswith("cuda")):
            output, projected = self.module(image, noisy, timesteps)
        z0 = estimate_z0(self.prediction_type, output, noisy, timesteps, self.network.schedule)
        losses = {"pred": F.l1_loss(z0, target)}
        if projected is not None:
            if self.cache is not None:
                tokens = self.cache.tokens(self._local(batch["case_index"]),
                                           self._local(batch["flip"])).to(self.device)
            else:
                tokens = self.online_teacher(image)
            losses["distill"] = distillation_loss(tokens, projected)
            losses["loss"] = losses["pred"] + self.distill_lambda * losses["distill"]
        else:
            losses["loss"] = losses["pred"]
        return losses

    # -- validation -----------------------------------------------------------------------
    def _validation_batches(self):
        for start in range(0, len(self.val_cases), self.validation_batch_size):
            pairs = [self.val_cases.image_and_mask(i) for i in
                     range(start, min(start + self.validation_batch_size, len(self.val_cases)))]
            yield (torch.from_numpy(np.stack([p[0] for p in pairs])).to(self.device),
                   np.stack([p[1] for p in pairs]))

    def predict_validation(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.network.predict(image, generator)

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean Dice and IoU over validation images (EMA weights, fixed noise seed)."""
        if not len(self.val_cases):
            return {}
        self.network.eval()
        generator = torch.Generator(self.device).manual_seed(self.seed)
        scores = []
        for image, mask in self._validation_batches():
            probability = self.predict_validation(image, generator).float().cpu().numpy()
            scores += [dice_and_iou(p[0] > 0.5, m[0] > 0.5) for p, m in
                       zip(probability, mask, strict=True)]
        self.network.train()
        return {"dice": float(np.mean([s[0] for s in scores])),
                "iou": float(np.mean([s[1] for s in scores]))}

    # -- checkpoints ------------------------------------------------------------------------
    def model_state(self) -> dict[str, Any]:
        """The model part of a checkpoint (with what is needed to rebuild it)."""
        return {
            "network_config": self.network.config.to_json(),
            "network": self.network.state_dict(),
            "projector": self.projector.state_dict() if self.projector is not None else None,
        }

    def load_model_state(self, state: dict[str, Any]) -> None:
        self.network.load_state_dict(state["network"])
        if self.projector is not None:
            self.projector.load_state_dict(state["projector"])

    def checkpoint_state(self, step: int) -> dict[str, Any]:
        return {
            "trainer": self.name, "plans_name": self.plans_name, "preset": self.preset.name,
            "fold": self.fold, "seed": self.seed, "step": step, **self.model_state(),
            "ema": self.ema.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "history": self.history,
            "best_dice": self.best_dice, "distill_lambda": self.distill_lambda,
            "rng": rng_state(),
        }

    def restore(self, state: dict[str, Any]) -> int:
        if state["trainer"] != self.name:
            raise LeafnetError(f"checkpoint_latest.pth belongs to {state['trainer']}, not "
                               f"{self.name}")
        self.load_model_state(state)
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.history, self.best_dice = state["history"], state["best_dice"]
        set_rng_state(state["rng"])
        return int(state["step"])

    def validate_checkpoint(self, name: str = "checkpoint_final.pth") -> dict[str, float]:
        """``--val``: validation metrics of a saved checkpoint's EMA weights."""
        self.output.mkdir(parents=True, exist_ok=True)
        self._prepare()
        self.restore(load_checkpoint(self.output / name))
        metrics = self._with_ema(self.validate)
        self._log(f"validation of {name}: {metrics}")
        return metrics

    def after_training(self) -> None:
        """Predict the validation and test cases from the raw images (original size) with the
        best checkpoint; write ``validation/`` and ``test/`` with a summary.json each."""
        try:
            raw = find_dataset(self.folder.name)
        except LeafnetError:
            self._log(f"raw dataset {self.folder.name} not found: validation/test predictions "
                      "skipped")
            return
        predictor = LEAFPredictor.from_folder(self.output, "best", self.device)
        for split, case_ids in (("validation", self.split["val"]), ("test", self.split["test"])):
            if not case_ids:
                continue
            folder = self.output / split
            summary = predict_cases(predictor, raw, case_ids, folder, self.seed)
            if summary is not None:
                means = ", ".join(f"{k} {v:.4f}" for k, v in summary["foreground_mean"].items())
                self._log(f"{split}: {summary['num_cases']} cases, {means} "
                          f"({folder / 'summary.json'})")

    def export(self, checkpoint: str = "final") -> None:
        """Save the inference model of ``checkpoint`` (called with the EMA weights in place):
        what prediction loads, so that it never unpickles a training checkpoint."""
        folder = export_model(self.network, self.output, checkpoint)
        self._log(f"inference model ({checkpoint}) saved to {folder}")

    # -- the loop ---------------------------------------------------------------------------
    def _with_ema(self, function):
        parameters = self.ema_parameters
        self.ema.store(parameters)
        self.ema.copy_to(parameters)
        try:
            return function()
        finally:
            self.ema.restore(parameters)

    def _prepare(self) -> None:
        torch.manual_seed(self.seed)
        parameters = self.build()
        self.ema_parameters = self.ema_tracked_parameters()
        self.ema = EMAModel(self.ema_parameters, decay=self.ema_decay)
        learning_rate = self.learning_rate or self.preset.learning_rate
        self.optimizer = torch.optim.AdamW(parameters, lr=learning_rate,
                                           weight_decay=self.weight_decay)
        warmup = max(1, self.warmup_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: min(1.0, (step + 1) / warmup))
        self.parameters = parameters
        module = self.trained_module()
        if self.context.enabled:
            module = DistributedDataParallel(
                module, device_ids=[self.context.local_rank] if self.device.startswith("cuda")
                else None)
        self.module = module

    def ema_tracked_parameters(self) -> list[nn.Parameter]:
        return trainable_parameters(self.network)

    def _log(self, message: str) -> None:
        if self.context.is_main:
            log_line(self.output / "training_log.txt", message)

    def _copy_inputs(self) -> None:
        for source, name in ((self.plans_path, "plans.json"),
                             (self.folder / "dataset.json", "dataset.json")):
            shutil.copyfile(source, self.output / name)
        (self.output / "split.json").write_text(json.dumps(self.split, indent=1))

    def run(self, continue_training: bool = False) -> Path:
        """Train to ``num_steps`` (resuming from checkpoint_latest with ``continue_training``).
        The output folder is created only once everything training needs is there."""
        self._prepare()
        self.output.mkdir(parents=True, exist_ok=True)
        start = 0
        latest = self.output / "checkpoint_latest.pth"
        if continue_training and latest.is_file():
            start = self.restore(load_checkpoint(latest))
            self._log(f"resumed from {latest} at step {start}")
        elif self.context.is_main:
            self._copy_inputs()
            self._log(f"{self.name} on {self.folder.name} fold {self.fold}, preset "
                      f"{self.preset.name}, {len(self.train_cases)} train / "
                      f"{len(self.val_cases)} val cases, device {self.device}, "
                      f"{self.context.world_size} process(es), {self.num_steps} steps")
        loader = make_loader(self.train_cases, self.global_batch, self.seed, start, self.flips,
                             self.num_workers) if start < self.num_steps else None
        started = time.perf_counter()
        try:
            for step in range(start, self.num_steps):
                step_started = time.perf_counter()
                batch = next(loader)
                if batch["step"] != step:
                    raise RuntimeError(f"data loader out of order: {batch['step']} != {step}")
                self.optimizer.zero_grad(set_to_none=True)
                losses = self.compute_losses(batch, step)
                losses["loss"].backward()
                torch.nn.utils.clip_grad_norm_(self.parameters, self.grad_clip)
                self.optimizer.step()
                self.scheduler.step()
                self.ema.step(self.ema_parameters)
                self._record(step, losses, time.perf_counter() - step_started)
                done = step + 1
                if done % self.validate_every == 0 or done == self.num_steps:
                    self._end_of_interval(done, time.perf_counter() - started)
        finally:
            if loader is not None and hasattr(loader, "_finish"):
                loader._finish()
        if self.context.is_main:
            final = self.output / "checkpoint_final.pth"
            save_checkpoint(final, self.checkpoint_state(self.num_steps))
            self._with_ema(self.export)
            self.after_training()
            self._log(f"done: {final}")
        self.context.barrier()
        shutdown_distributed(self.context)
        return self.output

    def _record(self, step: int, losses: dict[str, torch.Tensor], seconds: float) -> None:
        self.history["train_step"].append(step)
        self.history["step_seconds"].append(seconds)
        for name, value in losses.items():
            self.history["losses"].setdefault(name, []).append(float(value.detach()))
        self.history["lr"].append(self.scheduler.get_last_lr()[0])

    def _end_of_interval(self, done: int, seconds: float) -> None:
        if self.context.is_main:
            metrics = self._with_ema(self.validate)
            recent = {k: float(np.mean(v[-self.validate_every:]))
                      for k, v in self.history["losses"].items()}
            text = ", ".join(f"{k} {v:.4f}" for k, v in recent.items())
            seconds_per_step = np.median(self.history["step_seconds"][-self.validate_every:])
            text += f", {seconds_per_step:.2f} s/step"
            if metrics:
                self.history["val_step"].append(done)
                self.history["val_dice"].append(metrics["dice"])
                self.history["val_iou"].append(metrics["iou"])
                text += f", val Dice {metrics['dice']:.4f}, IoU {metrics['iou']:.4f}"
            self._log(f"step {done}/{self.num_steps} ({seconds:.0f} s): {text}")
            state = self.checkpoint_state(done)
            if metrics and metrics["dice"] > self.best_dice:
                self.best_dice = metrics["dice"]
                state["best_dice"] = self.best_dice
                save_checkpoint(self.output / "checkpoint_best.pth", state)
                self._with_ema(lambda: self.export("best"))
            save_checkpoint(self.output / "checkpoint_latest.pth", state)
            plot_progress(self.output / "progress.png", self.history)
        self.context.barrier()
