#!/usr/bin/env bash
# GPU measurement of netstat on a lent NVIDIA machine (the session's `device` tool: one H200).
#
# Two halves, because the GPU machine has no network and only a short lease:
#
#   scripts/gpu-check.sh build    HERE, no GPU needed. Installs the pinned CUDA 13 wheels (nvcc, and the
#                                 cuBLAS/cuRAND/NVRTC libraries to link against), writes a stub libcuda.so
#                                 (the real one comes with the driver on the GPU machine), builds
#                                 `netstat` with `--features cuda` for compute capability 9.0 (H100/H200),
#                                 strips it and puts it in target/gpu/netstat (under the 64 MiB carry limit).
#                                 About 20 minutes on 2 cores.
#   scripts/gpu-check.sh run      ON THE GPU MACHINE, from the repository root. Records the machine
#                                 (nvidia-smi, driver, `netstat gpu`), then for alexnet, resnet50 and
#                                 vit_b_16 at batch 1 and 64, inference and training, runs
#                                   target/gpu/netstat measure specs/M.yaml --device cuda:0 --batch N [--train] \
#                                     --format json -o reports/gpu/M-bN-{infer,train}.json
#                                 and adds machine, date and driver to each report (reports/gpu/README.md lists
#                                 what ran and how long). A failed run is recorded, never fatal, so one bad
#                                 model cannot lose the others. Needs the driver and the CUDA 13 runtime
#                                 libraries (libcublas.so.13, libcublasLt.so.13, libcurand.so.10, libnvrtc.so.13)
#                                 on the machine: `run` checks and records what it finds first.
#
# The one device call, after `build` (the device tool copies the working tree; carry the ignored binary):
#   run(command="scripts/gpu-check.sh run", carry=["target/gpu"], timeout_s=540)
# then commit reports/gpu/ from the returned files (files_at/reports/gpu/*).
#
# Env: GPU_CHECK_MODELS (default "alexnet resnet50 vit_b_16"), GPU_CHECK_BATCHES (default "1 64"),
#      GPU_CHECK_TIMEOUT (seconds per measurement, default 120), CUDA_COMPUTE_CAP (build, default 90).
set -euo pipefail
cd "$(dirname "$0")/.."

models="${GPU_CHECK_MODELS:-alexnet resnet50 vit_b_16}"
batches="${GPU_CHECK_BATCHES:-1 64}"
per_run_timeout="${GPU_CHECK_TIMEOUT:-120}"

build() {
    export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
    CUDA_EXTRA_REQUIREMENTS=.ci/cuda13-link-requirements.txt
    . .ci/cuda-env.sh
    local lib="$CUDA_ROOT/lib" stub="target/gpu/stub"
    mkdir -p "$stub" target/gpu
    # Unversioned names for the linker (the wheels ship only the versioned sonames).
    for so in "$lib"/libcublas.so.13 "$lib"/libcublasLt.so.13 "$lib"/libcurand.so.10 "$lib"/libnvrtc.so.13 \
              "$lib"/libcudart.so.13; do
        [ -e "$so" ] && ln -sf "$so" "$stub/$(basename "${so%.so.*}").so"
    done
    # libcuda.so comes with the driver, which this machine lacks: link against an empty stub that has
    # its soname, leaving the driver API symbols to be bound at load time on the GPU machine.
    if [ ! -e "$stub/libcuda.so" ]; then
        printf '' | cc -shared -x c - -o "$stub/libcuda.so" -Wl,-soname,libcuda.so.1
    fi
    local abs_stub; abs_stub="$(cd "$stub" && pwd)"
    RUSTFLAGS="${RUSTFLAGS:-} -L native=$abs_stub -C link-arg=-Wl,--unresolved-symbols=ignore-in-object-files" \
        CARGO_TARGET_DIR=target/gpu-build cargo build --locked --release --features cuda --bin netstat
    cp target/gpu-build/release/netstat target/gpu/netstat
    strip target/gpu/netstat
    ls -l target/gpu/netstat
    echo "gpu-check: built target/gpu/netstat (compute capability $CUDA_COMPUTE_CAP); now make the device call:"
    echo '  run(command="scripts/gpu-check.sh run", carry=["target/gpu"], timeout_s=540)'
}

run() {
    local out=reports/gpu bin=target/gpu/netstat
    mkdir -p "$out"
    local date machine driver
    date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    machine="$(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | head -n1 || true)"
    driver="$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n1 || true)"
    {
        echo "# GPU check, $date"
        echo
        echo "machine: ${machine:-unknown}; driver: ${driver:-unknown}; host: $(uname -srm); CPUs: $(nproc)"
        echo
        echo '```'
        nvidia-smi 2>&1 || echo "nvidia-smi not found"
        echo
        echo "CUDA libraries seen by the loader:"
        ldconfig -p 2>/dev/null | grep -E 'libcuda\.so|libcublas|libcurand|libnvrtc|libcudart' || echo "(none listed)"
        echo '```'
        echo
        echo '| model | batch | mode | exit | seconds | report |'
        echo '|---|---:|---|---:|---:|---|'
    } > "$out/README.md"
    if [ ! -x "$bin" ]; then
        echo "gpu-check: $bin missing: run \`scripts/gpu-check.sh build\` first and carry target/gpu" | tee -a "$out/README.md"
        exit 1
    fi
    "$bin" gpu --json > "$out/nvml.json" 2>&1 || true
    "$bin" gpu >> "$out/README.md" 2>&1 || true
    export OUT="${OUT:-}"
    for m in $models; do
        local spec="specs/$m.yaml"
        for b in $batches; do
            for mode in infer train; do
                local name="$m-b$b-$mode" file="$out/$m-b$b-$mode.json" flag=""
                [ "$mode" = train ] && flag="--train"
                if [ ! -f "$spec" ]; then
                    echo "| $m | $b | $mode | - | - | no $spec |" >> "$out/README.md"
                    continue
                fi
                local t0 rc=0; t0=$(date +%s)
                timeout "$per_run_timeout" "$bin" measure "$spec" --device cuda:0 --batch "$b" $flag \
                    --format json -o "$file.tmp" > "$out/$name.log" 2>&1 || rc=$?
                local secs=$(( $(date +%s) - t0 ))
                if [ "$rc" = 0 ] && [ -s "$file.tmp" ]; then
                    # Stamp machine, date and driver into the report (a top-level "gpu_check" object).
                    python3 - "$file.tmp" "$file" "$machine" "$driver" "$date" <<'PY' || mv "$file.tmp" "$file"
import json, sys
src, dst, machine, driver, date = sys.argv[1:]
r = json.load(open(src))
r["gpu_check"] = {"machine": machine, "driver": driver, "date": date}
json.dump(r, open(dst, "w"), indent=2)
PY
                    rm -f "$file.tmp"
                    echo "| $m | $b | $mode | 0 | $secs | $(basename "$file") |" >> "$out/README.md"
                else
                    rm -f "$file.tmp"
                    echo "| $m | $b | $mode | $rc | $secs | failed: $(tail -n1 "$out/$name.log" | tr '|' '/') |" >> "$out/README.md"
                fi
            done
        done
    done
    # The device tool returns what is under $OUT: copy the reports there too.
    if [ -n "$OUT" ] && [ -d "$OUT" ]; then
        mkdir -p "$OUT/reports" && cp -r "$out" "$OUT/reports/"
    fi
    cat "$out/README.md"
}

case "${1:-}" in
    build) build ;;
    run) run ;;
    *) sed -n '2,30p' "$0"; exit 2 ;;
esac
