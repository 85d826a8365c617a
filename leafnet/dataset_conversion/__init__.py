"""Converters from public datasets (and any image/mask folders) into the raw format."""

from leafnet.dataset_conversion.cvc_clinicdb import CVC_CLINICDB
from leafnet.dataset_conversion.demo import convert_demo, synthesize_case
from leafnet.dataset_conversion.folder import convert_folder
from leafnet.dataset_conversion.isic2018 import ISIC2018
from leafnet.dataset_conversion.kvasir_seg import KVASIR_SEG
from leafnet.dataset_conversion.qata_cov19 import QATA_COV19
from leafnet.dataset_conversion.refuge2 import REFUGE2

PUBLIC_SOURCES = {
    "refuge2": REFUGE2,
    "cvc-clinicdb": CVC_CLINICDB,
    "qata-cov19": QATA_COV19,
    "isic2018": ISIC2018,
    "kvasir-seg": KVASIR_SEG,
}

convert_refuge2 = REFUGE2.convert
convert_cvc_clinicdb = CVC_CLINICDB.convert
convert_qata_cov19 = QATA_COV19.convert
convert_isic2018 = ISIC2018.convert
convert_kvasir_seg = KVASIR_SEG.convert

__all__ = [
    "PUBLIC_SOURCES",
    "convert_cvc_clinicdb",
    "convert_demo",
    "convert_folder",
    "convert_isic2018",
    "convert_kvasir_seg",
    "convert_qata_cov19",
    "convert_refuge2",
    "synthesize_case",
]
