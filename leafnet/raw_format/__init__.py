"""The raw dataset format: nnU-Net v2's layout in 2D, plus leafnet's split rule.

::

    DatasetXXX_Name/
        dataset.json
        imagesTr/CASE_0000.png   (one file per channel group; an RGB file holds 3 channels)
        labelsTr/CASE.png
        imagesTs/ labelsTs/      (optional: an official test set)
"""

from leafnet.raw_format.case_io import read_case, source_signature
from leafnet.raw_format.cases import CaseFiles, CaseListing, dataset_cases, list_cases
from leafnet.raw_format.dataset_json import (
    ONE_MASK_FOLDER,
    DatasetDescription,
    SourceMaskRules,
    load_dataset_json,
    split_rule_problems,
    write_dataset_json,
)
from leafnet.raw_format.locate import (
    dataset_folder_name,
    find_dataset,
    list_datasets,
    parse_dataset_id,
)

__all__ = [
    "ONE_MASK_FOLDER",
    "CaseFiles",
    "CaseListing",
    "DatasetDescription",
    "dataset_cases",
    "dataset_folder_name",
    "find_dataset",
    "list_cases",
    "list_datasets",
    "load_dataset_json",
    "parse_dataset_id",
    "SourceMaskRules",
    "read_case",
    "source_signature",
    "split_rule_problems",
    "write_dataset_json",
]
