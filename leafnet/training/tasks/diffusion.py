"""The LEAF diffusion task: the image latent (trainable encoder copy) beside the noisy mask
latent, the U-Net's output turned into an estimate of z0 by the parameterization, L1 to the
true mask latent, plus lambda x the feature alignment loss when a teacher is set. Beyond the
paper: where the training timesteps are drawn (diffusion/timesteps.py) and an optional pixel
loss on the mask decoded from the estimated z0 by the frozen decoder.

Validation runs the real single-step predictor; after training the best model predicts the
fold's validation and test cases from the raw images at their original size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from leafnet.diffusion import estimate_z0
from leafnet.diffusion.timesteps import TIMESTEP_SAMPLINGS, draw_timesteps
from leafnet.errors import LeafnetError
from leafnet.features.cache import teacher_signature
from leafnet.inference.predict_cases import LabelledCases, predict_and_score
from leafnet.inference.two_stages import load_predictor
from leafnet.models.autoencoder import rgb_layout, unrecorded_rgb_layout
from leafnet.models.fold_record import FirstStage, model_digest, read_fold_record
from leafnet.models.distillation import EncoderFeatureHook, Projector
from leafnet.models.network import LEAFNetwork, NetworkConfig, build_network, network_config
from leafnet.models.shipped_autoencoder import (
    TARGET_RECONSTRUCTION_DICE,
    ceiling_by_class,
    describe_ceiling,
)
from leafnet.paths import trainer_output
from leafnet.raw_format import find_dataset
from leafnet.training.checkpointing import export_model, trainable_parameters
from leafnet.training.tasks.alignment import FeatureAlignment
from leafnet.training.tasks.autoencoder import FIRST_STAGE_RECORD
from leafnet.training.tasks.mask_latents import MaskLatentCache
from leafnet.training.losses import dice_bce_loss
from leafnet.utilities.json_files import read_json
from leafnet.training.tasks.task import (
    RunContext,
    TrainingTask,
    mean_dice_and_iou,
    step_generator,
)


CEILING_CASES = 32


def first_stage_folder(dataset_name: str, first_stage: str, plans_name: str, preset: str,
                       fold: int) -> Path:
    """Where first-stage trainer ``first_stage`` exports the autoencoder a diffusion run of the
    same dataset, plans, preset and fold uses."""
    return trainer_output(dataset_name, first_stage, plans_name, preset, fold) / "autoencoder"


class DiffusionStep(nn.Module):
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


class DiffusionTask(TrainingTask):
    """Trains the LEAF network with one parameterization and optional feature alignment."""

    def __init__(self, run: RunContext, prediction_type: str, first_stage: str,
                 alignment: FeatureAlignment | None = None, timestep_sampling: str = "uniform",
                 pixel_loss_weight: float = 0.0) -> None:
        super().__init__(run)
        if timestep_sampling not in TIMESTEP_SAMPLINGS:
            raise LeafnetError(f"timestep sampling '{timestep_sampling}' is not one of "
                               f"{', '.join(TIMESTEP_SAMPLINGS)}")
        self.prediction_type, self.first_stage, self.alignment = (prediction_type, first_stage,
                                                                  alignment)
        self.timestep_sampling, self.pixel_loss_weight = timestep_sampling, pixel_loss_weight
        self.mask_latents = MaskLatentCache()
        self.recorded_ceiling: dict[str, float] | None = None
        self.first_stage_target: float | None = None

    def _first_stage(self) -> tuple[Path, dict[str, Any] | None]:
        """The first stage's folder and record (None when it was not trained)."""
        run = self.run
        folder = first_stage_folder(run.dataset_folder.name, self.first_stage, run.plans_name,
                                    run.preset.name, run.fold)
        return folder, read_json(folder / FIRST_STAGE_RECORD)

    def first_stage_identity(self) -> FirstStage:
        """The mask autoencoder this run uses, for the fold record: a pretrained preset's
        weights by name, or the first stage's folder with the digest of its weights, its latent
        scale and whether it is the shipped autoencoder as it came or fine-tuned here."""
        run = self.run
        if run.preset.pretrained is not None:
            return FirstStage(run.preset.pretrained, "pretrained", None,
                              network_config(run.preset.name).latent_scale)
        folder, record = self._first_stage()
        source = folder.relative_to(folder.parents[2]).as_posix()
        if record is None:
            return FirstStage(source, "missing", None, None)
        tuned = read_fold_record(folder.parent)
        steps = tuned.steps_done if tuned is not None else None
        origin = ("trained here" if record.get("initial_weights") != "shipped" else
                  "shipped" if steps == 0 else "shipped, fine-tuned here")
        return FirstStage(source, origin, model_digest(folder), record["latent_scale"])

    def network_config(self) -> NetworkConfig:
        """The preset's network; without pretrained weights, the first stage trained here."""
        run = self.run
        scheme = run.plans.label_scheme
        if run.preset.pretrained is not None:
            return network_config(run.preset.name, self.prediction_type,
                                  mask_channels=scheme.num_channels)
        dataset = run.dataset_folder.name
        folder, record = self._first_stage()
        if record is None:
            raise LeafnetError(
                f"the '{run.preset.name}' preset has no pretrained autoencoder and none was "
                f"trained for this dataset and fold ({folder} is missing). Train it first: "
                f"leafnet_train {dataset} {self.first_stage} -f {run.fold} "
                f"--preset {run.preset.name} (or choose another with --first-stage)"
            )
        coded = record.get("label_handling")
        if (coded != scheme.coding) if coded is not None else not scheme.is_binary:
            raise LeafnetError(
                f"the first stage in {folder} was trained on other label classes "
                f"({coded or 'one mask channel'}) than the plans now ask for "
                f"({scheme.describe()}); train it again: leafnet_train {dataset} "
                f"{self.first_stage} -f {run.fold} --preset {run.preset.name}")
        layout = rgb_layout(scheme.num_channels)
        recorded = record.get("rgb_layout", unrecorded_rgb_layout(scheme.num_channels))
        if recorded != layout:
            raise LeafnetError(
                f"the first stage in {folder} lays the mask channels out in RGB as {recorded} "
                f"(-1: B left at -1), not as {layout}; train it again: "
                f"leafnet_train {dataset} {self.first_stage} -f {run.fold} "
                f"--preset {run.preset.name}")
        self.recorded_ceiling = record.get("reconstruction_dice")
        self.first_stage_target = record.get("target_dice")
        return network_config(run.preset.name, self.prediction_type, str(folder),
                              record["latent_scale"], scheme.num_channels)

    def start_notes(self) -> list[str]:
        """The ceiling this run works under: the reconstruction Dice of the training masks
        through the frozen mask autoencoder at the plans' size, which a prediction decoded by it
        can hardly pass there. Recorded by a trained first stage; measured here for a
        pretrained one. Under the target, what to do about it."""
        run = self.run
        scheme = run.plans.label_scheme
        ceiling = self.recorded_ceiling
        if ceiling is None:
            ceiling = ceiling_by_class(self.network.autoencoder, scheme,
                                       run.training_masks(CEILING_CASES), run.device)
        note = (f"ceiling: the mask autoencoder reconstructs this fold's training masks at Dice "
                f"{describe_ceiling(scheme, ceiling)} at the plans' size; predictions decoded "
                "by it can hardly score higher there")
        if min(ceiling.values()) >= TARGET_RECONSTRUCTION_DICE:
            return [note]
        dataset = run.dataset_folder.name
        larger = (f"or plan a larger size: leafnet_plan_and_preprocess -d {dataset} "
                  "--target-size H W")
        if run.preset.pretrained is not None:
            why = f"the '{run.preset.name}' preset's pretrained autoencoder; {larger}"
        else:
            extend = (f"train it further: leafnet_train {dataset} {self.first_stage} -f "
                      f"{run.fold} --preset {run.preset.name} --c --extend --steps N, {larger}")
            reached_cap = self.first_stage_target is not None
            why = (f"the first stage stopped at its cap before reaching it; {extend}"
                   if reached_cap else f"the first stage trains a fixed number of steps with no "
                   f"goal; {extend}")
        return [f"{note} (under the {TARGET_RECONSTRUCTION_DICE:g} leafnet aims for: {why})"]

    def build(self) -> list[nn.Parameter]:
        self.network = build_network(self.network_config()).to(self.run.device)
        self.hook: EncoderFeatureHook | None = None
        self.projector: Projector | None = None
        parameters = trainable_parameters(self.network)
        if self.alignment is not None:
            self.hook, self.projector = self.alignment.build(self.network)
            parameters += list(self.projector.parameters())
        return parameters

    def ema_parameters(self) -> list[nn.Parameter]:
        return trainable_parameters(self.network)

    def trained_module(self) -> nn.Module:
        return DiffusionStep(self.network, self.projector, self.hook)

    def compute_losses(self, module: nn.Module, batch: dict[str, Any],
                       step: int) -> dict[str, torch.Tensor]:
        """L1 between the estimated and the true mask latent (+ lambda x Eq. 5). Noise and
        timesteps are drawn for the global batch and sliced, so DDP equals one process. The
        true latents of flip-only batches come from the cache (mask_latents.py)."""
        run, schedule = self.run, self.network.schedule
        image = torch.from_numpy(run.local(batch["image"])).to(run.device)
        mask = torch.from_numpy(run.local(batch["mask"])).to(run.device)
        with torch.no_grad():
            if batch.get("views_fixed"):
                target = self.mask_latents(self.network, mask, run.local(batch["case_index"]),
                                           run.local(batch["flip"]))
            else:
                target = self.network.encode_mask(mask).float()
        generator = step_generator(run.seed, step)
        noise = run.local(torch.randn((run.global_batch, *target.shape[1:]),
                                      generator=generator)).to(run.device)
        timesteps = run.local(draw_timesteps(self.timestep_sampling, schedule.num_train_timesteps,
                                             run.global_batch, generator)).to(run.device)
        noisy = schedule.add_noise(target, noise, timesteps)
        with run.autocast():
            output, projected = module(image, noisy, timesteps)
        z0 = estimate_z0(self.prediction_type, output, noisy, timesteps, schedule)
        losses = {"pred": F.l1_loss(z0, target)}
        total = losses["pred"]
        if self.pixel_loss_weight:
            with run.autocast():
                probability = self.network.decode_mask(z0).float()
            losses["pixel"] = dice_bce_loss(probability, mask)
            total = total + self.pixel_loss_weight * losses["pixel"]
        if projected is not None:
            losses["distill"] = self.alignment.loss(batch, image, projected)
            total = total + self.alignment.weight * losses["distill"]
        losses["loss"] = total
        return losses

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean Dice and IoU of the single-step predictor on the validation images (fixed
        noise seed)."""
        if not len(self.run.val_cases):
            return {}
        self.network.eval()
        generator = torch.Generator(self.run.device).manual_seed(self.run.seed)
        probabilities, targets = [], []
        for image, mask in self.run.validation_batches():
            probabilities += list(self.network.predict(image, generator).float().cpu().numpy())
            targets += list(mask)
        self.network.train()
        return mean_dice_and_iou(self.run.plans.label_scheme, probabilities, targets)

    def model_state(self) -> dict[str, Any]:
        return {"network_config": self.network.config.to_json(),
                "network": self.network.state_dict(),
                "projector": self.alignment.state() if self.alignment is not None else None}

    def load_model_state(self, state: dict[str, Any]) -> None:
        self.network.load_state_dict(state["network"])
        if self.alignment is not None:
            self.alignment.load_state(state["projector"])

    def teacher_identity(self) -> tuple[str | None, str | None]:
        if self.alignment is None:
            return None, None
        return self.alignment.teacher, teacher_signature(self.alignment.teacher)

    def settings(self) -> dict[str, Any]:
        return {"distill_lambda": self.alignment.weight if self.alignment is not None else 0.0,
                "first_stage": self.first_stage}

    def export(self, checkpoint: str) -> Path:
        """``model_best/`` or ``model_final/``: what prediction loads, so that it never unpickles
        a training checkpoint."""
        folder = export_model(self.network, self.run.output, checkpoint)
        self.run.log(f"inference model ({checkpoint}) saved to {folder}")
        return folder

    def after_training(self) -> None:
        """Predict the validation and test cases from the raw images (original size) with the
        best model; write ``validation/`` and ``test/`` with a summary.json each."""
        run = self.run
        try:
            raw = find_dataset(run.dataset_folder.name)
        except LeafnetError:
            run.log(f"raw dataset {run.dataset_folder.name} not found: validation/test "
                    "predictions skipped")
            return
        try:
            predictor = load_predictor([run.output], "best", run.device)
        except LeafnetError as error:
            run.log(f"validation/test predictions skipped: {error}")
            return
        for split, case_ids in (("validation", run.split.val), ("test", run.split.test)):
            if not case_ids:
                continue
            folder = run.output / split
            summary = predict_and_score(predictor, LabelledCases.of_split(raw, case_ids), folder,
                                        run.seed).summary
            if summary is not None:
                means = ", ".join(f"{k} {v:.4f}" for k, v in summary.foreground_mean.items())
                run.log(f"{split}: {summary.num_cases} cases, {means} "
                        f"({folder / 'summary.json'})")
