"""The paper's tables as lists of trainers: which trainer each row trains, and its labels.

Table 2 (``parameterization``): eps, v and x0 prediction, each without and with feature
alignment. Table 3 (``lambda``): the distillation weight. Table 4 (``stability``): eps vs x0
predicted with several noise seeds. ``variants`` is beyond the paper: the training-timestep
distributions and the pixel loss of issue 13 beside the paper's x0 row. Every row is an ordinary
trainer found by name, so a table is nothing more than the commands a user could type one by
one.
"""

from __future__ import annotations

from dataclasses import dataclass

from leafnet.errors import LeafnetError
from leafnet.training.trainers.variants import (
    PAPER_LAMBDAS,
    LEAFTrainer_x0_distill,
    lambda_variant_name,
)


@dataclass(frozen=True)
class Row:
    """One table row: the paper's labels for it (column -> text) and the trainer that makes it."""

    labels: dict[str, str]
    trainer: str


@dataclass(frozen=True)
class Table:
    name: str
    title: str
    label_columns: tuple[str, ...]
    rows: tuple[Row, ...]
    default_seeds: int
    note: str = ""


def _lambda_trainer(value: float) -> str:
    """lambda = 0 is LEAFTrainer_x0 (a zero weight adds no gradient, so no teacher is needed)
    and the default lambda is LEAFTrainer_x0_distill: both are rows of the parameterization
    table, so their runs are shared with it."""
    if value == 0:
        return "LEAFTrainer_x0"
    if value == LEAFTrainer_x0_distill.distill_lambda:
        return "LEAFTrainer_x0_distill"
    return lambda_variant_name(value)


TABLES = {
    "parameterization": Table(
        "parameterization", "Table 2: prediction target and feature alignment",
        ("prediction", "feature alignment"),
        tuple(Row({"prediction": target, "feature alignment": aligned},
                  f"LEAFTrainer_{target}" + ("_distill" if aligned == "yes" else ""))
              for target in ("eps", "v", "x0") for aligned in ("no", "yes")),
        default_seeds=1),
    "lambda": Table(
        "lambda", "Table 3: weight lambda of the feature alignment loss (x0 prediction, DINOv2)",
        ("lambda",),
        tuple(Row({"lambda": f"{value:g}"}, _lambda_trainer(value)) for value in PAPER_LAMBDAS),
        default_seeds=1,
        note="lambda = 0 is LEAFTrainer_x0 (the alignment term adds no gradient) and 0.75 is "
             "LEAFTrainer_x0_distill: the parameterization table's runs."),
    "stability": Table(
        "stability", "Table 4: stability over noise seeds (std of the per-seed mean Dice)",
        ("prediction",),
        tuple(Row({"prediction": target}, f"LEAFTrainer_{target}") for target in ("eps", "x0")),
        default_seeds=10),
    "variants": Table(
        "variants", "Beyond the paper: training timesteps and pixel loss (x0 prediction)",
        ("training timesteps", "extra"),
        (Row({"training timesteps": "uniform (paper)", "extra": "-"}, "LEAFTrainer_x0"),
         Row({"training timesteps": "t = T-1", "extra": "-"}, "LEAFTrainer_x0_tlast"),
         Row({"training timesteps": "top 10%", "extra": "-"}, "LEAFTrainer_x0_ttop10"),
         Row({"training timesteps": "half T-1, half uniform", "extra": "-"},
             "LEAFTrainer_x0_tmix"),
         Row({"training timesteps": "uniform (paper)", "extra": "pixel Dice + BCE"},
             "LEAFTrainer_x0_pixel"),
         Row({"training timesteps": "t = T-1",
              "extra": "cosine LR, spatial + intensity augmentation"}, "LEAFTrainer_x0_cpu")),
        default_seeds=1,
        note="The first row is the parameterization table's LEAFTrainer_x0 run, shared with it; "
             "every row trains for the same steps."),
}


def get_table(name: str) -> Table:
    if name not in TABLES:
        raise LeafnetError(f"unknown table '{name}'; choose one of {', '.join(TABLES)}")
    return TABLES[name]
