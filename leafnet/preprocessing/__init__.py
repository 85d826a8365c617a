"""Turning raw cases into fixed-size uint8 arrays, and mapping results back to raw size."""

from leafnet.preprocessing.normalization import normalize_to_uint8, to_network_input
from leafnet.preprocessing.preprocessed_data import (
    PreprocessedCase,
    case_paths,
    load_preprocessed_case,
)
from leafnet.preprocessing.resampling import (
    resize_image,
    resize_label,
    resize_probabilities,
)

__all__ = [
    "PreprocessedCase",
    "case_paths",
    "load_preprocessed_case",
    "normalize_to_uint8",
    "resize_image",
    "resize_label",
    "resize_probabilities",
    "to_network_input",
]
