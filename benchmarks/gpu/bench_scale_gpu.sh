#!/usr/bin/env bash
# The scale benchmark (benchmarks/bench_scale.py) on one GPU: the same phantoms and the same
# audit settings with --device cuda, one rank (one process on the one GPU), its own work
# folder and its own results, benchmarks/results/scale${TAG}.md and .json (TAG default _gpu).
# The phantoms are written on the CPU cores first (cached under WORK; a rerun reuses them).
#
#   benchmarks/gpu/bench_scale_gpu.sh                       # the defaults: 1000,4000,16000 films
#   TAG=_gpu_tiny_wip benchmarks/gpu/bench_scale_gpu.sh --films 48,96 --size 128 \
#       --image-size 32 --epochs 1                          # a trial (tags ending _wip: not kept)
#
# Extra arguments go to bench_scale.py as given (a later --ranks or --device wins).
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-.venv/bin/python}"
WORK="${WORK:-/tmp/medxai-scale-gpu}"
TAG="${TAG:-_gpu}"
"$PYTHON" - <<'PY'
import torch
if not torch.cuda.is_available():
    raise SystemExit("no CUDA device: this script measures the audit on one GPU")
print("GPU:", torch.cuda.get_device_name(0))
PY
"$PYTHON" -c "import onnxruntime as o; print('onnxruntime providers:', o.get_available_providers())"
exec "$PYTHON" benchmarks/bench_scale.py --device cuda --ranks 1 --work "$WORK" --tag "$TAG" "$@"
