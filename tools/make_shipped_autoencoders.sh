#!/usr/bin/env bash
# Train the mask autoencoders that ship with leafnet (leafnet/models/shipped/<preset>/) on random
# mask shapes and Kvasir-SEG's training masks (../shared/data, when present), then copy the
# weights, config and shipped.json into the package. Resumable: run it again to continue.
# Measured on the 2-core CPU: small 3000 steps of batch 8 at about 0.85 s/step (docs/results.md).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
WORK=${LEAFNET_RESULTS:-leafnet_results}/shipped_autoencoders
MASKS=()
if [ -d ../shared/data/kvasir-seg/train/masks ]; then
    MASKS=(--masks ../shared/data/kvasir-seg/train/masks)
fi
train() {  # preset steps
    "$BIN/python" -m leafnet.training.shipped_first_stage --preset "$1" --steps "$2" \
        ${MASKS[@]+"${MASKS[@]}"} -o "$WORK/$1" --c
    mkdir -p "leafnet/models/shipped/$1"
    cp "$WORK/$1/config.json" "$WORK/$1/diffusion_pytorch_model.safetensors" \
        "$WORK/$1/shipped.json" "leafnet/models/shipped/$1/"
}
train "${1:-small}" "${2:-3000}"
