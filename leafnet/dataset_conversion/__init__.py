"""Converters from public datasets (and any image/mask folders) into the raw format."""

from leafnet.dataset_conversion.cvc_clinicdb import convert_cvc_clinicdb
from leafnet.dataset_conversion.demo import convert_demo, synthesize_case
from leafnet.dataset_conversion.folder import convert_folder
from leafnet.dataset_conversion.isic2018 import convert_isic2018
from leafnet.dataset_conversion.kvasir_seg import convert_kvasir_seg
from leafnet.dataset_conversion.qata_cov19 import convert_qata_cov19
from leafnet.dataset_conversion.refuge2 import convert_refuge2

__all__ = [
    "convert_cvc_clinicdb",
    "convert_demo",
    "convert_folder",
    "convert_isic2018",
    "convert_kvasir_seg",
    "convert_qata_cov19",
    "convert_refuge2",
    "synthesize_case",
]
