# Sourced by .ci/cuda-check.sh and scripts/gpu-check.sh: install the pinned CUDA 13 wheels of
# .ci/cuda13-requirements.txt (plus any requirement files named in CUDA_EXTRA_REQUIREMENTS) into
# $CUDA_WHEELS_DIR (default target/cuda13, reused while the pins are unchanged), then export
# CUDA_ROOT/CUDA_PATH, PATH (nvcc) and CUDA_COMPUTE_CAP (default 80: portable compute_80 PTX).
# Needs python3 with pip and network access to PyPI the first time.

cuda_wheels_dir="${CUDA_WHEELS_DIR:-target/cuda13}"
cuda_python="${PYTHON:-python3}"
cuda_reqs=".ci/cuda13-requirements.txt ${CUDA_EXTRA_REQUIREMENTS:-}"
cuda_stamp="$(cat $cuda_reqs | sha256sum | cut -d' ' -f1)"

if [ ! -x "$cuda_wheels_dir/nvidia/cu13/bin/nvcc" ] || [ "$(cat "$cuda_wheels_dir/.stamp" 2>/dev/null)" != "$cuda_stamp" ]; then
    echo "cuda-env: installing the pinned CUDA 13 wheels ($cuda_reqs) into $cuda_wheels_dir" >&2
    rm -rf "$cuda_wheels_dir"
    mkdir -p "$cuda_wheels_dir"
    for r in $cuda_reqs; do
        "$cuda_python" -m pip install --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
            --require-hashes --upgrade --target "$cuda_wheels_dir" -r "$r"
    done
    echo "$cuda_stamp" > "$cuda_wheels_dir/.stamp"
fi

CUDA_ROOT="$(cd "$cuda_wheels_dir/nvidia/cu13" && pwd)"
export CUDA_ROOT CUDA_PATH="$CUDA_ROOT" CUDA_TOOLKIT_ROOT_DIR="$CUDA_ROOT"
export PATH="$CUDA_ROOT/bin:$PATH"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-80}"
echo "cuda-env: $(nvcc --version | grep -m1 release); CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP" >&2
