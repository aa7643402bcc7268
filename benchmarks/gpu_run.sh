#!/usr/bin/env bash
# One prepared GPU check (the `device` machine: torch, torchvision, timm, no registry).
# Installs the peers from wheels carried in .whl/ (see benchmarks/README.md), runs the engine's
# CUDA tests, then the engine benchmark on CUDA; everything it prints also lands in $OUT.
set -uo pipefail
OUT=${OUT:-artifacts/gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH="/tmp/site:$PWD"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)" | tee -a "$OUT/gpu.txt"
timeout "${TEST_TIMEOUT:-150}" python3 -m pytest -q -p no:cacheprovider -o addopts= tests/engine \
    --ignore=tests/engine/test_fuzz.py -k "cuda or gpu or half or fp16" 2>&1 | tee "$OUT/cuda_tests.txt"
timeout "${BENCH_TIMEOUT:-300}" python3 benchmarks/bench_engine.py --device cuda \
    --models resnet18 resnet50 --repeats "${REPEATS:-7}" 2>&1 | tee "$OUT/bench_gpu.txt"
