"""The Kvasir-SEG converter on the real data in ../shared/data (skipped when it is absent)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import SHARED_DATA
from PIL import Image

from leafnet.dataset_conversion import convert_kvasir_seg

KVASIR = SHARED_DATA / "kvasir-seg"

pytestmark = pytest.mark.skipif(
    not KVASIR.is_dir(),
    reason=f"real Kvasir-SEG data not found at {KVASIR} (only developers' machines have it)",
)


def test_kvasir_seg_converts_all_1000_cases_with_binary_labels_at_original_size():
    folder, report = convert_kvasir_seg(KVASIR, num_processes=2, show_progress=False)
    assert report.ok and report.num_cases == {"Tr": 900, "Ts": 100}
    description = json.loads((folder / "dataset.json").read_text())
    assert len(description["leafnet_split"]["val_cases"]) == 100
    for split, subset in (("train", "Tr"), ("val", "Tr"), ("test", "Ts")):
        for mask in sorted((KVASIR / split / "masks").iterdir()):
            label = Image.open(folder / f"labels{subset}" / f"{mask.stem}.png")
            with Image.open(mask) as original:
                assert label.size == original.size, mask.name
            values = np.unique(np.asarray(label))
            assert values.tolist() == [0, 1], mask.name  # every Kvasir-SEG frame shows a polyp
