#!/usr/bin/env bash
# CUDA checks, for a machine with an NVIDIA GPU (CI has none): every model kind trained on the GPU through the config
# matrix (generation then runs from the saved weights on the CPU), then benchmarks/check_cuda.py (the spectral core on
# the GPU against the CPU, and the demo's one-shot cvae trained on the GPU against the CPU, whole processes).
#     bash benchmarks/check_cuda.sh [OUT_DIR] [EPOCHS]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/soundloom-cuda-check}
python -c "import torch, sys; torch.cuda.is_available() or sys.exit('no CUDA GPU'); print(torch.cuda.get_device_name())"
SOUNDLOOM_TEST_ACCELERATOR=gpu python -m pytest -q -p no:cacheprovider tests/sounds/test_config_matrix.py
python benchmarks/check_cuda.py --out "$out" --train-epochs "${2:-30}"
