"""The integrity check every raw dataset must pass before conversion ends and planning starts."""

from leafnet.verification.integrity import (
    DatasetIntegrityError,
    Problem,
    VerificationReport,
    assert_dataset_ok,
    verify_dataset,
)

__all__ = [
    "DatasetIntegrityError",
    "Problem",
    "VerificationReport",
    "assert_dataset_ok",
    "verify_dataset",
]
