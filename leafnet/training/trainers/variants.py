"""The trainer variants: each states only what differs from its parent."""

from __future__ import annotations

from leafnet.training.trainers.base import LEAFTrainer

PAPER_LAMBDAS = (0.0, 0.15, 0.25, 0.5, 0.75, 1.0, 1.25)


class LEAFTrainer_eps(LEAFTrainer):
    prediction_type = "eps"


class LEAFTrainer_v(LEAFTrainer):
    prediction_type = "v"


class LEAFTrainer_x0(LEAFTrainer):
    prediction_type = "x0"


class FeatureAlignment:
    """The paper's alignment settings, mixed into a parameterization: DINOv2, lambda 0.75."""

    teacher = "dinov2"
    distill_lambda = 0.75


class LEAFTrainer_x0_distill(FeatureAlignment, LEAFTrainer_x0):
    """x0 prediction with feature alignment: LEAF."""


class LEAFTrainer_x0_distill_clip(LEAFTrainer_x0_distill):
    teacher = "clip"


class LEAFTrainer_x0_distill_online(LEAFTrainer_x0_distill):
    """Teacher run on every batch instead of the cache (for augmentations the cache lacks)."""

    teacher_features = "online"


class LEAFTrainer_eps_distill(FeatureAlignment, LEAFTrainer_eps):
    """eps prediction with feature alignment (the ablation table)."""


class LEAFTrainer_v_distill(FeatureAlignment, LEAFTrainer_v):
    """v prediction with feature alignment (the ablation table)."""


def lambda_variant_name(value: float) -> str:
    """``LEAFTrainer_x0_distill_lam0p5`` for 0.5."""
    return f"LEAFTrainer_x0_distill_lam{str(value).replace('.', 'p')}"


def _lambda_variant(value: float) -> type[LEAFTrainer_x0_distill]:
    return type(lambda_variant_name(value), (LEAFTrainer_x0_distill,),
                {"distill_lambda": value, "__module__": __name__})


LAMBDA_VARIANTS = {variant.__name__: variant for variant in map(_lambda_variant, PAPER_LAMBDAS)}
globals().update(LAMBDA_VARIANTS)


class LEAFTrainer_x0_tlast(LEAFTrainer_x0):
    """Beyond the paper: every training step at t = T-1, where single-step inference starts."""

    timestep_sampling = "last"


class LEAFTrainer_x0_ttop10(LEAFTrainer_x0):
    """Beyond the paper: t drawn from the top 10% of the schedule."""

    timestep_sampling = "top10"


class LEAFTrainer_x0_tmix(LEAFTrainer_x0):
    """Beyond the paper: half the samples at t = T-1, half uniform."""

    timestep_sampling = "mix"


class LEAFTrainer_x0_pixel(LEAFTrainer_x0):
    """Beyond the paper: + Dice + BCE on the mask decoded from the estimated z0."""

    pixel_loss_weight = 1.0


class LEAFTrainer_x0_cpu(LEAFTrainer_x0):
    """The from-scratch recipe that learns fastest on a CPU (docs/results.md): t = T-1,
    cosine decay over the run (or its --minutes), batchgenerators augmentation, bf16 autocast
    on CPUs with native bf16."""

    timestep_sampling = "last"
    lr_schedule = "cosine"
    augmentation = "full"
    cpu_bf16 = True
    first_stage = "LEAFAutoencoderTrainer_cpu"
