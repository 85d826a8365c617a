"""LEAFAutoencoderTrainer: the loop training LDM's first stage (tasks/autoencoder.py).

Used by presets without a pretrained autoencoder (``small``, ``tiny``): L1 reconstruction plus
1e-6 x KL (plus the masks' soft Dice when they have several classes), AdamW 5e-4, batches of
masks and images as random 128 px crops. Every first-stage trainer starts from the preset's
shipped mask autoencoder and trains only until the training masks' reconstruction Dice reaches
``target_dice`` for every class (checked every ``check_every`` steps; ``num_steps`` and
``--minutes`` are caps); ``LEAFAutoencoderTrainer_scratch`` is the earlier recipe (random
weights, a fixed number of steps), kept for comparison.

``LEAFAutoencoderTrainer_masks`` trains on the masks alone: the frozen autoencoder only ever
encodes and decodes masks (the image encoder is a trainable copy, trained end to end), so it
learns the masks faster and at half the cost per step (docs/results.md).
"""

from __future__ import annotations

from leafnet.models.shipped_autoencoder import TARGET_RECONSTRUCTION_DICE
from leafnet.training.loop import Trainer
from leafnet.training.tasks.autoencoder import AutoencoderTask
from leafnet.training.tasks.task import RunContext


class LEAFAutoencoderTrainer(Trainer):
    num_steps = 1500
    warmup_steps = 20
    validate_every = 100
    learning_rate = 5e-4
    kl_weight = 1e-6
    dice_weight = 1.0
    crop_size = 128
    scale_cases = 64
    train_on_images = True
    initial_weights: str | None = "shipped"
    target_dice: float | None = TARGET_RECONSTRUCTION_DICE
    check_every = 50

    def make_task(self, run: RunContext) -> AutoencoderTask:
        return AutoencoderTask(run, self.kl_weight, self.crop_size, self.scale_cases,
                               self.train_on_images, self.dice_weight, self.initial_weights,
                               self.target_dice, check_every=self.check_every)


class LEAFAutoencoderTrainer_scratch(LEAFAutoencoderTrainer):
    """The first stage before leafnet shipped one: random weights, 400 steps, no goal."""

    num_steps = 400
    initial_weights = None
    target_dice = None


class LEAFAutoencoderTrainer_masks(LEAFAutoencoderTrainer):
    train_on_images = False


class LEAFAutoencoderTrainer_cpu(LEAFAutoencoderTrainer_masks):
    """The first stage of the CPU recipe (with LEAFTrainer_x0_cpu): masks only, cosine decay
    over the run (or its --minutes), bf16 autocast on CPUs with native bf16."""

    lr_schedule = "cosine"
    cpu_bf16 = True
