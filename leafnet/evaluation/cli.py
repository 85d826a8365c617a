"""``leafnet_evaluate -ref REF -pred PRED [-o summary.json] [-l LABEL ... | -djfile JSON]
[--hd95]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from leafnet.errors import LeafnetError, exit_on_user_error
from leafnet.evaluation.evaluate import evaluate_folders
from leafnet.evaluation.summary import SUMMARY_FILE
from leafnet.evaluation.overlays import write_overlays
from leafnet.preprocessing.label_scheme import LabelClass, LabelScheme
from leafnet.raw_format import load_dataset_json


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leafnet_evaluate",
        description="Dice and IoU (and HD95) per case and their means, as summary.json. Masks "
        "are read by leafnet_convert's rules (0/1 and 0/255 PNGs, RGB and JPEG masks), stated "
        "in the output; ambiguous ones are refused.")
    parser.add_argument("-ref", "--reference", type=Path, required=True)
    parser.add_argument("-pred", "--prediction", type=Path, required=True)
    parser.add_argument("-o", "--output", type=Path,
                        help="the summary file (*.json), or a folder to write summary.json in "
                        "(default: PRED/summary.json)")
    parser.add_argument("-l", "--labels", type=int, nargs="+",
                        help="labels to evaluate (default: all foreground labels found)")
    parser.add_argument("-djfile", "--dataset-json", type=Path,
                        help="score the labels, or the nested regions, of this dataset.json "
                        "(nnU-Net's region keys), each label or region and their mean; "
                        "references are read by the rule it records (its label values, or the "
                        "rule its source masks were converted by)")
    parser.add_argument("--ref-prefix", default="", help="reference file = PREFIX + CASE + SUFFIX")
    parser.add_argument("--ref-suffix", default="", help="e.g. _lesion for CASE_lesion.png")
    parser.add_argument("--pred-prefix", default="",
                        help="prediction file = PREFIX + CASE + SUFFIX")
    parser.add_argument("--pred-suffix", default="")
    parser.add_argument("--hd95", action="store_true", help="also the 95%% Hausdorff distance")
    parser.add_argument("--overlays", type=Path,
                        help="write contour overlays of the worst and best cases here")
    parser.add_argument("--images", type=Path,
                        help="the input images, drawn under the overlays' contours")
    return parser


@exit_on_user_error("leafnet_evaluate")
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    classes: list[LabelClass] | None = None
    labels = args.labels
    description = None
    if args.dataset_json is not None:
        if args.dataset_json.name != "dataset.json":
            raise LeafnetError(f"-djfile {args.dataset_json}: give a file named dataset.json")
        description = load_dataset_json(args.dataset_json.parent)
        scheme = LabelScheme.for_dataset(description.labels, description.regions)
        classes = list(scheme.classes)
        labels = labels or scheme.foreground_values
    summary = evaluate_folders(args.reference, args.prediction, labels, args.hd95,
                               (args.ref_prefix, args.ref_suffix),
                               (args.pred_prefix, args.pred_suffix), classes, description)
    for rule in summary.mask_rules:
        print(rule)
    for note in summary.notes:
        print(f"note: {note}", file=sys.stderr)
    output = args.output or args.prediction / SUMMARY_FILE
    if output.is_dir() or output.suffix.lower() != ".json":
        output = output / SUMMARY_FILE
    summary.save(output)
    means = ", ".join(f"{k} {v:.4f}" for k, v in summary.foreground_mean.items())
    print(f"{summary.num_cases} cases: {means}")
    if len(summary.mean) > 1:
        for key, values in summary.mean.items():
            print(f"  {summary.name_of(key)} ({key}): Dice {values['Dice']:.4f}, "
                  f"IoU {values['IoU']:.4f}")
    print(f"written to {output}")
    if args.overlays is not None:
        written = write_overlays(summary, args.overlays, args.images)
        print(f"{len(written)} overlays written to {args.overlays}")
