"""``leafnet_export_onnx``: the single-step predictor of a fold as one ONNX graph.

Single-step LEAF inference is a fixed graph (image encoder, U-Net at t = T-1, mask decoder), the
:class:`SingleStep` module PyTorch prediction runs too. Its inputs are the preprocessed image
``(B, C, H, W)`` at the planned size and the noise ``(B, 4, H/f, W/f)`` (the predictor draws it
from the seed, as with PyTorch); its output the mask channels' probabilities. The file is written
beside the exported weights (``model_best/network.onnx``, ``network_fast.onnx`` with the fast
decoder) with a JSON record of the check against PyTorch on random inputs and of the digests of
the file and of the weights it was made from: :func:`onnx_record` refuses a graph whose weights
were retrained since, or a file that was replaced or truncated (models/derived_files.py).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from leafnet.atomic import atomic_path, write_json
from leafnet.errors import LeafnetError
from leafnet.models.derived_files import check_source, model_flags
from leafnet.models.fast_decoder import FAST_DECODER_FOLDER, check_fast_decoder, load_fast_decoder
from leafnet.models.fold_record import FOLD_PLANS_FILE, check_model
from leafnet.models.network import exported_model, load_network
from leafnet.models.single_step import SingleStep
from leafnet.preprocessing.plans import Plans
from leafnet.utilities.digests import file_digest, weights_digest
from leafnet.utilities.json_files import read_json

OPSET = 17
INPUTS = ("image", "noise")
OUTPUT = "probability"


def onnx_file(model_folder: Path, fast_decoder: bool = False) -> Path:
    return model_folder / ("network_fast.onnx" if fast_decoder else "network.onnx")


def write_onnx(module: SingleStep, image: torch.Tensor, noise: torch.Tensor,
               target: Path) -> float:
    """Export ``module`` traced on ``(image, noise)`` (batch axis dynamic) to ``target``,
    atomically; return the largest difference between onnxruntime and PyTorch on them."""
    import onnxruntime

    axes = {name: {0: "batch"} for name in (*INPUTS, OUTPUT)}
    with atomic_path(target) as temporary, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (image, noise), str(temporary), input_names=list(INPUTS),
                          output_names=[OUTPUT], dynamic_axes=axes, opset_version=OPSET,
                          dynamo=False)
        session = onnxruntime.InferenceSession(str(temporary),
                                               providers=["CPUExecutionProvider"])
        exported = session.run(None, {"image": image.numpy(), "noise": noise.numpy()})[0]
    with torch.no_grad():
        reference = module(image, noise).numpy()
    return float(np.abs(exported - reference).max())


def export_onnx(fold_folder: Path, checkpoint: str = "best", fast_decoder: bool = False,
                batch: int = 2, seed: int = 0) -> dict[str, Any]:
    """Write the ONNX file of a fold's exported model and check it against PyTorch on a random
    batch; return the record (also written as ``<file>.json``)."""
    try:
        import onnxruntime
    except ImportError:
        raise LeafnetError("ONNX export needs onnx and onnxruntime: pip install -e '.[onnx]'") \
            from None
    folder = exported_model(fold_folder, checkpoint)
    check_model(fold_folder, folder.name.removeprefix("model_"))
    plans = Plans.load(fold_folder / FOLD_PLANS_FILE,
                       "the model folder is incomplete; train again")
    height, width = plans.target_size
    decoder = load_fast_decoder(fold_folder, folder) if fast_decoder else None
    module = SingleStep(load_network(folder), decoder).eval()
    generator = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, plans.num_channels, height, width,
                       generator=generator) * 2 - 1
    noise = torch.randn(module.latent_shape((batch, 3, height, width)), generator=generator)
    target = onnx_file(folder, fast_decoder)
    difference = write_onnx(module, image, noise, target)
    record = {"file": target.name, "checkpoint": folder.name, "fast_decoder": fast_decoder,
              "opset": OPSET, "image": [None, plans.num_channels, height, width],
              "noise": [None, *module.latent_shape((1, 3, height, width))[1:]],
              "max_abs_difference_vs_torch": difference, "onnx_digest": file_digest(target),
              "weights_digest": weights_digest(folder),
              "fast_decoder_digest": (weights_digest(fold_folder / FAST_DECODER_FOLDER)
                                      if fast_decoder else None),
              "torch": torch.__version__, "onnxruntime": onnxruntime.__version__}
    write_json(target.with_name(target.name + ".json"), record)
    return record


def onnx_record(model_folder: Path, fast_decoder: bool = False) -> dict[str, Any]:
    """The record written with a fold's ONNX file, checked against the file and the weights
    beside it; an error naming the export command when it is missing or does not match."""
    path = onnx_file(model_folder, fast_decoder)
    fold_folder = model_folder.parent
    checkpoint = model_folder.name.removeprefix("model_")
    remake = (f"leafnet_export_onnx {model_flags(fold_folder)} -chk {checkpoint}"
              + (" --fast-decoder" if fast_decoder else "") + " (needs pip install -e '.[onnx]')")
    if not path.is_file():
        raise LeafnetError(f"{path} is missing; make it with {remake}")
    record = read_json(path.with_name(path.name + ".json"), f"remake it: {remake}")
    if not isinstance(record, dict):
        raise LeafnetError(f"{path}.json is not an export record; remake it: {remake}")
    recorded = record.get("onnx_digest")
    if recorded is not None and recorded != file_digest(path):
        raise LeafnetError(f"{path} is not the file its record describes (replaced, copied from "
                           f"another model, or truncated); remake it: {remake}")
    check_source(path, recorded and record.get("weights_digest"), weights_digest(model_folder),
                 model_folder, remake)
    if fast_decoder:
        decoder = check_fast_decoder(fold_folder, model_folder)
        check_source(path, record.get("fast_decoder_digest"), weights_digest(decoder), decoder,
                     remake)
    return record
