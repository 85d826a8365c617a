"""Stability over noise seeds (the paper's Table 4): predict with N seeds, report each seed's
foreground means and their spread (evaluation/seed_spread.py, the experiments' schema)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from leafnet.atomic import write_json
from leafnet.evaluation.seed_spread import seed_spread
from leafnet.inference.predict_cases import LabelledCases, predict_and_score
from leafnet.inference.segmenter import Segmenter


def seed_stability(predictor: Segmenter, images: Path, reference: Path, output: Path,
                   seeds: list[int], show_progress: bool = True) -> dict[str, Any]:
    """Predictions and their summary in ``output/seed_<s>/`` per seed, and the spread over the
    seeds in ``output/stability.json`` (also returned)."""
    cases = LabelledCases.of_folders(images, reference, predictor.plans.num_channels)
    summaries = {}
    for seed in seeds:
        scored = predict_and_score(predictor, cases, output / f"seed_{seed}", seed,
                                   show_progress=show_progress)
        assert scored.summary is not None
        summaries[seed] = scored.summary
    result = seed_spread(summaries)
    write_json(output / "stability.json", result)
    return result
