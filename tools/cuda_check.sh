#!/usr/bin/env bash
# The CUDA path on a GPU machine with the paper preset and random weights: a bf16 training run
# (exported model, safetensors), prediction and evaluation, the same for the nested two-label demo
# (kl-f8 codes the two region channels as an RGB image), leafnet_benchmark inference and
# train-step, the fast mask decoder (distilled from the binary run's model, then predicting with
# it), and leafnet's half of versus-nnunet (small preset, one minute). Wheels of the packages
# the machine lacks travel in .whl/ (see docs/results.md).
# Usage: OUT=/some/folder [PARTS='binary fastdecoder benchmarks nested versus'] bash tools/cuda_check.sh
# PARTS picks sections (all by default), so a short device budget can rerun one of them;
# fastdecoder needs binary before it.
set -uo pipefail
OUT=${OUT:-$(mktemp -d)}
PARTS=${PARTS:-binary fastdecoder benchmarks nested versus}
part() { [[ " $PARTS " == *" $1 "* ]]; }
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
rm -rf /tmp/lf
export PYTHONUNBUFFERED=1 LEAFNET_RAW=/tmp/lf/raw LEAFNET_PREPROCESSED=/tmp/lf/pre \
  LEAFNET_RESULTS=/tmp/lf/results LEAFNET_WEIGHTS=/tmp/lf/weights
run() { python3 -c "import sys; from leafnet.$1 import main; sys.argv[0] = '$1'; main(sys.argv[1:])" "${@:2}"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 - <<'PY'
# Random paper-preset weights in the installed layout, loaded through the real loading code.
import json, os, torch
from pathlib import Path
from diffusers import AutoencoderKL, UNet2DModel
from leafnet.models.presets import get_preset
preset = get_preset("paper")
folder = Path(os.environ["LEAFNET_WEIGHTS"]) / preset.pretrained
torch.manual_seed(0)
AutoencoderKL(**preset.autoencoder).save_pretrained(folder / "vae", safe_serialization=True)
UNet2DModel(**preset.unet).save_pretrained(folder / "unet", safe_serialization=True)
(folder / "unet" / "leafnet_attention_heads.json").write_text('{"attention_heads": 8}')
(folder / "source.json").write_text(json.dumps({"random": "cuda check", "scale_factor": 0.18215}))
print("torch", torch.__version__, "cuda", torch.cuda.is_available())
PY
run dataset_conversion.cli demo --num-cases 60 -np 8 || exit 1
if part binary; then
run planning.cli -d 999 --preset paper -np 8 || exit 1
start=$(date +%s)
run training.cli 999 LEAFTrainer_x0 --steps 30 --validate-every 15 -device cuda 2>&1 | tail -8
echo "train 30 steps incl. validation and after-training prediction: $(( $(date +%s) - start )) s"
ls /tmp/lf/results/Dataset999_LeafnetDemo/LEAFTrainer_x0__leafnetPlans__paper/fold_0/
start=$(date +%s)
run inference.cli -d 999 -tr LEAFTrainer_x0 -i /tmp/lf/raw/Dataset999_LeafnetDemo/imagesTs \
  -o /tmp/lf/pred -device cuda 2>&1 | tail -3
echo "predict imagesTs: $(( $(date +%s) - start )) s"
run evaluation.cli -ref /tmp/lf/raw/Dataset999_LeafnetDemo/labelsTs -pred /tmp/lf/pred 2>&1 | tail -4
fi
if part fastdecoder; then
start=$(date +%s)
run training.fast_decoder_cli -d 999 -tr LEAFTrainer_x0 -f 0 --steps 300 -device cuda 2>&1 | tail -2
echo "distil the fast decoder (targets and 300 steps): $(( $(date +%s) - start )) s"
cp /tmp/lf/results/Dataset999_LeafnetDemo/LEAFTrainer_x0__leafnetPlans__paper/fold_0/fast_decoder/distillation.json \
  "$OUT/fast_decoder_distillation_paper_cuda.json"
start=$(date +%s)
run inference.cli -d 999 -tr LEAFTrainer_x0 -i /tmp/lf/raw/Dataset999_LeafnetDemo/imagesTs \
  -o /tmp/lf/pred_fast -device cuda --fast-decoder 2>&1 | tail -2
echo "predict imagesTs with the fast decoder: $(( $(date +%s) - start )) s"
run evaluation.cli -ref /tmp/lf/raw/Dataset999_LeafnetDemo/labelsTs -pred /tmp/lf/pred_fast 2>&1 | tail -4
fi
if part benchmarks; then
for preset in paper small; do
  run benchmarks.cli inference --preset $preset -device cuda --batch 4 --repeats 10 \
    -o "$OUT/inference_${preset}_cuda.json" | tail -25
done
run benchmarks.cli train-step -d 999 --preset paper -device cuda --steps 6 \
  -o "$OUT/train_step_paper_cuda.json" | tail -20
fi
if part nested; then
run dataset_conversion.cli demo --num-labels 2 --num-cases 40 -np 8 || exit 1
run planning.cli -d 998 --preset paper -np 8 2>&1 | tail -4
start=$(date +%s)
run training.cli 998 LEAFTrainer_x0 --steps 20 --validate-every 10 -device cuda 2>&1 | tail -6
echo "nested: train 20 steps incl. validation and after-training prediction: $(( $(date +%s) - start )) s"
run inference.cli -d 998 -tr LEAFTrainer_x0 -i /tmp/lf/raw/Dataset998_LeafnetDemoNested/imagesTs \
  -o /tmp/lf/pred998 -device cuda --save_probabilities 2>&1 | tail -2
ls /tmp/lf/pred998 | head -4
run evaluation.cli -ref /tmp/lf/raw/Dataset998_LeafnetDemoNested/labelsTs -pred /tmp/lf/pred998 \
  -djfile /tmp/lf/raw/Dataset998_LeafnetDemoNested/dataset.json -o "$OUT/nested_paper_cuda_summary.json" 2>&1 | tail -6
fi
if part versus; then
run planning.cli -d 999 --preset small -np 8 2>&1 | tail -2
run benchmarks.cli versus-nnunet -d 999 --minutes 1 --rows unet -device cuda \
  -o "$OUT/versus_nnunet_cuda" 2>&1 | tail -12
fi
