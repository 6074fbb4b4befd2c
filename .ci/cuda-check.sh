#!/usr/bin/env bash
# Type-check netstat's `cuda` feature so the GPU path cannot rot unseen on machines without a GPU.
#
# Installs nvcc from the pinned CUDA 13.0 PyPI wheels (.ci/cuda13-requirements.txt: version + sha256)
# into target/cuda13 (reused on later runs; .ci/cuda-env.sh), puts it on PATH, and runs
# `cargo check --features cuda`. candle-kernels' build script compiles its PTX with nvcc even under
# `cargo check`; CUDA_COMPUTE_CAP=80 gives portable compute_80 PTX, so no GPU or nvidia-smi is needed.
# Nothing is linked, so no libcuda.so is needed either. Time on the 2-core dev machine: docs/gpu.md.
#
# Usage: .ci/cuda-check.sh [extra cargo check args]     (env: CUDA_WHEELS_DIR, CUDA_COMPUTE_CAP, PYTHON)
set -euo pipefail
cd "$(dirname "$0")/.."
. .ci/cuda-env.sh

start=$(date +%s)
cargo check --locked --features cuda --all-targets "$@"
echo "cuda-check: cargo check --features cuda passed in $(( $(date +%s) - start )) s" >&2
