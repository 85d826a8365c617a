"""Finding the trained model to predict with: the only one there is, or the one the flags name;
and the stages before a crop stage (its plans' ``previous_stage``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from leafnet.errors import LeafnetError
from leafnet.models.fold_record import FOLD_PLANS_FILE, read_fold_record
from leafnet.models.network import WEIGHTS_FILE
from leafnet.paths import parse_run_folder_name, results_root, run_folder_name
from leafnet.preprocessing.plans import Plans
from leafnet.raw_format.locate import dataset_number, is_dataset_folder_name


def trained_models(root: Path | None = None) -> list[Path]:
    """Fold folders of diffusion trainers (first-stage trainers excluded) with an exported
    model (``model_final/``, or only ``model_best/`` for an installed archive)."""
    root = results_root() if root is None else root
    folders = []
    for weights in sorted(root.glob(f"Dataset*/*/fold_*/model_*/{WEIGHTS_FILE}")):
        folder = weights.parent.parent
        if (parse_run_folder_name(folder.parent.name) is not None and folder not in folders
                and is_dataset_folder_name(folder.parent.parent.name)):
            folders.append(folder)
    return folders


def _describe(folder: Path) -> str:
    trainer, plans, preset = parse_run_folder_name(folder.parent.name)
    dataset = folder.parent.parent.name
    return (f"{dataset}/{folder.parent.name}/{folder.name}  "
            f"(-d {dataset_number(dataset)} -tr {trainer} "
            f"-f {folder.name.removeprefix('fold_')} -p {plans} --preset {preset})")


def find_model(dataset: str | None = None, trainer: str | None = None, fold: int | None = None,
               plans: str | None = None, preset: str | None = None) -> Path:
    """The fold folder selected by the given flags; an error lists the candidates otherwise."""
    candidates = trained_models()
    if dataset is not None:
        number = dataset_number(dataset)
        candidates = [c for c in candidates if dataset_number(c.parent.parent.name) == number]
    for value, index in ((trainer, 0), (plans, 1), (preset, 2)):
        if value is not None:
            candidates = [c for c in candidates
                          if parse_run_folder_name(c.parent.name)[index] == value]
    if fold is not None:
        candidates = [c for c in candidates if c.name == f"fold_{fold}"]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise LeafnetError(f"no trained model matches in {results_root()}; train one with "
                           "leafnet_train (models found: "
                           f"{len(trained_models())})")
    listing = "\n  ".join(_describe(c) for c in candidates)
    raise LeafnetError(f"{len(candidates)} trained models match; choose one with the flags "
                       f"shown:\n  {listing}")


def find_models(dataset: str | None = None, trainer: str | None = None,
                folds: list[int] | None = None, plans: str | None = None,
                preset: str | None = None) -> list[Path]:
    """The fold folders of one trained model for ``folds`` (an ensemble), or the single fold
    the other flags select when ``folds`` is None."""
    if not folds:
        return [find_model(dataset, trainer, None, plans, preset)]
    found = [find_model(dataset, trainer, fold, plans, preset) for fold in folds]
    runs = sorted({str(folder.parent) for folder in found})
    if len(runs) > 1:
        raise LeafnetError("the folds belong to different models; choose one with -d, -tr, -p "
                           "and --preset:\n  " + "\n  ".join(runs))
    return found


def previous_stage_folders(folders: Sequence[Path], plans: Plans) -> list[Path]:
    """The fold folders of the stage before ``folders`` (whose ``plans`` have a
    ``previous_stage``): the same trainer, preset and folds under the previous stage's plans,
    beside them; an error names the training command when one is missing."""
    link = plans.previous_stage
    assert link is not None
    found = []
    for folder in folders:
        parsed = parse_run_folder_name(folder.parent.name)
        if parsed is None:
            raise LeafnetError(f"{folder}: a crop stage is predicted beside its coarse stage in "
                               "leafnet_results; install the archive (leafnet_install) with the "
                               "coarse stage's")
        trainer, _, preset = parsed
        previous = folder.parent.parent / run_folder_name(trainer, link.plans, preset) / folder.name
        if not any((previous / name / WEIGHTS_FILE).is_file()
                   for name in ("model_final", "model_best")):
            dataset = folder.parent.parent.name
            record = read_fold_record(folder)
            stage = record.inputs.first_stage if record is not None else None
            source = stage.source if stage is not None else ""
            run = parse_run_folder_name(Path(source).parts[0]) if source else None
            first_stage = run[0] if run else ""
            raise LeafnetError(
                f"{folder} is the crop stage of a two-stage model; its coarse stage {previous} "
                f"is not trained. Train it: leafnet_train {dataset} {trainer} -p {link.plans} "
                f"-f {folder.name.removeprefix('fold_')} --preset {preset}"
                + (f" --first-stage {first_stage}" if first_stage else ""))
        found.append(previous)
    return found


def stage_folders(folders: Sequence[Path]) -> list[list[Path]]:
    """The fold folders of every stage of the model of ``folders``, following each stage's
    ``previous_stage`` back: the first stage first, ``folders`` last."""
    chain = [list(folders)]
    seen = {folders[0].parent.name}
    while True:
        plans = Plans.load(chain[0][0] / FOLD_PLANS_FILE,
                           "the model folder is incomplete; train it again")
        if plans.previous_stage is None:
            return chain
        previous = previous_stage_folders(chain[0], plans)
        if previous[0].parent.name in seen:
            raise LeafnetError(f"{chain[0][0]}: its plans' previous_stage leads back to "
                               f"{previous[0].parent.name}, a loop; fix previous_stage in the "
                               "plans and train again")
        seen.add(previous[0].parent.name)
        chain.insert(0, previous)
